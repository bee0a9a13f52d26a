"""Cascade rounds: liquidators' partial fills are executed and conserve money."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.market.cascade import run_cascade
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
