"""Stacked trader churn: exchanges stepped as one array program equal them one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from liqnet.market import MarketModel
from liqnet.protocols import registry
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios import load, run
from liqnet.scenarios.loader import validate


class PerpAlone(PerpExchange):
    """The built-in exchange, stepped per object: it does not define the stacked hook."""

    type_name = "perp_alone"


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    registry.register("perp_alone", PerpAlone)


def _raw(name: str, copies: int, perp_type: str) -> dict[str, Any]:
    """``name`` with its protocols repeated; each copy's exchanges differ (fees, book
    size, leverage, churn interval), so rows mixed up in a stack would show."""
    raw = load(name).model_dump(by_alias=True)
    protocols = []
    for copy in range(copies):
        for spec in raw["protocols"]:
            spec = {**spec, "id": f"{spec['id']}_{copy}"}
            if spec["type"] == "perp":
                spec["type"] = perp_type
                params = spec["params"] = dict(spec["params"])
                params["trading_fee"] = params["trading_fee"] * (1 + copy)
                params["positions"] = int(params["positions"] * (1 + 0.4 * copy))
                params["leverage_median"] = params["leverage_median"] + 2 * copy
                params["churn_interval_hours"] = (4.0, 2.0, 3.0)[copy % 3]
            protocols.append(spec)
    raw["protocols"] = protocols
    return raw


def test_the_built_in_type_is_stacked_and_a_plain_subclass_is_not() -> None:
    assert PerpExchange.is_stacked() and not PerpAlone.is_stacked()
    model = MarketModel(validate(_raw("baseline", 2, "perp"), "two copies"))
    assert [len(group) for group in model.user_stacks.values()] == [2]
    assert all(type(p) is PerpExchange for p in model.user_stacks[PerpExchange])


@pytest.mark.parametrize(("name", "copies", "seed"), [("flash_crash", 3, 5), ("ecosystem", 1, 11)])
def test_stacked_exchanges_equal_exchanges_stepped_alone(name: str, copies: int, seed: int) -> None:
    """Over a crash (liquidations, ADL, LP runs) every series and event is bit for bit
    the same, and so is every exchange's book."""
    results = {}
    models = {}
    for perp_type in ("perp", "perp_alone"):
        scenario = validate(_raw(name, copies, perp_type), f"{name} x {copies}")
        results[perp_type] = run(scenario, seed=seed)
        models[perp_type] = MarketModel(scenario, seed=seed)
        for _ in range(scenario.steps):
            models[perp_type].step()
    stacked, alone = results["perp"], results["perp_alone"]
    pd.testing.assert_frame_equal(stacked.timeseries, alone.timeseries, check_exact=True)
    pd.testing.assert_frame_equal(stacked.events, alone.events, check_exact=True)
    churned = 0
    for pid, exchange in models["perp"].protocols.items():
        twin = models["perp_alone"].protocols[pid]
        if not isinstance(exchange, PerpExchange):
            continue
        assert (exchange.vault_cash, exchange.treasury, exchange.cash) == (
            twin.vault_cash,
            twin.treasury,
            twin.cash,
        )
        for asset, market in exchange.markets.items():
            for name_, side in market.sides.items():
                other = twin.markets[asset].sides[name_]
                assert side.sums == other.sums
                slots = side.positions.active_slots()
                assert np.array_equal(slots, other.positions.active_slots())
                assert np.array_equal(side.positions.block(slots), other.positions.block(slots))
                churned += side.positions.size - side.positions.count
    assert churned > 0  # positions did close (and slots were reused)
