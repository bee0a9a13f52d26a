"""Funding of the perpetual exchange: the mark/index premium and traders' carry.

dYdX v4 (docs "Funding", and the help-centre article "Funding" of dydx.exchange): the
funding rate has a premium component and an interest rate component and is quoted as an
8-hour rate; the premium is sampled (one-minute samples averaged over each hour), the
8-hour rate is ``premium + interest``, paid hourly as one eighth of it, and clamped at
600% x (initial - maintenance margin) per 8 hours. The interest component is 0.01% per
8 hours (dYdX v4 ``default_funding_ppm = 100``).

In this world the **index** is the oracle price the exchange liquidates at and the
**mark** is the AMM pool price (``world.pool_price``): the perp's own order book is not
modelled, and the pool is where trading away from the index shows. Arbitrage keeps the two
close in calm markets: within the pool fee, which dYdX's impact bid/ask spread stands for
(``impact_spread``), so the premium is zero then; during a cascade forced sales push the
pool away from the index and funding follows that dislocation. One sample per step stands
for the hourly average (steps are an hour by default).

Traders respond to funding. Each position carries an *edge*: the return on notional its
trader expects over the holding horizon, drawn when it opens as the carry it accepted then
plus an exponential excess. At each churn batch, positions whose expected funding carry
over the horizon now exceeds their edge close.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from liqnet.protocols.perp_book import PerpMarket, PerpParams

_NO_HORIZON_HOURS = 365.0 * 24.0
"""Holding horizon when traders never turn over (a year)."""


def premium(mark: float, index: float, half_spread: float) -> float:
    """The 8-hour premium component (dYdX v4): ``(max(0, impact bid - index) - max(0,
    index - impact ask)) / index``, the impact prices ``mark * (1 -/+ half_spread)``.

    A mark inside the spread of the index pays no premium: arbitrage leaves an AMM pool
    anywhere within its fee of the reference, and that band is no dislocation.
    """
    if index <= 0.0:
        return 0.0
    bid, ask = mark * (1.0 - half_spread), mark * (1.0 + half_spread)
    return (max(0.0, bid - index) - max(0.0, index - ask)) / index


def funding_rate_8h(
    premium_8h: float,
    skew: float,
    skew_premium: float,
    interest_8h: float,
    cap_8h: float,
    multiplier: float,
) -> float:
    """Clamped 8-hour funding rate (positive: longs pay shorts).

    ``premium + interest`` as dYdX v4, with an optional open-interest-skew term (GMX
    style, ``skew_premium`` per unit of skew; 0 by default). The price lever scales the
    market-driven part, never the interest component.
    """
    raw = (premium_8h + skew_premium * skew) * multiplier + interest_8h
    return min(cap_8h, max(-cap_8h, raw))


def holding_horizon_hours(turnover_per_day: float) -> float:
    """Expected remaining holding time of a position: ``1 / turnover`` (memoryless)."""
    if turnover_per_day <= 0.0:
        return _NO_HORIZON_HOURS
    return min(_NO_HORIZON_HOURS, 24.0 / turnover_per_day)


def expected_long_carry(
    rate_hourly: float, interest_hourly: float, horizon_hours: float, persistence_hours: float
) -> float:
    """Funding a long expects to pay per unit of notional over its horizon (shorts: minus).

    The interest component persists; the premium is expected to last only
    ``persistence_hours`` (arbitrage closes a dislocation), so a momentary spike does not
    count as if it were paid for the whole horizon.
    """
    premium_hourly = rate_hourly - interest_hourly
    return interest_hourly * horizon_hours + premium_hourly * min(horizon_hours, persistence_hours)


def draw_edges(rng: np.random.Generator, n: int, carry: float, mean_excess: float) -> np.ndarray:
    """Edges of ``n`` new positions: the carry they accept now plus an exponential excess.

    A trader opens only when the edge beats the funding it expects to pay; by the memoryless
    property the excess over that carry is exponential with the same mean.
    """
    excess = rng.exponential(mean_excess, n) if mean_excess > 0.0 else np.zeros(n)
    return max(carry, 0.0) + excess


def out_carried(edges: np.ndarray, carry: float) -> np.ndarray:
    """Mask of positions whose expected carry now exceeds their edge."""
    if carry <= 0.0 or not math.isfinite(carry):
        return np.zeros(edges.shape, dtype=bool)
    return edges < carry


def expected_carry(params: PerpParams, market: PerpMarket, is_long: bool) -> float:
    """Funding per unit of notional a position on one side expects over its horizon."""
    long_carry = expected_long_carry(
        market.funding_rate_hourly,
        params.interest_rate_8h / 8.0,
        holding_horizon_hours(params.trader_turnover_per_day),
        params.premium_persistence_hours,
    )
    return long_carry if is_long else -long_carry
