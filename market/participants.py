"""Market participants that are not protocols: liquidators and arbitrageurs.

Both are ``mesa.Agent``s with their own capital, a gas cost per transaction and a
minimum profit: a liquidation or an arbitrage that does not pay after slippage and gas
is not taken. That refusal is how bad debt arises when gas spikes or pools are thin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from liqnet.market.amm import ConstantProductPool
from liqnet.market.prices import BOOK_BAND
from liqnet.protocols.base import LiquidationOffer

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel


_AFFORD_PASSES = 8
"""Passes of the capital fixed point in :func:`affordable_shares` (each is feasible)."""


def affordable_shares(
    repay: np.ndarray,
    margin: np.ndarray,
    partial_cap: np.ndarray,
    gas: float,
    min_profit: float,
    capital: float,
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
    pass had), so stopping after :data:`_AFFORD_PASSES` passes is safe. A partial fill's
    profit is counted as its share of the whole entry's (the pool's quote is concave, so
    the sale pays at least that).
    """
    capital = max(capital, 0.0)
    worth = (margin > 0) & (margin - gas >= min_profit)
    # Every worthwhile entry taken whole is the most any pass can give; with profits of
    # at least min_profit >= 0 the cash only grows, so the next pass would repeat it.
    everything = worth.astype(float) if min_profit >= 0.0 else None
    shares = np.zeros(repay.shape)
    cash = np.full(repay.shape, capital)
    for _ in range(_AFFORD_PASSES):
        share = np.minimum(np.divide(cash, repay, out=np.ones(repay.shape), where=repay > 0), 1.0)
        share = np.where(share < 1.0, np.minimum(share, partial_cap), share)
        new = np.where(worth & (share > 0) & (share * margin - gas >= min_profit), share, 0.0)
        if np.array_equal(new, shares):
            break
        if everything is not None and np.array_equal(new, everything):
            return new  # the capital covers every worthwhile entry (the usual case)
        shares = new
        profit = np.where(shares > 0, shares * margin - gas, 0.0)
        cash = capital + np.cumsum(profit) - profit
    return shares


class Liquidator(mesa.Agent):
    """Repays unhealthy debt for a bonus and sells the seized collateral on the AMM.

    Args:
        model: The world.
        capital_usd: Cash available to repay debt (recycled within a round).
        gas_cost_usd: Gas per liquidation transaction (before the world's gas multiplier).
        min_profit_usd: Smallest profit worth a transaction.
    """

    def __init__(
        self, model: MarketModel, capital_usd: float, gas_cost_usd: float, min_profit_usd: float
    ) -> None:
        super().__init__(model)
        self.cash = capital_usd
        self.gas_cost_usd = gas_cost_usd
        self.min_profit_usd = min_profit_usd

    def sale_proceeds(self, pool: ConstantProductPool, units: np.ndarray) -> np.ndarray:
        """USD from selling each entry in turn (each sale moves the pool for the next)."""
        if not units.any():
            return np.zeros(units.size)  # keeper work: nothing sold (the quote of 0 is 0)
        cumulative = pool.quote_sell(np.cumsum(units))
        return np.diff(np.concatenate(([0.0], cumulative)))

    def choose(self, offer: LiquidationOffer, pool: ConstantProductPool) -> np.ndarray:
        """Share of each of the offer's entries this liquidator takes (0 none, 1 all).

        Entries are tried in order of their bonus (collateral value minus repayment). A
        first guess of each share is what the capital reaches at the marginal price; an
        entry the offer lets be taken in part (``partial_cap``: Aave lets a liquidator
        repay less than the close factor allows) is cut to what the pool buys at more
        than the collateral costs, and an all-or-nothing entry is left unless the pool
        buys all of it so (:meth:`_worth_selling`). The profit of each share accounts
        for the slippage of all sales before it; shares that do not pay
        ``min_profit_usd`` are dropped and the rest re-priced once (dropping sales only
        improves the others' prices). Then the liquidator takes every profitable share
        its capital affords, in that order (:func:`affordable_shares`): a loan too large
        to afford never blocks the others.
        """
        gas = self.gas_cost_usd * self.model.gas_multiplier
        if not offer.seize_units.any() and not offer.repay_usd.any():
            # Keeper work (perp liquidations): a fixed reward, no sale, no capital needed.
            return (offer.reward_usd - gas >= self.min_profit_usd).astype(float)
        value = offer.seize_units * pool.price + offer.reward_usd - offer.repay_usd
        # Slippage only lowers proceeds: entries that fail at the marginal price fail for
        # sure. Dust positions that never pay are refused here, without any pool maths,
        # and only the rest is sorted (they would all come after it in the order anyway).
        worth = np.flatnonzero(value - gas >= self.min_profit_usd)
        shares = np.zeros(len(offer))
        if worth.size == 0:
            return shares
        order = worth[np.argsort(-value[worth], kind="stable")]
        units, repay = offer.seize_units[order], offer.repay_usd[order]
        reward = offer.reward_usd[order]
        cap = np.zeros(order.size) if offer.partial_cap is None else offer.partial_cap[order]
        mp = self.min_profit_usd
        share = affordable_shares(repay, value[order], cap, gas, mp, self.cash)
        share = self._worth_selling(pool, share, units, repay - reward, cap)
        sold = share * units
        net = share * (reward - repay)
        keep = (share > 0) & (self.sale_proceeds(pool, sold) + net - gas >= mp)
        proceeds = self.sale_proceeds(pool, np.where(keep, sold, 0.0))
        # Profit before gas of each share, priced with every kept sale before it: taking
        # fewer or smaller shares ahead only raises it, and a part of a share earns at
        # least its part of it (the pool's quote is concave).
        margin = np.where(keep, proceeds + net, 0.0)
        part_cap = np.where(share < 1.0, 1.0, cap)  # within a partial share, any part
        shares[order] = share * affordable_shares(
            share * repay, margin, part_cap, gas, mp, self.cash
        )
        return shares

    @staticmethod
    def _worth_selling(
        pool: ConstantProductPool,
        share: np.ndarray,
        units: np.ndarray,
        cost: np.ndarray,
        cap: np.ndarray,
    ) -> np.ndarray:
        """Cut each share to the units the pool buys above their cost per unit.

        A divisible entry is cut to them; an all-or-nothing one (``cap`` 0) is dropped
        unless the pool buys all its units above their cost, so no liquidator sells more
        than the pool absorbs at a price that pays: it leaves the entry on offer (another
        liquidator, a later round or step, once arbitrage has refilled the pool) instead of
        dumping it at a loss per unit that the bonus of its first units hides. ``cost`` is
        each entry's USD outlay net of reward (no cost: any price pays); the sales of the
        (larger) first guesses before an entry are counted, so the cut is on the safe side.
        """
        sold = share * units
        before = np.cumsum(sold) - sold
        per_unit = np.divide(cost, units, out=np.zeros(units.shape), where=units > 0)
        room = np.full(units.shape, np.inf)
        priced = per_unit > 0
        room[priced] = pool.units_sellable_above(per_unit[priced]) - before[priced]
        most = np.clip(np.divide(room, units, out=np.ones(units.shape), where=units > 0), 0, 1)
        cut = np.where(cap > 0, np.minimum(share, most), np.where(most >= 1.0, share, 0.0))
        return np.where(cut < 1.0, np.minimum(cut, cap), cut)


class Arbitrageur(mesa.Agent):
    """Pulls an AMM pool's price toward the reference ("CEX") price, capital permitting.

    CEX-DEX arbitrage: buy on the cheap venue, sell on the dear one. What one step can
    move is the arbitrageur's own capital plus what the CEX order book takes within the
    dislocation: the scenario's ``cex_depth_2pct_usd`` scaled linearly to the gap
    (depth within ``g`` = depth within 2% x g / 2%), so a large gap is closed fast and a
    small one slowly, as with inventory-constrained arbitrage against a book.

    Args:
        model: The world.
        capital_usd: Own capital per pool per step, in USD.
        gas_cost_usd: Gas per trade.
        min_profit_usd: Smallest profit worth a trade.
    """

    def __init__(
        self, model: MarketModel, capital_usd: float, gas_cost_usd: float, min_profit_usd: float
    ) -> None:
        super().__init__(model)
        self.cash = capital_usd
        self.capital_usd = capital_usd
        self.gas_cost_usd = gas_cost_usd
        self.min_profit_usd = min_profit_usd
        self.cex_depth_usd = {
            name: spec.cex_depth_2pct_usd for name, spec in model.scenario.market.assets.items()
        }

    def step_capacity_usd(self, pool: ConstantProductPool, reference_price: float) -> float:
        """Largest trade this step: own capital plus CEX depth within the price gap.

        The CEX leg is laid off against the book as the DEX leg fills, so the depth
        part needs no cash of its own; it does need the arbitrageur to have some (margin
        on the exchange): with none it trades nothing.
        """
        own = min(self.capital_usd, max(self.cash, 0.0))
        if own <= 0.0:
            return 0.0
        gap = abs(pool.price - reference_price) / reference_price
        return own + self.cex_depth_usd.get(pool.asset, 0.0) * gap / BOOK_BAND

    def arbitrage(self, pool: ConstantProductPool, reference_price: float) -> float:
        """Trade ``pool`` toward ``reference_price``; returns the USD profit (0 if none).

        The leg on the reference venue is with the outside market (``external`` accounts)
        at the reference price.
        """
        direction, amount = pool.arbitrage_trade(reference_price)
        if direction == "none":
            return 0.0
        gas = self.gas_cost_usd * self.model.gas_multiplier
        budget = self.step_capacity_usd(pool, reference_price)
        external_cash = self.model.external_cash
        external_units = self.model.external_units
        if direction == "buy":
            usd_in = min(amount, budget)
            effective = usd_in * (1.0 - pool.fee)
            units_out = pool.units * effective / (pool.usd + effective)
            profit = units_out * reference_price - usd_in - gas
            if profit < self.min_profit_usd:
                return 0.0
            units_out = pool.buy_with(usd_in)
            sale = units_out * reference_price
            self.cash += sale - usd_in - gas
            external_cash["cex"] -= sale
            external_units[pool.asset] += units_out
        else:
            units_in = min(amount, budget / reference_price)
            cost = units_in * reference_price
            profit = float(pool.quote_sell(units_in)) - cost - gas
            if profit < self.min_profit_usd:
                return 0.0
            external_cash["cex"] += cost
            external_units[pool.asset] -= units_in
            self.cash += pool.sell(units_in) - cost - gas
        external_cash["gas"] += gas
        return profit
