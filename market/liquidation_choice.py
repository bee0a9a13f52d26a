"""Liquidators' choice among offered liquidations, for several offers in one array program.

Each offer a liquidator weighs (one world's, in the cascade of a batch) is a row of 2-D
arrays, padded at its end with entries never worth taking. Every step is the arithmetic
of one offer weighed alone, element by element, and sums run along a row in order
(``cumsum`` is sequential), so each row's shares equal bit for bit those of the offer
weighed on its own: a lone :meth:`~liqnet.market.participants.Liquidator.choose` is
:func:`choose_together` of one. The cascade of a batch asks once per offer position and
liquidator for all its worlds (:func:`liqnet.market.cascade.run_cascades`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from liqnet.market.amm import ConstantProductPool
from liqnet.protocols.base import LiquidationOffer

if TYPE_CHECKING:
    from liqnet.market.participants import Liquidator

AFFORD_PASSES = 8
"""Passes of the capital fixed point in :func:`affordable_shares` (each is feasible)."""


def _column(value: float | np.ndarray) -> float | np.ndarray:
    """``value``, one number or one per row, as what broadcasts along the rows."""
    return value if np.ndim(value) == 0 else np.asarray(value, dtype=float)[:, None]


def affordable_shares(
    repay: np.ndarray,
    margin: np.ndarray,
    partial_cap: np.ndarray,
    gas: float | np.ndarray,
    min_profit: float | np.ndarray,
    capital: float | np.ndarray,
) -> np.ndarray:
    """Share of each entry, taken in order, that ``capital`` can fill profitably.

    Entry ``j`` (``margin[j]`` = its profit before gas, <= 0 if not to be taken) is repaid
    from ``capital`` plus the profit of the entries taken before it (capital is recycled
    within a round): all of it when that covers ``repay[j]``, else the affordable share
    up to ``partial_cap[j]`` (0: all or nothing), if that share still pays. A large loan
    that does not fit does not stop the smaller ones behind it.

    Every entry's choice only grows with the cash before it, and that cash only grows
    with the shares before it, so iterating from "capital alone" climbs to the sequential
    answer; each pass is already affordable (it spends only cash the previous, smaller
    pass had), so stopping after :data:`AFFORD_PASSES` passes is safe. A partial fill's
    profit is counted as its share of the whole entry's (the pool's quote is concave, so
    the sale pays at least that).

    The arrays are one offer's entries, or ``(rows, entries)`` for several offers, with
    ``gas``, ``min_profit`` and ``capital`` one number or one per row; each row stops at
    the pass at which it alone would.
    """
    # Along the last axis throughout, so that one offer needs no reshaping.
    if repay.ndim == 1:
        sure = every_row_sure = min_profit >= 0.0
        cash = capital = max(capital, 0.0)
    else:
        sure = np.asarray(min_profit) >= 0.0
        every_row_sure = bool(sure.all())
        gas, min_profit = _column(gas), _column(min_profit)
        cash = capital = np.maximum(_column(capital), 0.0)
    worth = (margin > 0) & (margin - gas >= min_profit)
    # Every worthwhile entry taken whole is the most any pass can give; with profits of
    # at least min_profit >= 0 the cash only grows, so the next pass would repeat it.
    everything = worth.astype(float)
    shares = np.zeros(repay.shape)
    done = np.zeros(repay.shape[:-1], dtype=bool)
    owed = repay > 0
    for _ in range(AFFORD_PASSES):
        share = np.minimum(np.divide(cash, repay, out=np.ones(repay.shape), where=owed), 1.0)
        share = np.where(share < 1.0, np.minimum(share, partial_cap), share)
        new = np.where(worth & (share > 0) & (share * margin - gas >= min_profit), share, 0.0)
        if every_row_sure and np.array_equal(new, everything):
            return new  # every capital covers every worthwhile entry (the usual case)
        # A row ends when it repeats, or when its capital covers every worthwhile entry;
        # its answer is then kept while the others go on.
        ended = (new == shares).all(axis=-1) | (sure & (new == everything).all(axis=-1))
        shares = np.where(done[..., None], shares, new) if done.any() else new
        done |= ended
        if done.all():
            break
        profit = np.where(shares > 0, shares * margin - gas, 0.0)
        cash = capital + np.cumsum(profit, axis=-1) - profit
    return shares


class _Pools:
    """The rows' pools: their reserves and fee as ``(rows, 1)`` columns, or as numbers
    when there is one row (its arrays then one-dimensional)."""

    def __init__(self, pools: Sequence[ConstantProductPool]) -> None:
        if len(pools) == 1:
            units, usd, fee = pools[0].units, pools[0].usd, pools[0].fee
        else:
            units, usd, fee = np.array([(p.units, p.usd, p.fee) for p in pools]).T[:, :, None]
        self.units, self.usd, self.keep = units, usd, 1.0 - fee
        # ConstantProductPool.units_sellable_above's k (1 - f), multiplied as it does.
        self.invariant_kept = units * usd * self.keep
        self.price = usd / units

    def proceeds(self, units: np.ndarray) -> np.ndarray:
        """USD from selling each entry of each row in turn (Liquidator.sale_proceeds)."""
        effective = np.cumsum(units, axis=-1) * self.keep
        cumulative = self.usd * effective / (self.units + effective)
        each = cumulative.copy()  # np.diff(prepend=0) without its Python overhead
        np.subtract(cumulative[..., 1:], cumulative[..., :-1], out=each[..., 1:])
        return each

    def worth_selling(
        self, share: np.ndarray, units: np.ndarray, cost: np.ndarray, cap: np.ndarray
    ) -> np.ndarray:
        """Cut each share to the units the pool buys above their cost per unit.

        A divisible entry is cut to them; an all-or-nothing one (``cap`` 0) is dropped
        unless the pool buys all its units above their cost, so no liquidator sells more
        than the pool absorbs at a price that pays: it leaves the entry on offer (another
        liquidator, a later round or step, once arbitrage has refilled the pool) instead
        of dumping it at a loss per unit that the bonus of its first units hides.
        ``cost`` is each entry's USD outlay net of reward (no cost: any price pays); the
        sales of the (larger) first guesses before an entry are counted, so the cut is on
        the safe side.
        """
        sold = share * units
        before = np.cumsum(sold, axis=-1) - sold
        held = units > 0
        per_unit = np.divide(cost, units, out=np.zeros(units.shape), where=held)
        priced = per_unit > 0
        # ConstantProductPool.units_sellable_above, row by row.
        ratio = np.divide(self.invariant_kept, per_unit, out=np.ones(units.shape), where=priced)
        sellable = np.maximum(np.sqrt(ratio) - self.units, 0.0) / self.keep
        room = np.where(priced, sellable - before, np.inf)
        most = np.divide(room, units, out=np.ones(units.shape), where=held)
        most = np.minimum(np.maximum(most, 0.0), 1.0)  # np.clip, without its wrapper
        cut = np.where(cap > 0, np.minimum(share, most), np.where(most >= 1.0, share, 0.0))
        return np.where(cut < 1.0, np.minimum(cut, cap), cut)


def sale_proceeds(pool: ConstantProductPool, units: np.ndarray) -> np.ndarray:
    """USD from selling each of ``units`` in turn on ``pool`` (each sale moves the pool
    for the next), without trading."""
    return _Pools([pool]).proceeds(units)


_FIELDS = ("seize_units", "repay_usd", "reward_usd", "partial_cap")
"""The arrays of an offer that a choice weighs, in the order of :func:`_rows`."""


def _rows(offers: Sequence[LiquidationOffer], length: int) -> np.ndarray:
    """``(fields, offers, length)``: each of :data:`_FIELDS` of each offer as a row,
    padded with zeros (no ``partial_cap``: all zeros, all or nothing)."""
    out = np.zeros((len(_FIELDS), len(offers), length))
    for row, offer in enumerate(offers):
        size = len(offer)
        for field, name in enumerate(_FIELDS):
            values = getattr(offer, name)
            if values is not None:
                out[field, row, :size] = values
    return out


def choose_together(
    liquidators: Sequence[Liquidator],
    offers: Sequence[LiquidationOffer],
    pools: Sequence[ConstantProductPool],
) -> list[np.ndarray]:
    """:meth:`~liqnet.market.participants.Liquidator.choose` of ``liquidators[i]`` for
    ``offers[i]`` on ``pools[i]``, every ``i`` in one array program; the shares of each."""
    chosen: list[np.ndarray] = [np.zeros(0)] * len(offers)
    sales, gases = [], []
    for i, (liquidator, offer) in enumerate(zip(liquidators, offers, strict=True)):
        gas = liquidator.gas_cost_usd * liquidator.model.gas_multiplier
        if not offer.seize_units.any() and not offer.repay_usd.any():
            # Keeper work (perp liquidations): a fixed reward, no sale, no capital needed.
            chosen[i] = (offer.reward_usd - gas >= liquidator.min_profit_usd).astype(float)
        else:
            sales.append(i)
            gases.append(gas)
    if sales:
        shares = _choose_sales(
            [liquidators[i] for i in sales],
            [offers[i] for i in sales],
            [pools[i] for i in sales],
            gases,
        )
        for i, share in zip(sales, shares, strict=True):
            chosen[i] = share
    return chosen


def _choose_sales(
    liquidators: Sequence[Liquidator],
    offers: Sequence[LiquidationOffer],
    pools: Sequence[ConstantProductPool],
    gases: list[float],
) -> list[np.ndarray]:
    """The choice of offers that sell collateral (see ``Liquidator.choose``), one per row.

    Along the last axis throughout: one offer's arrays are one-dimensional and its
    numbers plain floats (the scalar world's case, at the cost of one offer alone), and
    several offers' arrays are rows, their numbers ``(rows, 1)`` columns.
    """
    one = len(offers) == 1
    sizes = [len(offer) for offer in offers]
    length = max(sizes)
    mps = [liquidator.min_profit_usd for liquidator in liquidators]
    capitals = [liquidator.cash for liquidator in liquidators]
    gas: float | np.ndarray
    mp: float | np.ndarray
    capital: float | np.ndarray
    gas_column: float | np.ndarray
    mp_column: float | np.ndarray
    if one:
        (offer,) = offers
        cap = np.zeros(length) if offer.partial_cap is None else offer.partial_cap
        fields = (offer.seize_units, offer.repay_usd, offer.reward_usd, cap)
        gas, mp, capital = gases[0], mps[0], capitals[0]
        gas_column, mp_column = gas, mp
    else:
        fields = tuple(_rows(offers, length))
        gas, mp, capital = np.array(gases), np.array(mps), np.array(capitals)
        gas_column, mp_column = gas[:, None], mp[:, None]
    reserves = _Pools(pools)
    seize, repay, reward = fields[0], fields[1], fields[2]
    value = seize * reserves.price + reward - repay
    # Slippage only lowers proceeds: entries that fail at the marginal price fail for
    # sure. They go last in the order (the padding too), and only the columns of the
    # rest are weighed: the first rounds of a crash offer much that never pays.
    worth = value - gas_column >= mp_column
    if min(sizes) < length:
        worth &= np.arange(length) < np.array(sizes)[:, None]
    counts = np.count_nonzero(worth, axis=-1).reshape(-1).tolist()
    if not any(counts):
        return [np.zeros(size) for size in sizes]
    order = np.argsort(np.where(worth, -value, np.inf), axis=-1, kind="stable")
    order = order[..., : max(counts)]
    if one:
        weighed = [a[order] for a in (*fields, value)]
    else:
        rows = np.arange(len(offers))[:, None]
        gathered = np.stack((*fields, value))[:, rows, order]
        if min(counts) < order.shape[-1]:  # the shorter rows' tails weigh nothing
            tails = np.arange(order.shape[-1]) >= np.array(counts)[:, None]
            gathered = np.where(tails, 0.0, gathered)
        weighed = list(gathered)
    units, repay, reward, cap, margin = weighed
    share = affordable_shares(repay, margin, cap, gas, mp, capital)
    share = reserves.worth_selling(share, units, repay - reward, cap)
    sold = share * units
    net = share * (reward - repay)
    keep = (share > 0) & (reserves.proceeds(sold) + net - gas_column >= mp_column)
    proceeds = reserves.proceeds(np.where(keep, sold, 0.0))
    # Profit before gas of each share, priced with every kept sale before it: taking
    # fewer or smaller shares ahead only raises it, and a part of a share earns at
    # least its part of it (the pool's quote is concave).
    margin = np.where(keep, proceeds + net, 0.0)
    part_cap = np.where(share < 1.0, 1.0, cap)  # within a partial share, any part
    final = share * affordable_shares(share * repay, margin, part_cap, gas, mp, capital)
    shares = []
    orders, finals = ([order], [final]) if one else (order, final)
    for size, row_order, row, taken in zip(sizes, orders, finals, counts, strict=True):
        out = np.zeros(size)
        out[row_order[:taken]] = row[:taken]
        shares.append(out)
    return shares
