"""Protocol registry: built-ins come from entry points; users can add their own type."""

import numpy as np
import pytest
from pydantic import Field

from liqnet.market import MarketModel
from liqnet.protocols import LendingPool, PerpExchange, Protocol, ProtocolParams, registry
from liqnet.protocols.base import LiquidationOffer, LiquidationOutcome
from liqnet.scenarios import ScenarioError, load
from tests.helpers.worlds import Small


class TreasuryParams(ProtocolParams):
    """A protocol that only holds cash and pays a fixed yield to its depositors."""

    cash_usd: float = Field(1e6, gt=0)


class Treasury(Protocol[TreasuryParams]):
    """Smallest useful third-party protocol: cash in, nothing to liquidate."""

    type_name = "treasury"
    Params = TreasuryParams

    def __init__(self, model, protocol_id: str, params: TreasuryParams) -> None:
        super().__init__(model, protocol_id, params)
        self.world.transfer("depositors", self, usd=params.cash_usd)

    def own_equity(self) -> float:
        return self.cash

    def total_assets(self) -> float:
        return self.cash

    def held_units(self) -> dict[str, float]:
        return {}

    def apply_levers(self, levers: np.ndarray) -> None:
        pass

    def accrue(self, dt_years: float) -> None:
        pass

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        pass

    def liquidation_candidates(self) -> list[LiquidationOffer]:
        return []

    def execute_liquidations(self, offer, accepted) -> LiquidationOutcome:
        raise AssertionError("nothing to liquidate")

    def idle_liquidity(self) -> float:
        return self.cash

    def feature_values(self) -> dict[str, float]:
        return {"cash_to_assets": 1.0}


def test_builtins_are_found_through_entry_points() -> None:
    found = registry.available()
    assert {"lending", "perp"} <= set(found)
    assert registry.get_protocol_class("lending") is LendingPool
    assert registry.get_protocol_class("perp") is PerpExchange


def test_unknown_type_lists_allowed_names() -> None:
    with pytest.raises(KeyError, match=r"allowed: .*lending.*perp"):
        registry.get_protocol_class("amm_v9")


def test_register_rejects_non_protocols() -> None:
    with pytest.raises(TypeError):
        registry.register("bad", dict)  # type: ignore[arg-type]


def test_user_protocol_runs_in_a_scenario(small: Small) -> None:
    registry.register("treasury", Treasury)
    base = small()
    protocols = [*base.model_dump(by_alias=True)["protocols"]]
    protocols.append({"id": "dao", "type": "treasury", "params": {"cash_usd": 5e6}})
    scenario = load("baseline", {"protocols": protocols})
    model = MarketModel(scenario)
    assert isinstance(model.protocols["dao"], Treasury)
    cash = model.total_cash()
    for _ in range(5):
        model.step()
    assert model.total_cash() == pytest.approx(cash, abs=1e-6)
    assert model.protocols["dao"].features()[1] == 1.0
    with pytest.raises(ScenarioError, match=r"protocols\.3\.params\.cash_usd"):
        protocols[-1]["params"] = {"cash_usd": -1}
        load("baseline", {"protocols": protocols})
