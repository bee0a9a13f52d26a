"""The plugin kit (liqnet.scenarios.testing) and the world's conservation check."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from liqnet.core import ConservationError
from liqnet.market import MarketModel
from liqnet.protocols import registry
from liqnet.protocols.flows import TreasuryReads
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios import load
from liqnet.scenarios.testing import ProtocolCheckError, check_protocol

# The example plugin is a separate distribution; the suite imports it from its folder
# instead of installing it (tests install nothing).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples/liqnet-fixed-rate-desk"))
from fixed_rate_desk import FixedRateDesk, FixedRateDeskParams


@pytest.mark.parametrize(
    ("type_name", "params"),
    [
        ("lending", {"positions": 300}),
        ("perp", {"positions": 300}),
        ("options", {"positions": 100}),
    ],
)
def test_builtin_types_pass(type_name: str, params: dict) -> None:
    report = check_protocol(type_name, params, steps=24)
    assert "crash world" in str(report) and "refused naming the field" in str(report)


def test_example_plugin_passes() -> None:
    report = check_protocol(FixedRateDesk, steps=48)
    assert registry.get_protocol_class("fixed_rate_desk") is FixedRateDesk
    assert "calm world" in str(report)


class CashPrinter(FixedRateDesk):
    """Adds cash to its own balance without a transfer."""

    type_name = "cash_printer"

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        super().act_users(dt_years, rng)
        self.cash += 1000.0


class EthPrinter(FixedRateDesk):
    """Holds ETH and creates 2.57 ETH from nothing on every step."""

    type_name = "eth_printer"

    def __init__(self, model, protocol_id, params) -> None:
        super().__init__(model, protocol_id, params)
        self.eth = 0.0

    def held_units(self) -> dict[str, float]:
        return {"ETH": self.eth}

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        super().act_users(dt_years, rng)
        self.eth += 2.57


class Noisy(FixedRateDesk):
    """Draws from an unseeded generator: two runs with the same seed differ."""

    type_name = "noisy_desk"

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        super().act_users(dt_years, np.random.default_rng())


def test_cash_from_nothing_fails_naming_protocol_phase_and_amount() -> None:
    with pytest.raises(
        ProtocolCheckError,
        match=r"calm world, step 1: protocol 'plugin' \(CashPrinter\) in act_users: .*"
        r"\+1000 USD created from nothing",
    ):
        check_protocol(CashPrinter)


def test_units_from_nothing_fail_in_a_world_run() -> None:
    registry.register("eth_printer", EthPrinter)
    raw = load("baseline").model_dump(by_alias=True)
    raw["protocols"].append({"id": "desk", "type": "eth_printer", "params": {}})
    model = MarketModel(load("baseline", {"protocols": raw["protocols"]}))
    with pytest.raises(ConservationError, match=r"'desk'.*act_users.*\+2\.57 ETH created"):
        model.step()


def test_nondeterministic_protocol_is_caught() -> None:
    with pytest.raises(ProtocolCheckError, match=r"not deterministic.*same seed differ"):
        check_protocol(Noisy)


def test_transfer_rejects_unknown_accounts_and_assets() -> None:
    model = MarketModel(load("baseline", {"protocols.0.params.positions": 100}))
    pool = model.protocols["aave"]
    with pytest.raises(ValueError, match=r"unknown account 'whales'.*depositors"):
        model.world.transfer(pool, "whales", usd=1.0)
    with pytest.raises(ValueError, match=r"asset 'DOGE' is not a market asset"):
        model.world.transfer(pool, "borrowers", asset="DOGE", units=1.0)
    cash = model.total_cash()
    model.world.transfer(pool, "depositors", usd=123.0)
    assert model.total_cash() == pytest.approx(cash, abs=1e-6)


def test_world_view_is_read_only() -> None:
    model = MarketModel(load("baseline", {"protocols.0.params.positions": 100}))
    world = model.protocols["aave"].world
    with pytest.raises(TypeError):
        world.oracle_prices["ETH"] = 1.0  # type: ignore[index]
    model.oracle_prices["ETH"] = 2500.0  # the view is live
    assert world.oracle_prices["ETH"] == 2500.0


def test_bad_check_parameters_name_the_field() -> None:
    with pytest.raises(ProtocolCheckError, match=r"protocols\.1\.params\.loan_rate = -5"):
        check_protocol(FixedRateDesk, {"loan_rate": -5})


class UnboundedDeskParams(FixedRateDeskParams):
    """The desk's parameters plus a USD amount with no upper bound."""

    reserve_usd: float = Field(0.0, ge=0.0)


class UnboundedDesk(FixedRateDesk):
    """A desk whose parameters let a scenario file set 1e308 USD."""

    type_name = "unbounded_desk"
    Params = UnboundedDeskParams


def test_every_number_of_a_plugin_is_bounded() -> None:
    # Issue 19: the example plugin's USD amounts had no upper bound, so deposits_usd =
    # 1e308 was accepted; the kit checked only the bounds a field had.
    with pytest.raises(ProtocolCheckError, match=r"protocols\.1\.params\.deposits_usd = 1e\+308"):
        check_protocol(FixedRateDesk, {"deposits_usd": 1e308})
    message = r"UnboundedDeskParams\.reserve_usd: a number without an upper bound"
    with pytest.raises(ProtocolCheckError, match=message):
        check_protocol(UnboundedDesk)
    # Both bounds of each of the desk's 11 numbers are checked: 22 refusals.
    assert "bad parameters: 22 refused naming the field" in str(check_protocol(FixedRateDesk))


def test_the_report_names_each_types_style() -> None:
    report = str(check_protocol("perp", steps=12))
    assert "style: stacked (act_users_stacked)" in report
    assert "treasury reads: its own" in report
    assert "style: per object" in str(check_protocol(FixedRateDesk, steps=12))


class SkippingStack(PerpExchange):
    """A stacked type whose stack forgets every protocol but the first."""

    type_name = "skipping_stack"

    @classmethod
    def act_users_stacked(cls, protocols, dt_years, rngs) -> None:  # type: ignore[no-untyped-def]
        protocols[0].act_users(dt_years, rngs[0])


def test_a_stack_that_differs_from_its_protocols_one_by_one_fails() -> None:
    with pytest.raises(ProtocolCheckError, match="act_users_stacked differs"):
        check_protocol(SkippingStack, steps=12)


class OptimisticReads(PerpExchange):
    """Fused treasury reads that forget the maturing credit."""

    type_name = "optimistic_reads"

    def treasury_reads(self, days: float, maturing_usd: float = 0.0) -> TreasuryReads:
        return PerpExchange.treasury_reads(self, days, 0.0)


def test_fused_treasury_reads_that_differ_from_the_methods_fail() -> None:
    with pytest.raises(ProtocolCheckError, match=r"own treasury_reads\(3.0, 100000.0\)"):
        check_protocol(OptimisticReads, steps=6)
