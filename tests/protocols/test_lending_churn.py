"""Stacked borrower churn: lending pools and comets stepped as stacks equal them alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from liqnet.protocols.comet import CometPool
from liqnet.protocols.lending import LendingPool
from tests.helpers.stacked_worlds import stepped_both_ways, twins


def _vary(params: dict[str, Any], copy: int) -> None:
    """Each copy's pool differs: book size, utilisation, turnover, churn interval."""
    params["positions"] = int(params["positions"] * (1 + 0.3 * copy))
    params["position_turnover_per_day"] = 0.05 * (1 + copy)
    params["churn_interval_hours"] = (4.0, 2.0, 6.0)[copy % 3]


def test_both_lending_types_are_stacked_each_by_its_exact_type() -> None:
    assert LendingPool.is_stacked() and CometPool.is_stacked()


@pytest.mark.parametrize(("name", "copies", "seed"), [("flash_crash", 3, 2), ("bank_run", 2, 9)])
def test_stacked_pools_equal_pools_stepped_alone(name: str, copies: int, seed: int) -> None:
    """Through a crash or a run (repayments, new loans cut to the cash left, liquidations)
    every series and event is bit for bit the same, and so is every pool's book."""
    models, _ = stepped_both_ways(name, copies, {"lending": _vary, "comet": _vary}, seed)
    repaid = 0
    for cls in (LendingPool, CometPool):
        pairs = twins(models, cls)
        assert len(pairs) == copies
        for pool, twin in pairs:
            assert (pool.cash, pool.scaled_deposits, pool.reserves) == (
                twin.cash,
                twin.scaled_deposits,
                twin.reserves,
            )
            for asset, book in pool.books.items():
                other = twin.books[asset]
                assert (book.total_collateral, book.total_scaled_debt) == (
                    other.total_collateral,
                    other.total_scaled_debt,
                )
                slots = book.positions.active_slots()
                assert np.array_equal(slots, other.positions.active_slots())
                assert np.array_equal(book.positions.block(slots), other.positions.block(slots))
                repaid += book.positions.size - book.positions.count
    assert repaid > 0
