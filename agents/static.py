"""Static governance: parameters stay as set (today's manual governance).

Where the standing levers come from, first match wins:

1. the ``levers`` given to the constructor (per agent);
2. ``PolicyContext.standing_levers`` (the scenario's ``levers``; the scenario runner
   :func:`liqnet.scenarios.policies.resolve_policies` fills it in);
3. :data:`DEFAULT_STANDING_LEVERS` (risk 0, price 0, the treasury rule for credit).

Rule-based policies (:mod:`liqnet.agents.rules`, :mod:`liqnet.agents.bayesian`, the
forecaster) set only the risk lever and take the other levers from the same place, via
:func:`standing_levers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from liqnet.agents.base import Policy, PolicyContext
from liqnet.core.levers import DEFAULT_STANDING_LEVERS, LEVER_NAMES

RISK = LEVER_NAMES.index("risk")
"""Position of the risk lever in a lever vector."""


def _lever_vector(values: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    """``values`` as a float32 lever vector, with one clear error if malformed."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (len(LEVER_NAMES),) or not np.isfinite(vector).all():
        raise ValueError(f"{where}: expected {len(LEVER_NAMES)} finite values {LEVER_NAMES}")
    if (np.abs(vector) > 1.0).any():
        raise ValueError(f"{where}: levers must be in [-1, 1], got {vector.tolist()}")
    return vector.astype(np.float32)


def standing_levers(context: PolicyContext, agent: str) -> np.ndarray:
    """A fresh copy of ``agent``'s standing levers from ``context`` (or the defaults)."""
    given = context.standing_levers.get(agent)
    if given is None:
        return np.array(DEFAULT_STANDING_LEVERS, dtype=np.float32)
    return np.array(given, dtype=np.float32)


class StaticGovernance(Policy):
    """Returns each agent's standing lever vector on every step: nothing ever moves.

    Args:
        levers: Optional standing levers per agent id (``LEVER_NAMES`` order, each in
            [-1, 1]); they take precedence over ``PolicyContext.standing_levers``.

    Raises:
        ValueError: If a lever vector has the wrong length, is not finite or leaves [-1, 1].
    """

    name = "static"

    def __init__(self, levers: Mapping[str, Sequence[float] | np.ndarray] | None = None) -> None:
        self.levers = {
            agent: _lever_vector(vector, f"StaticGovernance levers[{agent!r}]")
            for agent, vector in (levers or {}).items()
        }

    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The standing levers of every observed agent (fresh arrays each call)."""
        return {
            agent: self.levers[agent].copy()
            if agent in self.levers
            else standing_levers(self.context, agent)
            for agent in observations
        }
