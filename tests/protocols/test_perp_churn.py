"""Stacked trader churn: exchanges stepped as one array program equal them one by one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols import perp_funding, registry
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios import load
from liqnet.scenarios.loader import validate
from tests.helpers.stacked_worlds import per_object, repeated, stepped_both_ways, twins


def _vary(params: dict[str, Any], copy: int) -> None:
    """Each copy's exchange differs: fees, book size, leverage, churn interval."""
    params["trading_fee"] *= 1 + copy
    params["positions"] = int(params["positions"] * (1 + 0.4 * copy))
    params["leverage_median"] += 2 * copy
    params["churn_interval_hours"] = (4.0, 2.0, 3.0)[copy % 3]


def test_the_built_in_type_is_stacked_and_a_plain_subclass_is_not() -> None:
    assert PerpExchange.is_stacked()
    assert not registry.get_protocol_class(per_object("perp")).is_stacked()
    model = MarketModel(validate(repeated("baseline", 2, {"perp": _vary}, False), "two"))
    assert [len(group) for cls, group in model.users.stacks.items() if cls is PerpExchange] == [2]


@pytest.mark.parametrize(("name", "copies", "seed"), [("flash_crash", 3, 5), ("ecosystem", 1, 11)])
def test_stacked_exchanges_equal_exchanges_stepped_alone(name: str, copies: int, seed: int) -> None:
    """Over a crash (liquidations, ADL, LP runs) every series and event is bit for bit
    the same, and so is every exchange's book."""
    models, _ = stepped_both_ways(name, copies, {"perp": _vary}, seed)
    churned = 0
    for exchange, twin in twins(models, PerpExchange):
        assert (exchange.vault_cash, exchange.treasury, exchange.cash) == (
            twin.vault_cash,
            twin.treasury,
            twin.cash,
        )
        for asset, market in exchange.markets.items():
            for side_name, side in market.sides.items():
                other = twin.markets[asset].sides[side_name]
                assert side.sums == other.sums
                slots = side.positions.active_slots()
                assert np.array_equal(slots, other.positions.active_slots())
                assert np.array_equal(side.positions.block(slots), other.positions.block(slots))
                churned += side.positions.size - side.positions.count
    assert churned > 0  # positions did close (and slots were reused)


@pytest.mark.parametrize(("name", "seed"), [("baseline", 4), ("flash_crash", 8)])
def test_the_edge_floor_bounds_open_edges_and_spares_most_funding_scans(
    name: str, seed: int
) -> None:
    """``PerpSide.edge_floor`` never exceeds an open position's edge (else the churn
    would skip traders it must close for funding), and it is tight enough that a side
    paying funding usually has nothing to scan."""
    model = MarketModel(load(name, {"protocols.2.params.positions": 2_000}), seed=seed)
    exchange = next(p for p in model.protocols.values() if isinstance(p, PerpExchange))
    spared = scanned = 0
    for _ in range(240):
        model.step()
        for market in exchange.markets.values():
            for side in market.sides.values():
                active = side.positions.active_slots()
                if active.size:
                    assert side.edge_floor <= side.positions.columns["edge"][active].min()
                carry = perp_funding.expected_carry(exchange.params, market, side.is_long)
                if carry > 0.0:
                    spared += carry <= side.edge_floor
                    scanned += carry > side.edge_floor
    assert spared > 10 * max(scanned, 1)
