"""Interest-rate models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np


@dataclass
class KinkedRateModel:
    """Two-slope ("kinked") variable borrow rate, as in Aave v3 and Compound.

    ``base + slope1 * U / U_opt`` below the kink, ``base + slope1 + slope2 * (U - U_opt) /
    (1 - U_opt)`` above it. Source: aave-v3-origin,
    ``DefaultReserveInterestRateStrategyV2.sol``. Rates are annual fractions.

    Attributes:
        base: Rate at zero utilisation.
        slope1: Rate added between zero and optimal utilisation.
        slope2: Rate added between optimal and full utilisation.
        optimal_utilization: The kink, in (0, 1).
    """

    base: float
    slope1: float
    slope2: float
    optimal_utilization: float

    def __post_init__(self) -> None:
        if not 0.0 < self.optimal_utilization < 1.0:
            raise ValueError(f"optimal_utilization = {self.optimal_utilization}: must be in (0, 1)")
        for name in ("base", "slope1", "slope2"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} = {getattr(self, name)}: must be >= 0")

    @overload
    def borrow_rate(self, utilization: float) -> float: ...
    @overload
    def borrow_rate(self, utilization: np.ndarray) -> float | np.ndarray: ...
    def borrow_rate(self, utilization: float | np.ndarray) -> float | np.ndarray:
        """Annual variable borrow rate at utilisation ``utilization`` (clipped to [0, 1])."""
        if isinstance(utilization, float | int):  # scalar fast path: the per-step call
            u = min(1.0, max(0.0, float(utilization)))
            if u <= self.optimal_utilization:
                return self.base + self.slope1 * u / self.optimal_utilization
            excess = (u - self.optimal_utilization) / (1.0 - self.optimal_utilization)
            return self.base + self.slope1 + self.slope2 * excess
        u = np.clip(utilization, 0.0, 1.0)
        below = self.base + self.slope1 * u / self.optimal_utilization
        above = (
            self.base
            + self.slope1
            + self.slope2 * (u - self.optimal_utilization) / (1.0 - self.optimal_utilization)
        )
        rate = np.where(u <= self.optimal_utilization, below, above)
        return float(rate) if np.ndim(rate) == 0 else rate

    def supply_rate(
        self, utilization: float | np.ndarray, reserve_factor: float
    ) -> float | np.ndarray:
        """Annual supply rate: ``borrow_rate * U * (1 - reserve_factor)``."""
        u = np.clip(utilization, 0.0, 1.0)
        rate = self.borrow_rate(u) * u * (1.0 - reserve_factor)
        return float(rate) if np.ndim(rate) == 0 else rate
