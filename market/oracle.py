"""Price oracles: deviation threshold, heartbeat and latency (Chainlink-like)."""

from __future__ import annotations

from collections import deque


class Oracle:
    """Publishes one asset's reference price to protocols.

    A new price is published when the observed price deviates from the last published
    one by at least ``deviation_threshold`` or when ``heartbeat_steps`` have passed.
    The observed price lags the reference by ``latency_steps`` whole steps; with zero
    latency it follows the reference within a step, cascade rounds included.

    Args:
        asset: Asset name.
        price: Initial published price.
        deviation_threshold: Relative move that triggers an update.
        heartbeat_steps: Maximum steps between updates.
        latency_steps: Delay between the reference and what the oracle sees.
    """

    def __init__(
        self,
        asset: str,
        price: float,
        deviation_threshold: float,
        heartbeat_steps: int,
        latency_steps: int,
    ) -> None:
        self.asset = asset
        self.price = price
        self.deviation_threshold = deviation_threshold
        self.heartbeat_steps = heartbeat_steps
        self.latency_steps = latency_steps
        self.last_update_step = 0
        self.updates = 0
        # The reference recorded at this step's exogenous move and the ``latency_steps``
        # before it; the oldest is what the oracle sees.
        self._history: deque[float] = deque([price] * (latency_steps + 1), latency_steps + 1)

    def record(self, reference_price: float) -> None:
        """Record the reference price after a step's exogenous move (before polling)."""
        self._history.append(reference_price)

    def observed(self, reference_price: float) -> float:
        """The price the oracle currently sees."""
        return reference_price if self.latency_steps == 0 else self._history[0]

    def poll(self, step: int, reference_price: float) -> bool:
        """Publish if the deviation or heartbeat rule fires; returns whether it did."""
        candidate = self.observed(reference_price)
        deviation = abs(candidate / self.price - 1.0)
        if (
            deviation >= self.deviation_threshold
            or step - self.last_update_step >= self.heartbeat_steps
        ):
            self.price = candidate
            self.last_update_step = step
            self.updates += 1
            return True
        return False

    @property
    def deviation(self) -> float:
        """Relative gap between what the oracle sees and what it has published."""
        return self._history[-1] / self.price - 1.0
