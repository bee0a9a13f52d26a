"""Borrower churn of many lending pools as one array program.

Every few hours some borrowers repay in full (picked uniformly) and new loans open, fewer
when rates are above the pool's reference rate, and only as far as the pool's idle cash
goes (:meth:`LendingPool.act_users`). The collateral books of all pools of a world are
rows of one :class:`PositionStack`, so the churn of ``K`` pools is one pass: draws row by
row from each pool's own stream (in the order one pool alone draws them), picks and the
repaid loans' values for all rows at once, then each row's money in row order (a book's
new loans fit the cash its pool has after the books before it), then slot allocation
and index marks for all rows at once.

Bit for bit as each pool's churn alone (rules one and two of "Stacked protocols" in
``docs/architecture.md``): every per-row sum is over that row's contiguous slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from liqnet.protocols.lending_book import LendingBook
from liqnet.protocols.positions import NO_SLOTS

if TYPE_CHECKING:
    from liqnet.protocols.lending import LendingPool
    from liqnet.protocols.position_stack import PositionStack


@dataclass
class _Row:
    """One collateral book of one pool, with what its borrowers drew."""

    pool: LendingPool
    asset: str
    book: LendingBook
    uniforms: np.ndarray | None  # repayment picks (None: none drawn)
    repaying: int
    collateral: np.ndarray | None = None  # new loans (None: none drawn)
    debt: np.ndarray | None = None
    repaid: np.ndarray = field(default_factory=lambda: NO_SLOTS)


def _draw(pool: LendingPool, days: float, rng: np.random.Generator) -> list[_Row]:
    """One pool's draws, book by book in the order its churn alone makes them."""
    p = pool.params
    rate_ratio = pool.reference_rate / max(pool.rate_model.borrow_rate(pool.utilization()), 1e-9)
    rows = []
    for asset, book in pool.books.items():
        count = book.positions.count
        n_repay = rng.poisson(p.position_turnover_per_day * days * count)
        uniforms = rng.random(2 * n_repay + 4) if n_repay > 0 and count else None
        row = _Row(pool, asset, book, uniforms, n_repay)
        # New loans: fewer when rates are above the reference rate (price lever).
        share = p.collateral[asset].share / sum(c.share for c in p.collateral.values())
        expected = p.position_turnover_per_day * days * p.positions * share
        n_new = rng.poisson(expected * min(2.0, max(0.2, rate_ratio)))
        if n_new and not pool.defaulted:  # a pool in wind-down lends no more
            row.collateral, row.debt = pool._draw_positions(rng, n_new, None, asset)
        rows.append(row)
    return rows


def borrower_churn(
    pools: Sequence[LendingPool], days: Sequence[float], rngs: Sequence[np.random.Generator]
) -> None:
    """Repay and open loans of every pool, ``days[k]`` of churn each.

    Equals calling each pool's own churn in turn, bit for bit; all pools' books must be
    rows of one stack.
    """
    rows = [r for pool, n, rng in zip(pools, days, rngs, strict=True) for r in _draw(pool, n, rng)]
    stack = rows[0].book.positions.stack if rows else None
    if stack is None:
        if rows:
            raise ValueError("borrower_churn needs pools whose books are rows of one stack")
        return
    repaid_collateral, repaid_debt, bounds = _repaid(stack, rows)
    opened: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, row in enumerate(rows):
        pool, book, transfer = row.pool, row.book, row.pool.world.transfer
        start, end = bounds[i], bounds[i + 1]
        if end > start:  # repayments: in full, the collateral goes back
            units = float(repaid_collateral[start:end].sum())
            scaled = float(repaid_debt[start:end].sum())
            book.total_collateral -= units
            book.total_scaled_debt -= scaled
            transfer("borrowers", pool, usd=scaled * pool.borrow_index)
            transfer(pool, "borrowers", asset=row.asset, units=units)
        if row.debt is not None:  # new loans, as far as the cash left now goes
            fits = np.cumsum(row.debt) <= pool.idle_liquidity()
            collateral, debt = row.collateral[fits], row.debt[fits]  # type: ignore[index]
            if debt.size:
                scaled_debt = debt / pool.borrow_index
                book.total_collateral += float(collateral.sum())
                book.total_scaled_debt += float(scaled_debt.sum())
                transfer(pool, "borrowers", usd=float(debt.sum()))
                transfer("borrowers", pool, asset=row.asset, units=float(collateral.sum()))
                opened.append((i, collateral, scaled_debt))
    new = _open(stack, rows, opened)
    edits = [
        (row.book.positions.row, np.concatenate((row.repaid, new[i])))
        for i, row in enumerate(rows)
        if row.repaid.size or new[i].size
    ]
    stack.indexes().mark_edits(
        edits, lambda books, slots: LendingBook.stacked_keys(stack.data, books, slots)
    )


def _repaid(stack: PositionStack, rows: list[_Row]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Pick every row's repaying loans and close them; returns their collateral and
    scaled debt (flat, by row) and each row's bounds in them."""
    picking = [row for row in rows if row.uniforms is not None]
    if not picking:
        return NO_SLOTS.astype(float), NO_SLOTS.astype(float), [0] * (len(rows) + 1)
    books = np.array([row.book.positions.row for row in picking], dtype=np.int64)
    wanted = np.array([row.repaying for row in picking], dtype=np.int64)
    slots, picked = stack.pick(books, [row.uniforms for row in picking], wanted)  # type: ignore[misc]
    ends = np.cumsum(picked).tolist()
    for row, start, end in zip(picking, [0, *ends[:-1]], ends, strict=True):
        row.repaid = slots[start:end]
    counts = np.array([row.repaid.size for row in rows], dtype=np.int64)
    book_rows = np.repeat(books, picked)
    collateral, scaled_debt = stack.data[book_rows, 0, slots], stack.data[book_rows, 1, slots]
    stack.close(book_rows, slots)
    return collateral, scaled_debt, np.concatenate(([0], np.cumsum(counts))).tolist()


def _open(
    stack: PositionStack, rows: list[_Row], opened: list[tuple[int, np.ndarray, np.ndarray]]
) -> list[np.ndarray]:
    """Allocate the new loans' slots, all rows at once; returns each row's slots."""
    new = [NO_SLOTS] * len(rows)
    if not opened:
        return new
    counts = np.array([collateral.size for _, collateral, _ in opened], dtype=np.int64)
    slots = stack.add(
        np.array([rows[i].book.positions.row for i, _, _ in opened], dtype=np.int64),
        counts,
        collateral=np.concatenate([collateral for _, collateral, _ in opened]),
        scaled_debt=np.concatenate([scaled for _, _, scaled in opened]),
    )
    ends = np.cumsum(counts).tolist()
    for (i, _, _), start, end in zip(opened, [0, *ends[:-1]], ends, strict=True):
        new[i] = slots[start:end]
    return new
