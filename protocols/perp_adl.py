"""Auto-deleveraging (ADL) of the perpetual exchange: which winners are reduced, by how much.

The LP vault is the counterparty to every trader, so it is senior only to nothing: a
bankrupt trader's deficit is paid by the insurance fund, then by the vault (LPs' loss),
and only what the vault cannot bear (its NAV would go negative) is taken from winning
traders by ADL (dYdX v4 and Hyperliquid: deleveraging is the last resort once the
insurance fund and the backstop vault are exhausted). :func:`cover_deficit` is that
waterfall.

GMX v2 also deleverages before the pool is at risk: once traders' pending profit on a
market side reaches ``MAX_PNL_FACTOR_FOR_ADL`` (55%) of the pool, keepers close the most
profitable positions until it is back to ``MIN_PNL_FACTOR_AFTER_ADL`` (50%); those
closes pay the profit in full (gmx-synthetics ``AdlUtils``, ``config/markets.ts``).

Either way ADL *reduces positions*, it does not cut margin: a winner's position is closed
in part or in whole, most highly ranked first. Ranking as Hyperliquid:
``(mark / entry) * (notional / account value)`` (shorts: ``entry / mark``), i.e. the
unrealised PnL ratio times the leverage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from liqnet.protocols.perp_book import PerpMarket, PerpSide

if TYPE_CHECKING:
    from liqnet.protocols.perp import PerpExchange


def ranked_winners(side: PerpSide, price: float, funding: float) -> tuple[np.ndarray, np.ndarray]:
    """Profitable positions of ``side`` and their PnL, best ADL rank first (Hyperliquid)."""
    slots = side.positions.active_slots()
    pnl = side.pnl(slots, price, funding)
    profitable = pnl > 0
    slots, pnl = slots[profitable], pnl[profitable]
    if slots.size == 0:
        return slots, pnl
    cols = side.positions.columns
    entry, size, margin = cols["entry"][slots], cols["size"][slots], cols["margin"][slots]
    ratio = price / entry if side.is_long else entry / price
    rank = ratio * size * price / np.maximum(margin + pnl, 1e-9)
    order = np.argsort(-rank, kind="stable")
    return slots[order], pnl[order]


def close_fractions(pnl: np.ndarray, amount: float) -> np.ndarray:
    """Share of each ranked position to close so that the closed parts' profit is
    ``amount``: whole positions from the top, part of the last one."""
    taken_before = np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    return np.clip((amount - taken_before) / pnl, 0.0, 1.0)


def profit_to_close(side_pnl: float, pool_usd: float, trigger: float, target: float) -> float:
    """GMX v2: profit to realise so that side PnL / pool falls from above ``trigger`` back
    to ``target``; 0 below the trigger.

    Closing profit ``x`` at the mark pays it from the pool, so the ratio becomes
    ``(pnl - x) / (pool - x)``; solving for ``target`` gives ``(pnl - t pool) / (1 - t)``.
    """
    if pool_usd <= 0.0 or side_pnl <= trigger * pool_usd:
        return 0.0
    return min(side_pnl, (side_pnl - target * pool_usd) / (1.0 - target))


def deleverage(
    exchange: PerpExchange,
    market: PerpMarket,
    side: PerpSide,
    amount: float,
    price: float,
    forfeit: bool,
) -> float:
    """Close the best-ranked winners of ``side`` (wholly, the last one in part) until
    their closed profit is ``amount``; returns the profit closed.

    ``forfeit``: the closed parts settle at zero profit (the trader gets the margin back
    and the vault no longer owes the profit: that covers a deficit the vault cannot);
    otherwise the vault pays the profit in full (GMX v2's pool-protecting ADL).
    """
    slots, pnl = ranked_winners(side, price, market.funding_index)
    if slots.size == 0:
        return 0.0
    fraction = close_fractions(pnl, amount)
    hit = fraction > 0.0
    slots, pnl, fraction = slots[hit], pnl[hit], fraction[hit]
    closed = side.reduce(slots, fraction)
    profit = float(fraction @ pnl)
    paid = 0.0 if forfeit else profit
    exchange.vault_cash -= paid
    exchange.world.transfer(exchange, "traders", usd=float(closed[2].sum()) + paid)
    if forfeit:
        exchange.adl_usd += profit
    exchange.adl_closed_usd += float(closed[0].sum()) * price
    return profit


def deleverage_over_threshold(exchange: PerpExchange) -> None:
    """GMX v2 ADL: reduce the winners of any market side whose PnL exceeds the trigger
    share of the vault's cash (the pool), down to the target share (O(1) per side until
    it fires: the side PnL comes from running sums)."""
    p = exchange.params
    for market in exchange.markets.values():
        price = exchange.world.oracle_prices[market.asset]
        for side in market.sides.values():
            side_pnl = side.pnl(None, price, market.funding_index)
            amount = profit_to_close(
                side_pnl, exchange.vault_cash, p.adl_pnl_trigger, p.adl_pnl_target
            )
            if amount > 0.0:
                deleverage(exchange, market, side, amount, price, forfeit=False)


def cover_deficit(
    exchange: PerpExchange, market: PerpMarket, side_name: str, deficit: np.ndarray, price: float
) -> np.ndarray:
    """Insurance fund first, then the LP vault (bad debt), then auto-deleveraging.

    The vault is every trader's counterparty, so LPs lose before winning traders do:
    ADL takes only what would push the vault's NAV below zero (dYdX v4 and
    Hyperliquid deleverage once the insurance fund and the backstop vault are spent).
    Returns each position's share of what the vault bore.
    """
    total = float(np.add.reduce(deficit))  # (no ndarray.sum wrapper: once per fill)
    if total <= 0.0:
        return np.zeros_like(deficit)
    from_insurance = min(total, exchange.insurance_fund)
    exchange.insurance_fund -= from_insurance
    remaining = total - from_insurance
    if remaining <= 0.0:
        return np.zeros_like(deficit)
    beyond_vault = remaining - max(exchange.vault_nav(), 0.0)
    exchange.vault_cash -= remaining  # the vault pays the deficit out of its cash
    taken = 0.0
    if beyond_vault > 0.0:
        other = market.sides["short" if side_name == "long" else "long"]
        taken = deleverage(exchange, market, other, beyond_vault, price, forfeit=True)
    borne = remaining - taken
    exchange.realised_bad_debt += borne
    return deficit * (borne / total)
