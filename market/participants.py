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
from liqnet.market.liquidation_choice import choose_together, sale_proceeds
from liqnet.market.prices import BOOK_BAND
from liqnet.protocols.base import LiquidationOffer

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel


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
        return sale_proceeds(pool, units)

    def choose(self, offer: LiquidationOffer, pool: ConstantProductPool) -> np.ndarray:
        """Share of each of the offer's entries this liquidator takes (0 none, 1 all).

        Entries are tried in order of their bonus (collateral value minus repayment). A
        first guess of each share is what the capital reaches at the marginal price; an
        entry the offer lets be taken in part (``partial_cap``: Aave lets a liquidator
        repay less than the close factor allows) is cut to what the pool buys at more
        than the collateral costs, and an all-or-nothing entry is left unless the pool
        buys all of it so. The profit of each share accounts
        for the slippage of all sales before it; shares that do not pay
        ``min_profit_usd`` are dropped and the rest re-priced once (dropping sales only
        improves the others' prices). Then the liquidator takes every profitable share
        its capital affords, in that order
        (:func:`~liqnet.market.liquidation_choice.affordable_shares`): a loan too large to
        afford never blocks the others. (:func:`~liqnet.market.liquidation_choice.choose_together`
        of this one offer: the cascade of a batch weighs all its worlds' offers at once.)
        """
        return choose_together([self], [offer], [pool])[0]


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
