"""Trader churn of many perpetual exchanges as one array program.

Every few hours traders close some positions (picked uniformly, plus those whose funding
carry now exceeds their edge) and open new ones (:meth:`PerpExchange.act_users`). The
books of all exchanges in a world are rows of one :class:`PositionStack`, so the churn of
``K`` exchanges is one pass over ``rows = K x markets x 2`` books instead of ``K`` passes
of Python: draws row by row from each exchange's own streams (in the order one exchange
alone draws them), then picking, closing, slot allocation and opening for all rows at
once, then each row's bookkeeping in row order.

It reproduces the exchanges churned one at a time bit for bit (rules one and two of
"Stacked protocols" in ``docs/architecture.md``): element-wise arithmetic is the same
whether done per row or for all rows, and every per-row sum is taken over that row's
contiguous slice (``ndarray.sum`` over a slice adds as over a separate array). The
side's running sums keep their own gather and product per row, as ``PerpSide.close``
computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from liqnet.protocols import perp_funding
from liqnet.protocols.perp_book import PerpSide
from liqnet.protocols.positions import NO_SLOTS

if TYPE_CHECKING:
    from liqnet.protocols.perp import PerpExchange
    from liqnet.protocols.perp_book import PerpMarket
    from liqnet.protocols.position_stack import PositionStack


@dataclass
class _Row:
    """One side of one market of one exchange, with what its traders drew."""

    exchange: PerpExchange
    market: PerpMarket
    side: PerpSide
    price: float
    carry: float = 0.0  # funding carry a position on this side expects (perp_funding)
    leaving: np.ndarray = field(default_factory=lambda: NO_SLOTS)
    notional: np.ndarray | None = None  # new positions (None: none open)
    leverage: np.ndarray | None = None
    edge: np.ndarray | None = None


def _draw(exchange: PerpExchange, days: float, rng: np.random.Generator) -> list[tuple]:
    """One exchange's draws, side by side in the order its churn alone makes them.

    Returns ``(row, uniforms, n_close)`` per side; the uniforms are ``None`` when the
    side draws no picks (nothing to close), as ``sample_active`` then draws none.
    """
    p = exchange.params
    rate = p.trader_turnover_per_day * days
    drawn = []
    for market, share in zip(exchange.markets.values(), exchange.market_shares, strict=True):
        price = exchange.world.oracle_prices[market.asset]
        for side in market.sides.values():
            # Each open position closes at the turnover rate; new ones arrive at the
            # rate that keeps the book at its configured size and split.
            expected = rate * p.positions * share * exchange._side_share(side)
            row = _Row(exchange, market, side, price)
            row.carry = perp_funding.expected_carry(p, market, side.is_long)
            n_close = rng.poisson(rate * side.positions.count)
            uniforms = None
            if n_close > 0 and side.positions.count:
                uniforms = rng.random(2 * n_close + 4)  # PositionArrays.sample_active's
            n_open = rng.poisson(expected)
            if n_open and not exchange.defaulted:  # in wind-down: closes only
                row.notional = exchange._draw_notional(rng, n_open)
                row.leverage = exchange.leverages.sample(rng, n_open)
                row.edge = perp_funding.draw_edges(
                    exchange._edge_rng, n_open, row.carry, p.trader_edge_mean
                )
            drawn.append((row, uniforms, n_close))
    return drawn


def _leaving(stack: PositionStack, drawn: list[tuple]) -> None:
    """Each row's leaving slots: its picks, with the out-carried ones merged in."""
    picking = [(row, u, n) for row, u, n in drawn if u is not None]
    if picking:
        rows = np.array([row.side.positions.row for row, _, _ in picking], dtype=np.int64)
        wanted = np.array([n for _, _, n in picking], dtype=np.int64)
        slots, counts = stack.pick(rows, [u for _, u, _ in picking], wanted)
        bounds = np.concatenate(([0], np.cumsum(counts))).tolist()
        for (row, _, _), start, end in zip(picking, bounds[:-1], bounds[1:], strict=True):
            row.leaving = slots[start:end]
    # Row by row: a row's slots are contiguous, and a masked pass over the whole stack
    # (as wide as its widest row) cost twice as much in a 36-protocol world. A side
    # whose carry does not exceed its edge floor has nothing to scan (nearly every churn).
    for row, _, _ in drawn:
        side = row.side
        if row.carry > 0.0 and row.carry > side.edge_floor:
            positions = side.positions
            active = positions.active_slots()
            edges = positions.columns["edge"][active]
            out = perp_funding.out_carried(edges, row.carry)
            carried = active[out]
            kept = edges[~out]
            side.edge_floor = float(np.minimum.reduce(kept)) if kept.size else np.inf
            if carried.size:
                row.leaving = np.union1d(row.leaving, carried)


def trader_churn(
    exchanges: Sequence[PerpExchange], days: Sequence[float], rngs: Sequence[np.random.Generator]
) -> None:
    """Close and open traders' positions of every exchange, ``days[k]`` of churn each.

    Equals calling each exchange's own churn in turn, bit for bit: money moves row by
    row in the order one exchange after another moves it. All exchanges' books must be
    rows of one stack.
    """
    drawn = [d for ex, n, rng in zip(exchanges, days, rngs, strict=True) for d in _draw(ex, n, rng)]
    if not drawn:
        return
    stack = drawn[0][0].side.positions.stack
    if stack is None:
        raise ValueError("trader_churn needs exchanges whose books are rows of one stack")
    _leaving(stack, drawn)
    rows = [row for row, _, _ in drawn]
    closing = _Closes(stack, rows)
    opening = _Opens(stack, rows)
    edits = []
    for i, row in enumerate(rows):
        shut = closing.book(i, row)
        new = opening.book(i, row)
        if shut.size or new.size:
            edits.append((row.side.positions.row, np.concatenate((shut, new))))
    # Each side's key, vectorised over the books: the sign of a side by its row.
    is_long = np.zeros(len(stack.rows), dtype=bool)
    is_long[[row.side.positions.row for row in rows]] = [row.side.is_long for row in rows]
    stack.indexes().mark_edits(
        edits, lambda books, slots: PerpSide.stacked_keys(stack.data, is_long, books, slots)
    )


def close_voluntarily(
    exchange: PerpExchange, market: PerpMarket, side: PerpSide, slots: np.ndarray, price: float
) -> np.ndarray:
    """Close ``slots`` of one side at ``price`` where the trader's equity is positive;
    returns the closed slots, not yet marked in the index."""
    stack = side.positions.stack
    if stack is None:
        raise ValueError("close_voluntarily needs a side whose book is a row of a stack")
    row = _Row(exchange, market, side, price, leaving=np.asarray(slots, dtype=np.int64))
    return _Closes(stack, [row]).book(0, row)


class _Closes:
    """Healthy leaving traders take profit or cut losses (``_close_voluntarily`` of
    every row at once); an underwater trader waits for liquidation instead.

    The closing values of all rows are gathered once, so a book row's sums are a
    column slice of each (rule two): ``money`` (pnl, fee, equity) is C-ordered, one
    field per row, and its slice's ``sum(axis=1)`` adds each field as a separate array
    would; ``block`` (size, entry, margin, funding entry) is laid out, strides and all,
    as the ``positions.block(slots)`` that ``PerpSide.close`` sums and multiplies (a
    gather along the slot axis comes out Fortran-ordered, and a reduction's order
    follows the layout).
    """

    def __init__(self, stack: PositionStack, rows: list[_Row]) -> None:
        counts = np.array([row.leaving.size for row in rows], dtype=np.int64)
        self.kept_bounds = [0] * (len(rows) + 1)
        if not counts.any():
            return
        book_rows = np.repeat([row.side.positions.row for row in rows], counts)
        slots = np.concatenate([row.leaving for row in rows])
        gathered = stack.data[book_rows, :4, slots]  # (slots, 4)
        size, entry, margin, funding_entry = gathered.T
        price = np.repeat([row.price for row in rows], counts)
        funding = np.repeat([row.market.funding_index for row in rows], counts)
        sign = np.repeat([row.side.sign for row in rows], counts)
        fee_rate = np.repeat(
            [r.exchange.params.trading_fee * r.exchange.price_multiplier for r in rows], counts
        )
        # PerpSide.block_pnl and the fee, element by element as for one row.
        pnl = sign * (size * (price - entry) - size * (funding - funding_entry))
        fee = fee_rate * size * price
        equity = margin + pnl - fee
        healthy = equity > 0
        kept = np.concatenate(([0], np.cumsum(healthy)))
        self.kept_bounds = kept[np.concatenate(([0], np.cumsum(counts)))].tolist()
        self.slots = slots[healthy]
        self.block = gathered[healthy].T
        self.money = np.array([pnl[healthy], fee[healthy], equity[healthy]])
        stack.close(book_rows[healthy], self.slots)

    def book(self, i: int, row: _Row) -> np.ndarray:
        """Row ``i``'s money moves and running sums; returns its closed slots."""
        start, end = self.kept_bounds[i], self.kept_bounds[i + 1]
        if start == end:
            return NO_SLOTS
        row.side._update_sums(self.block[:, start:end], -1.0)
        pnl, fees, equity = np.add.reduce(self.money[:, start:end], axis=1).tolist()
        ex = row.exchange
        ex.vault_cash -= pnl
        ex.treasury += fees
        ex.revenue += fees
        ex.world.transfer(ex, "traders", usd=equity)
        return self.slots[start:end]


class _Opens:
    """New positions at the oracle price (``PerpExchange._open`` of every row at once);
    traders pay margin and fees."""

    def __init__(self, stack: PositionStack, rows: list[_Row]) -> None:
        counts = np.array(
            [0 if row.notional is None else row.notional.size for row in rows], dtype=np.int64
        )
        self.bounds = np.concatenate(([0], np.cumsum(counts))).tolist()
        if not counts.any():
            self.slots = NO_SLOTS
            return
        opening = [row for row in rows if row.notional is not None]
        notional = np.concatenate([row.notional for row in opening])
        leverage = np.concatenate([row.leverage for row in opening])
        price = np.repeat([row.price for row in rows], counts)
        cap = np.repeat([1.0 / row.market.initial_margin for row in rows], counts)
        leverage = np.minimum(np.maximum(leverage, 1.0), cap)
        margin = notional / leverage
        size = notional / price
        # One field per row, so a book row's three totals are one sum over its slice.
        self.values = np.array([size, margin, notional])
        self.slots = stack.add(
            np.array([row.side.positions.row for row in rows], dtype=np.int64),
            counts,
            size=size,
            entry=price,
            margin=margin,
            funding_entry=np.repeat([row.market.funding_index for row in rows], counts),
            edge=np.concatenate([row.edge for row in opening]),
        )
        for row in opening:
            if row.edge is not None:  # (drawn with the notional)
                row.side.lower_edge_floor(row.edge)

    def book(self, i: int, row: _Row) -> np.ndarray:
        """Row ``i``'s money moves and running sums; returns its new (unmarked) slots."""
        start, end = self.bounds[i], self.bounds[i + 1]
        if start == end:
            return NO_SLOTS
        ex, sums = row.exchange, row.side.sums
        total_size, margin_total, notional = np.add.reduce(
            self.values[:, start:end], axis=1
        ).tolist()
        # PerpSide.add's running sums, with one entry price and funding index per batch.
        sums["size_entry"] += float(row.price) * total_size
        sums["margin"] += margin_total
        sums["size_funding"] += float(row.market.funding_index) * total_size
        sums["size"] += total_size
        fees = ex.params.trading_fee * ex.price_multiplier * notional
        ex.world.transfer("traders", ex, usd=margin_total + fees)
        ex.treasury += fees
        ex.revenue += fees
        return self.slots[start:end]
