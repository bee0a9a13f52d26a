"""Cascade rounds: liquidators' partial fills are executed and conserve money."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.market import MarketModel, cascade
from liqnet.market.cascade import run_cascade
from liqnet.market.model import step_together
from liqnet.protocols.position_stack import StackRegistry
from liqnet.scenarios import load
from tests.helpers.worlds import Small


def test_a_loan_larger_than_any_capital_is_liquidated_in_part(small: Small) -> None:
    # Issue 13 item 3: a $12.9M close-factor repayment and liquidators holding $1M each
    # took nothing before; now each repays what its capital allows, round after round.
    model = MarketModel(small())
    pool = model.protocols["aave"]
    book = pool.books["ETH"]
    price = model.oracle_prices["ETH"]
    debt = 10_000.0 * price * 0.83 / 0.968  # HF 0.968: 50% may be repaid
    (slot,) = book.add(np.array([10_000.0]), np.array([debt / pool.borrow_index]))
    for liquidator in model.liquidators:
        liquidator.cash = 1e6
    cash, units = model.total_cash(), model.total_units()
    revenue = pool.revenue
    rounds = run_cascade(model)
    left = float(book.positions["scaled_debt"][slot]) * pool.borrow_index
    repaid = debt - left
    assert rounds and sum(r.liquidations for r in rounds) >= 2
    # More than one liquidator's capital, less than the close factor allows.
    assert 1e6 < repaid < debt / 2
    assert sum(r.repaid_usd for r in rounds) == pytest.approx(repaid, rel=1e-9)
    assert pool.revenue > revenue  # the protocol fee on every part
    assert model.total_cash() == pytest.approx(cash, abs=1e-3)
    for asset, total in model.total_units().items():
        assert total == pytest.approx(units[asset], abs=1e-6)


@pytest.mark.parametrize("world", ["flash_crash", "bank_run"])
def test_no_liquidator_sells_below_cost(world: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unit a liquidator sells fetches at least what it cost (issue 19): before, an
    all-or-nothing entry whose whole sale paid was sold whole, its last units below their
    cost (seed 0: flash_crash 7 entries, up to 35 ETH each beyond what the pool absorbed
    at their cost; bank_run 13)."""
    below: list[float] = []
    sold = [0]
    execute = cascade._execute_fill

    def watched(model, liquidator, filled, round_index, stats, flows) -> None:  # type: ignore[no-untyped-def]
        pool = model.pools[filled.asset]
        units = filled.seize_units
        cost = (filled.repay_usd - filled.reward_usd) / np.where(units > 0, units, 1.0)
        priced = (units > 0) & (cost > 0)  # without a cost any price pays
        # Units the pool buys above each entry's cost, less the sales before it.
        room = np.full(units.shape, np.inf)
        room[priced] = pool.units_sellable_above(cost[priced]) - (np.cumsum(units) - units)[priced]
        over = priced & (units > room * (1 + 1e-9) + 1e-12)
        below.extend((units[over] - room[over]).tolist())
        sold[0] += int((units > 0).sum())
        execute(model, liquidator, filled, round_index, stats, flows)

    monkeypatch.setattr(cascade, "_execute_fill", watched)
    model = MarketModel(load(world, {"seed": 0}))
    while model.running:
        model.step()
    assert sold[0] > 500  # the crash liquidates and sells
    assert below == []


def test_cascades_in_lockstep_equal_each_world_alone(small: Small) -> None:
    """The cascade rounds of a batch run in lockstep (one liquidator choice per offer
    and liquidator for every world); each world ends as its cascade alone would, bit for
    bit, whether its cascade ends before, with or after the others'."""
    scenario = small("flash_crash", positions=400)
    registry = StackRegistry()
    together = [MarketModel(scenario, seed=s, position_stacks=registry) for s in range(3)]
    alone = [MarketModel(scenario, seed=s) for s in range(3)]
    ended_apart = 0
    for _ in range(40):
        step_together(together)
        for model in alone:
            model.step()
        ended_apart += len({len(m.cascade_history[-1]) for m in together}) > 1
    for a, b in zip(alone, together, strict=True):
        assert a.cascade_history == b.cascade_history
        assert a.events.to_frame().equals(b.events.to_frame())
        assert a.timeseries().equals(b.timeseries())
        assert [lq.cash for lq in a.liquidators] == [lq.cash for lq in b.liquidators]
    liquidations = [sum(r.liquidations for s in m.cascade_history for r in s) for m in together]
    assert min(liquidations) > 0
    assert ended_apart > 0  # some worlds' cascades ended while others' went on
