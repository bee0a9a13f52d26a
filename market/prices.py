"""Reference ("CEX") price process: correlated GBM, Merton jumps, Markov regimes, shocks.

Random numbers come from the process's own generator and are drawn in blocks of steps,
independent of anything else in the world: a run and its ``feedback=False`` twin see the
same exogenous path, so their difference is the feedback alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqnet.core.units import HOURS_PER_YEAR

_BLOCK = 256


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
    """

    price: float
    drift: float
    volatility: float
    jump_intensity: float
    jump_mean: float
    jump_std: float


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
        self.step_count = 0
        self._block_start = 0
        self._draw_block()

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
        self.log_prices = self.log_prices + log_returns
        self.step_count += 1
        return log_returns

    def impact(self, asset_index: int, log_move: float) -> None:
        """Apply a permanent price impact (from forced selling) to one asset."""
        self.log_prices[asset_index] += log_move
