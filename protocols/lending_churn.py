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
from liqnet.protocols.position_stack import FEW_ROWS
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
    collateral: np.ndarray | None = None  # new loans (None: none drawn, or none fit)
    debt: np.ndarray | None = None
    new_loans: tuple[np.ndarray, np.ndarray] | None = None  # collateral, scaled debt
    repaid: np.ndarray = field(default_factory=lambda: NO_SLOTS)
    repaid_sums: tuple[float, float] = (0.0, 0.0)  # collateral units, scaled debt
    opened: np.ndarray = field(default_factory=lambda: NO_SLOTS)


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
        expected = p.position_turnover_per_day * days * p.positions * pool.collateral_shares[asset]
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
    _repay(stack, rows)
    for row in rows:
        pool, book, transfer = row.pool, row.book, row.pool.world.transfer
        if row.repaid.size:  # repayments: in full, the collateral goes back
            units, scaled = row.repaid_sums
            book.total_collateral -= units
            book.total_scaled_debt -= scaled
            transfer("borrowers", pool, usd=scaled * pool.borrow_index)
            transfer(pool, "borrowers", asset=row.asset, units=units)
        if row.debt is not None:  # new loans, as far as the cash left now goes
            fits = np.cumsum(row.debt) <= pool.idle_liquidity()
            collateral, debt = row.collateral[fits], row.debt[fits]  # type: ignore[index]
            if debt.size:
                row.new_loans = (collateral, debt / pool.borrow_index)
                units, scaled, usd = np.add.reduce(
                    np.array([collateral, row.new_loans[1], debt]), axis=1
                )
                book.total_collateral += float(units)
                book.total_scaled_debt += float(scaled)
                transfer(pool, "borrowers", usd=float(usd))
                transfer("borrowers", pool, asset=row.asset, units=float(units))
    _open(stack, [row for row in rows if row.new_loans is not None])
    stack.indexes().mark_edits(
        [
            (row.book.positions.row, np.concatenate((row.repaid, row.opened)))
            for row in rows
            if row.repaid.size or row.opened.size
        ],
        lambda books, slots: LendingBook.stacked_keys(stack.data, books, slots),
    )


def _repay(stack: PositionStack, rows: list[_Row]) -> None:
    """Pick every row's repaying loans, note their collateral and scaled debt, close
    them (row by row for a few rows, else all at once)."""
    picking = [row for row in rows if row.uniforms is not None]
    if len(picking) <= FEW_ROWS:
        for row in picking:
            positions = row.book.positions
            row.repaid = slots = positions.pick_from(row.uniforms, row.repaying)  # type: ignore[arg-type]
            columns = positions.columns
            repaid = np.array([columns["collateral"][slots], columns["scaled_debt"][slots]])
            row.repaid_sums = tuple(np.add.reduce(repaid, axis=1).tolist())
            positions.close(slots)
        return
    books = np.array([row.book.positions.row for row in picking], dtype=np.int64)
    wanted = np.array([row.repaying for row in picking], dtype=np.int64)
    slots, picked = stack.pick(books, [row.uniforms for row in picking], wanted)  # type: ignore[misc]
    book_rows = np.repeat(books, picked)
    # One field per row: a book's two sums are one sum over its column slice, and each
    # field's slice adds as a separate array would (rule two).
    repaid = np.array([stack.data[book_rows, 0, slots], stack.data[book_rows, 1, slots]])
    ends = np.cumsum(picked).tolist()
    for row, start, end in zip(picking, [0, *ends[:-1]], ends, strict=True):
        row.repaid = slots[start:end]
        row.repaid_sums = tuple(np.add.reduce(repaid[:, start:end], axis=1).tolist())
    stack.close(book_rows, slots)


def _open(stack: PositionStack, opening: list[_Row]) -> None:
    """Allocate the new loans' slots (row by row for a few rows, else all at once)."""
    if len(opening) <= FEW_ROWS:
        for row in opening:
            collateral, scaled_debt = row.new_loans  # type: ignore[misc]
            row.opened = row.book.positions.add(collateral=collateral, scaled_debt=scaled_debt)
        return
    loans = [row.new_loans for row in opening if row.new_loans is not None]
    counts = np.array([scaled.size for _, scaled in loans], dtype=np.int64)
    slots = stack.add(
        np.array([row.book.positions.row for row in opening], dtype=np.int64),
        counts,
        collateral=np.concatenate([collateral for collateral, _ in loans]),
        scaled_debt=np.concatenate([scaled for _, scaled in loans]),
    )
    ends = np.cumsum(counts).tolist()
    for row, start, end in zip(opening, [0, *ends[:-1]], ends, strict=True):
        row.opened = slots[start:end]
