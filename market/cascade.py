"""Cascade rounds: liquidations, fire sales, price impact and oracle updates in a step.

Each round every protocol offers its liquidatable positions at current oracle prices;
liquidators take the profitable ones and sell the collateral on the AMM pools; the
sales, perp liquidation-engine flow and hedges are forced flow that moves the reference
price by the square-root law (``FlowImpact``: one metaorder per asset, remembered over a
day, against the asset's daily volume; at least as much as sweeping the CEX book's 2%
depth with the round's flow); oracles may update; and the next round
starts, until no liquidation is taken or the round limit is reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from liqnet.market.liquidation_choice import choose_together
from liqnet.market.prices import daily_volatility
from liqnet.protocols.base import LiquidationOffer

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel
    from liqnet.market.participants import Liquidator


@dataclass
class RoundStats:
    """What one cascade round did."""

    liquidations: int = 0
    repaid_usd: float = 0.0
    bad_debt_usd: float = 0.0
    hedges: int = 0
    hedged_usd: float = 0.0


@dataclass
class _WorldRound:
    """One world's cascade round in progress: its offers, and what the round did so far."""

    model: MarketModel
    offers: list[LiquidationOffer]
    stats: RoundStats = field(default_factory=RoundStats)
    flows: dict[str, float] = field(default_factory=dict)  # net forced selling, USD per asset


def run_cascade(model: MarketModel) -> list[RoundStats]:
    """Run cascade rounds for the current step; returns the stats of each active round."""
    return run_cascades([model])[0]


def run_cascades(models: Sequence[MarketModel]) -> list[list[RoundStats]]:
    """:func:`run_cascade` of several worlds in lockstep; the rounds of each.

    Round by round, and within a round offer by offer and liquidator by liquidator, one
    call weighs the offers of every world that has one (:func:`choose_together`). A world
    whose cascade has ended (a round with nothing taken, or its round limit) is left out
    of the later rounds rather than waited for. Worlds share nothing a cascade reads or
    writes (stacked books hold each world's rows apart), and each world's own steps keep
    their order, so each ends as its cascade alone would, bit for bit.
    """
    histories: list[list[RoundStats]] = [[] for _ in models]
    for model in models:
        model.flow_impact.decay(model.dt_hours)
    going = list(range(len(models)))
    round_index = 0
    while going:
        live: list[tuple[int, _WorldRound]] = []
        for i in going:
            model = models[i]
            if round_index >= model.max_cascade_rounds:
                continue
            # Every protocol, defaulted ones too: an insolvent pool's liquidation engine
            # keeps running (Aave v3 and Compound v3 accept liquidations whatever the
            # reserves).
            offers = [o for p in model.protocols.values() for o in p.liquidation_candidates()]
            if offers or model.hedgers:
                live.append((i, _WorldRound(model, offers)))
        _execute_offers([world for _, world in live], round_index)
        going = []
        for i, world in live:
            model, stats = world.model, world.stats
            _execute_hedges(model, round_index, stats, world.flows)
            if stats.liquidations == 0 and stats.hedges == 0:
                continue
            histories[i].append(stats)
            if model.feedback:
                for asset, flow_usd in world.flows.items():
                    apply_impact(model, asset, flow_usd)
            model.poll_oracles()
            going.append(i)
        round_index += 1
    return histories


def _worth_weighing(model: MarketModel, offer: LiquidationOffer) -> bool:
    """Whether any entry pays the world's hurdle at the marginal price.

    Most rounds offer only dust that no liquidator takes even at the marginal price
    (slippage only lowers proceeds): it is refused once here instead of once per
    liquidator.
    """
    value = offer.seize_units * model.pools[offer.asset].price + offer.reward_usd
    value -= offer.repay_usd
    return bool(value.size) and value.max() >= model.liquidation_hurdle_usd


def _execute_offers(worlds: Sequence[_WorldRound], round_index: int) -> None:
    """Each world's offers of the round in turn, liquidator by liquidator, every world's
    choice at one offer position and liquidator in one call."""
    for position in range(max((len(w.offers) for w in worlds), default=0)):
        # What is still on offer in each world: untouched entries whole, partial fills' rest.
        rests = [
            (w, w.offers[position])
            for w in worlds
            if position < len(w.offers) and _worth_weighing(w.model, w.offers[position])
        ]
        index = 0
        while rests := [(w, rest) for w, rest in rests if index < len(w.model.liquidators)]:
            liquidators = [w.model.liquidators[index] for w, _ in rests]
            pools = [w.model.pools[rest.asset] for w, rest in rests]
            chosen = choose_together(liquidators, [rest for _, rest in rests], pools)
            left = []
            for (w, rest), liquidator, shares in zip(rests, liquidators, chosen, strict=True):
                still = _fill(w, liquidator, rest, shares, round_index)
                if still is not None and len(still):
                    left.append((w, still))
            rests, index = left, index + 1


def _fill(
    world: _WorldRound,
    liquidator: Liquidator,
    rest: LiquidationOffer,
    shares: np.ndarray,
    round_index: int,
) -> LiquidationOffer | None:
    """Execute the ``shares`` of ``rest`` one liquidator took; returns what is left."""
    model, stats, flows = world.model, world.stats, world.flows
    if rest.partial_cap is None and np.equal(shares, 1.0).all():
        # It took everything whole (a perp's keeper work, usually): the offer is the
        # fill, and nothing is left for the next liquidator (take() would copy it).
        _execute_fill(model, liquidator, rest, round_index, stats, flows)
        return None
    taken = np.flatnonzero(shares > 0)
    if not taken.size:
        return rest
    filled = rest.take(taken, shares[taken])
    _execute_fill(model, liquidator, filled, round_index, stats, flows)
    left = np.flatnonzero(shares < 1.0)
    return rest.take(left, 1.0 - shares[left])


def _execute_fill(model: MarketModel, liquidator, filled, round_index: int, stats, flows) -> None:
    """Execute what one liquidator took (``filled``: the entries, scaled to its shares)."""
    pool = model.pools[filled.asset]
    accepted = np.ones(len(filled), dtype=bool)
    repay, units, reward = filled.repay_usd, filled.seize_units, filled.reward_usd
    # The liquidator pays the repayment and takes the collateral and its reward: the
    # protocol books that exchange itself, everything else it moves by transfers.
    protocol = filled.protocol
    # (ufunc reductions directly: ndarray.sum adds a Python wrapper per call.)
    repaid, rewarded, sold = (float(np.add.reduce(a)) for a in (repay, reward, units))
    outcome = model.world.call(
        protocol,
        "execute_liquidations",
        protocol.execute_liquidations,
        filled,
        accepted,
        usd=repaid - rewarded,
        asset=filled.asset,
        units=-sold,
    )
    # Sell one by one: the pool's cumulative quote.
    proceeds = liquidator.sale_proceeds(pool, units)
    if sold > 0:
        pool.sell(sold)
    gas = liquidator.gas_cost_usd * model.gas_multiplier * len(filled)
    liquidator.cash += (float(np.add.reduce(proceeds)) + rewarded - repaid) - gas
    model.external_cash["gas"] += gas
    # Forced flow at market value: the liquidators' sales, and the units the protocol's
    # own liquidation engine trades on its venue (perp closes).
    flow_units = sold + float(outcome.impact_units or 0.0)
    if flow_units:
        reference = model.reference_prices[filled.asset]
        flows[filled.asset] = flows.get(filled.asset, 0.0) + flow_units * reference
    model.events.append(
        step=model.step_index,
        round=round_index,
        kind="liquidation",
        protocol=protocol.protocol_id,
        book=filled.book,
        asset=filled.asset,
        position=filled.slots,
        repaid_usd=repay,
        seized_units=units,
        proceeds_usd=proceeds,
        reward_usd=reward,
        bad_debt_usd=outcome.bad_debt_usd,
        oracle_price=model.oracle_prices[filled.asset],
    )
    stats.liquidations += len(filled)
    stats.repaid_usd += repaid
    stats.bad_debt_usd += float(np.add.reduce(outcome.bad_debt_usd))


def _execute_hedges(model: MarketModel, round_index: int, stats, flows) -> None:
    """Fill hedging protocols' orders on the pools (they move prices like fire sales)."""
    for protocol in model.hedgers:
        if protocol.defaulted:
            continue
        for asset, units in protocol.hedge_orders().items():
            if abs(units) <= 1e-12:
                continue
            pool = model.pools[asset]
            usd = pool.sell(units) if units > 0 else -pool.buy_units(-units)
            model.world.call(
                protocol,
                "on_hedge_fill",
                protocol.on_hedge_fill,
                asset,
                -units,
                usd,
                usd=usd,
                asset=asset,
                units=-units,
            )
            flows[asset] = flows.get(asset, 0.0) + units * model.reference_prices[asset]
            model.events.append(
                step=model.step_index,
                round=round_index,
                kind="hedge",
                protocol=protocol.protocol_id,
                book="hedge",
                asset=asset,
                position=np.array([-1]),
                repaid_usd=0.0,
                seized_units=float(units),
                proceeds_usd=float(usd),
                reward_usd=0.0,
                bad_debt_usd=0.0,
                oracle_price=model.oracle_prices[asset],
            )
            stats.hedges += 1
            stats.hedged_usd += abs(usd)


def apply_impact(model: MarketModel, asset: str, flow_usd: float) -> None:
    """Move the reference price by the permanent impact of ``flow_usd`` (``FlowImpact``).

    Square-root law, Toth et al. (2011) / Bouchaud et al. (2018): peak impact
    ``Y * sigma_daily * sqrt(Q / V)`` with ``sigma_daily`` of the current volatility
    regime (liquidity thins when volatility rises), at least the sweep of the CEX book's
    2% depth; ``permanent_impact`` of it kept (Farmer et al. 2013).
    """
    index = model.asset_names.index(asset)
    process = model.price_process
    annual = float(process.sigma[index] * process.regime_multipliers[process.regime])
    sigma = daily_volatility(annual)
    process.impact(index, model.flow_impact.add_flow(index, flow_usd, sigma))
