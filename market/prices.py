"""Reference ("CEX") price process: correlated GBM, Merton jumps, Markov regimes, shocks,
and replayed historical paths.

Random numbers come from the process's own generator and are drawn in blocks of steps,
independent of anything else in the world: a run and its ``feedback=False`` twin see the
same exogenous path, so their difference is the feedback alone. A replayed asset's draws
are still drawn (and unused in ``"replace"`` mode), so the other assets' paths are those
of the same scenario without the replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from liqnet.core.schema import PRICE_BAND
from liqnet.core.units import HOURS_PER_YEAR

if TYPE_CHECKING:
    from liqnet.core.schema import AssetSpec

__all__ = ["PRICE_BAND", "AssetDynamics", "FlowImpact", "PriceProcess", "ReplayPath"]

_BLOCK = 256


@dataclass(frozen=True)
class ReplayPath:
    """A replayed exogenous price path (``liqnet.core.schema.ReplaySpec``).

    Attributes:
        knots: ``(step, price)`` pairs, steps from 1 and increasing: the price at the end
            of each step; step 0 is the asset's initial price.
        add: Add the GBM's log increments to the path (``"add"`` mode) instead of
            replacing them (``"replace"``).
    """

    knots: tuple[tuple[int, float], ...]
    add: bool = False

    def log_path(self, initial_price: float) -> np.ndarray:
        """Log price at steps ``0 .. last knot``: linear in log between knots, exactly
        the knot's log price at a knot's step."""
        steps = np.array([0, *(s for s, _ in self.knots)], dtype=float)
        logs = np.log([initial_price, *(p for _, p in self.knots)])
        return np.interp(np.arange(int(steps[-1]) + 1, dtype=float), steps, logs)


@dataclass(frozen=True)
class AssetDynamics:
    """Annualised dynamics of one asset's log price.

    Attributes:
        price: Initial price in USD.
        drift: Annual drift of the price (GBM mu).
        volatility: Annual volatility in the calm regime.
        jump_intensity: Expected jumps per year (Merton).
        jump_mean: Mean log-jump size.
        jump_std: Standard deviation of the log-jump size.
        replay: A replayed path of the exogenous price, if any.
    """

    price: float
    drift: float
    volatility: float
    jump_intensity: float
    jump_mean: float
    jump_std: float
    replay: ReplayPath | None = None

    @classmethod
    def of(cls, spec: AssetSpec) -> AssetDynamics:
        """The dynamics a scenario's asset table describes."""
        replay = spec.replay
        path = None
        if replay is not None and replay.knots:
            path = ReplayPath(tuple(replay.knots), add=replay.mode == "add")
        return cls(
            spec.price,
            spec.drift,
            spec.volatility,
            spec.jump_intensity,
            spec.jump_mean,
            spec.jump_std,
            path,
        )


class PriceProcess:
    """Multi-asset reference prices stepping forward ``dt_hours`` at a time.

    Args:
        assets: Dynamics per asset name, in a fixed order.
        correlation: Correlation matrix of the diffusive shocks (assets order).
        dt_hours: Length of one step.
        regime_multipliers: Volatility multiplier per regime (regime 0 = calm).
        regime_transitions: Row-stochastic per-step transition matrix between regimes.
        shocks: Scripted shocks, ``{step: {asset: simple return}}``, steps counted from 1.
        rng: The process's own generator.
        initial_regime: Index of the starting regime.
    """

    def __init__(
        self,
        assets: dict[str, AssetDynamics],
        correlation: np.ndarray,
        dt_hours: float,
        regime_multipliers: np.ndarray,
        regime_transitions: np.ndarray,
        shocks: dict[int, dict[str, float]],
        rng: np.random.Generator,
        initial_regime: int = 0,
    ) -> None:
        self.names = tuple(assets)
        dyn = list(assets.values())
        self.dt = dt_hours / HOURS_PER_YEAR
        self.sigma = np.array([a.volatility for a in dyn])
        self.mu = np.array([a.drift for a in dyn])
        self.jump_intensity = np.array([a.jump_intensity for a in dyn])
        self.jump_mean = np.array([a.jump_mean for a in dyn])
        self.jump_std = np.array([a.jump_std for a in dyn])
        # Compensate jumps so the drift is the expected price growth.
        self.jump_compensator = self.jump_intensity * (
            np.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0
        )
        self.cholesky = np.linalg.cholesky(correlation)
        self.regime_multipliers = np.asarray(regime_multipliers, dtype=float)
        self.cumulative_transitions = np.cumsum(regime_transitions, axis=1)
        # Per regime, the volatility scale and drift of a step (rows: regimes), so that a
        # step is a row look-up and two array operations.
        sigmas = self.sigma * self.regime_multipliers[:, None]
        self._step_scale = sigmas * np.sqrt(self.dt)
        self._step_drift = (self.mu - self.jump_compensator - 0.5 * sigmas**2) * self.dt
        self.shock_log_returns = {
            step: np.array([np.log1p(moves.get(n, 0.0)) for n in self.names])
            for step, moves in shocks.items()
        }
        self.rng = rng
        self.regime = initial_regime
        self.log_prices = np.log([a.price for a in dyn])
        self._log_band = (
            self.log_prices + math.log(PRICE_BAND[0]),
            self.log_prices + math.log(PRICE_BAND[1]),
        )
        self._init_replay(dyn)
        self.step_count = 0
        self._block_start = 0
        self._draw_block()

    def _init_replay(self, dyn: list[AssetDynamics]) -> None:
        """Replayed assets: their indices, log paths (one row each, the last knot's value
        held past it) and whether their GBM increments are added (``"add"`` mode)."""
        replayed = [(i, a.replay) for i, a in enumerate(dyn) if a.replay is not None]
        self._replay_index = np.array([i for i, _ in replayed], dtype=np.int64)
        self._replay_add = np.array([r.add for _, r in replayed], dtype=bool)
        paths = [r.log_path(dyn[i].price) for i, r in replayed]
        length = max((p.size for p in paths), default=1)
        self._replay_log = np.array(
            [np.pad(p, (0, length - p.size), mode="edge") for p in paths], dtype=float
        ).reshape(len(paths), length)

    def _draw_block(self) -> None:
        n, k = _BLOCK, len(self.names)
        self._normals = self.rng.standard_normal((n, k)) @ self.cholesky.T
        self._jump_counts = self.rng.poisson(self.jump_intensity * self.dt, (n, k))
        self._jump_normals = self.rng.standard_normal((n, k))
        self._regime_uniforms = self.rng.random(n)
        counts = self._jump_counts
        self._jumps = counts * self.jump_mean + np.sqrt(counts) * self.jump_std * self._jump_normals

    @property
    def prices(self) -> np.ndarray:
        """Current prices, in asset order."""
        return np.exp(self.log_prices)

    def step(self) -> np.ndarray:
        """Advance one step; returns the exogenous log returns applied."""
        i = self.step_count - self._block_start
        if i >= _BLOCK:
            self._block_start += _BLOCK
            self._draw_block()
            i = 0
        row = self.cumulative_transitions[self.regime]
        self.regime = min(int(row.searchsorted(self._regime_uniforms[i], "right")), row.size - 1)
        regime = self.regime
        log_returns = (
            self._step_drift[regime] + self._step_scale[regime] * self._normals[i] + self._jumps[i]
        )
        # Scenario steps are 1-based (step k is the k-th call), like MarketModel.step_index.
        shock = self.shock_log_returns.get(self.step_count + 1)
        if shock is not None:
            log_returns = log_returns + shock
        moved = self.log_prices + log_returns
        if self._replay_index.size:
            moved, log_returns = self._replay_step(moved, log_returns, shock)
        low, high = self._log_band  # (np.clip's wrappers cost twice these two ufuncs)
        self.log_prices = np.minimum(np.maximum(moved, low), high)
        self.step_count += 1
        return log_returns

    def _replay_step(
        self, moved: np.ndarray, log_returns: np.ndarray, shock: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replayed assets move along their paths: the new log price is the path's, plus
        the offset the price had from the path (forced-flow impact and scripted shocks
        stay, as they do on a GBM path), plus the GBM increment in ``"add"`` mode. The
        offset is taken, not the path's increment added, so that with no impact the price
        is the path's to the last bit at every knot."""
        index, last = self._replay_index, self._replay_log.shape[1] - 1
        before = self._replay_log[:, min(self.step_count, last)]
        after = self._replay_log[:, min(self.step_count + 1, last)]
        # "add": the GBM increment (shock included); "replace": the shock alone.
        shocks = shock[index] if shock is not None else np.zeros(index.size)
        own = np.where(self._replay_add, log_returns[index], shocks)
        moved = moved.copy()
        moved[index] = (self.log_prices[index] - before) + after + own
        log_returns = log_returns.copy()
        log_returns[index] = after - before + own
        return moved, log_returns

    def impact(self, asset_index: int, log_move: float) -> None:
        """Apply a permanent price impact (from forced selling) to one asset."""
        low, high = self._log_band[0][asset_index], self._log_band[1][asset_index]
        self.log_prices[asset_index] = min(high, max(low, self.log_prices[asset_index] + log_move))


BOOK_BAND = 0.02
"""The band of the published depth figure: USD resting within 2% of mid (Kaiko)."""

ROUND_MOVE = (-0.5, 1.0)
"""Largest relative peak impact of one cascade round: a round's forced flow at most
halves or doubles the price. The linear extrapolation of the 2% depth is not credible
further out; flow beyond it is taken by liquidity that refills the book within the round
(as the largest observed single-day crash, ETH's -43% on 12 March 2020, never halved it).
Without this cap a book of a few dollars priced a buyback at 1e12 times the price."""


class FlowImpact:
    """Permanent price impact of forced flow: square-root law, bounded by book depth.

    The peak impact of a metaorder of ``Q`` USD is ``Y * sigma_daily * sqrt(Q / V_daily)``
    (Almgren et al. 2005; Toth et al. 2011, "Anomalous price impact and the critical
    nature of liquidity"; Bouchaud et al., "Trades, Quotes and Prices", 2018, ch. 12;
    Donier & Bonart 2015 confirm it on Bitcoin over four decades of size). The price
    relaxes after the metaorder to a share ``permanent`` of the peak, about 2/3 (Farmer,
    Gerig, Lillo & Waelbroeck 2013, "How efficiency shapes market impact"; Said et al.
    2017 measure ~2/3). Forced flow (liquidation sales, liquidation-engine flow, hedges)
    is one metaorder per asset that forgets at rate ``1 / memory_hours``: the law is a
    statement about daily volume, so flow within a day adds up concavely, not chunk by
    chunk (``n`` chunks priced one by one would cost ``sqrt(n)`` times too much).

    The law holds for metaorders worked while the book refills. Forced flow within one
    step has no such time: it cannot move the price less than sweeping the resting book
    does, ``2% x q / depth_2pct`` for ``q`` USD sold in the step against ``depth_2pct``
    USD of bids within 2% of mid (the cumulative depth grows about linearly with the
    distance from mid; Kaiko's 0.1% to 2% depth bands). A round moves the price by the
    larger of the two increments, so a flow that is a large share of the book moves
    the price a lot, and a small one by the square-root law alone.

    Args:
        impact_y: The prefactor ``Y`` (of order 1).
        permanent: Share of the peak impact kept by the reference price.
        daily_volume_usd: Daily traded volume ``V`` per asset, in asset order.
        depth_2pct_usd: Bids within 2% of mid per asset (CEX order books), in asset order.
        memory_hours: Time scale over which the accumulated flow decays.
    """

    def __init__(
        self,
        impact_y: float,
        permanent: float,
        daily_volume_usd: np.ndarray,
        depth_2pct_usd: np.ndarray,
        memory_hours: float,
    ) -> None:
        self.impact_y = float(impact_y)
        self.permanent = float(permanent)
        self.daily_volume_usd = np.asarray(daily_volume_usd, dtype=float)
        self.depth_2pct_usd = np.asarray(depth_2pct_usd, dtype=float)
        self.memory_hours = float(memory_hours)
        self.flow_usd = np.zeros_like(self.daily_volume_usd)
        """Net forced selling (USD, buys negative) remembered per asset."""

    def peak_impact(self, asset_index: int, flow_usd: float, sigma_daily: float) -> float:
        """Square-root law: signed relative peak impact of a net flow (sales: a fall)."""
        volume = self.daily_volume_usd[asset_index]
        return -math.copysign(
            self.impact_y * sigma_daily * math.sqrt(abs(flow_usd) / volume), flow_usd
        )

    def book_impact(self, asset_index: int, flow_usd: float) -> float:
        """Relative move of sweeping the resting book with ``flow_usd`` at once."""
        return -BOOK_BAND * flow_usd / self.depth_2pct_usd[asset_index]

    def decay(self, hours: float) -> None:
        """Forget accumulated flow over ``hours`` of market time."""
        self.flow_usd *= math.exp(-hours / self.memory_hours)

    def add_flow(self, asset_index: int, flow_usd: float, sigma_daily: float) -> float:
        """Record ``flow_usd`` of forced selling; returns the permanent log-price move.

        The square-root part is the change of the remembered metaorder's impact, so a
        flow that reverses earlier selling moves the price back up.
        """
        before = self.flow_usd[asset_index]
        after = before + flow_usd
        self.flow_usd[asset_index] = after
        if self.permanent == 0.0 or self.impact_y == 0.0:
            return 0.0  # switched off: exactly no move
        law = self.peak_impact(asset_index, after, sigma_daily) - self.peak_impact(
            asset_index, before, sigma_daily
        )
        book = self.book_impact(asset_index, flow_usd)
        peak = law if abs(law) >= abs(book) else book
        peak = min(ROUND_MOVE[1], max(ROUND_MOVE[0], peak))
        # A log move, so that a price never turns negative however large the flow.
        return math.log1p(self.permanent * peak)


def daily_volatility(annual_volatility: float) -> float:
    """Daily volatility of an asset trading every day of the year (crypto: 365 days)."""
    return annual_volatility * math.sqrt(24.0 / HOURS_PER_YEAR)
