"""Checking the actions handed to :class:`~liqnet.market.env.LiquidityEnv.step`.

Every action is validated before any is applied, so a bad one leaves no trace; each
problem is one ``ValueError`` naming the agent, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from liqnet.core.levers import LEVER_NAMES
from liqnet.core.schema import shorten

ACTION_SHAPE = (len(LEVER_NAMES),)
"""Shape of one agent's action: one value per common lever."""
EXPECTED_ACTION = f"a finite array of shape {ACTION_SHAPE} {LEVER_NAMES} in [-1, 1]"
"""What an action must be, as error messages say it."""


def check_actions(actions: object, alive: Sequence[str]) -> dict[str, np.ndarray]:
    """Every action validated and clipped, checked as one block when well formed.

    Args:
        actions: ``{agent: levers}`` as handed to ``step``.
        alive: The agents alive this step.

    Raises:
        ValueError: If ``actions`` is not a mapping, or an action is for an agent that is
            not alive, has the wrong shape, or holds NaN or infinite values.
    """
    if not isinstance(actions, Mapping):
        raise ValueError(
            f"actions: expected a dict of agent -> {EXPECTED_ACTION}, got {type(actions).__name__}"
        )
    agents = list(actions)
    try:
        block = np.array([actions[a] for a in agents], dtype=np.float64)
    except (TypeError, ValueError):
        block = None
    if (
        block is None
        or block.shape != (len(agents), *ACTION_SHAPE)
        or not set(alive).issuperset(agents)
        or not np.isfinite(block).all()
    ):
        # Something is malformed: the per-agent check names the agent and the problem.
        return {agent: check_action(agent, a, alive) for agent, a in actions.items()}
    # Levers are bounded increments, so clipping a finite overshoot is harmless.
    return dict(zip(agents, np.minimum(np.maximum(block, -1.0), 1.0), strict=True))


def check_action(agent: str, action: Any, alive: Sequence[str]) -> np.ndarray:
    """One agent's action validated and clipped to [-1, 1] (see :func:`check_actions`)."""
    if agent not in alive:
        raise _action_error(agent, f"it is not a live agent (live: {list(alive)})")
    try:
        vector = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise _action_error(agent, f"got {shorten(action)}") from None
    if vector.shape != ACTION_SHAPE:
        raise _action_error(agent, f"got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise _action_error(agent, f"got non-finite {vector}")
    return np.minimum(np.maximum(vector, -1.0), 1.0)


def _action_error(agent: object, detail: str) -> ValueError:
    """The one error for a malformed action: agent, expected shape and range, detail."""
    return ValueError(f"action for agent {shorten(agent)}: expected {EXPECTED_ACTION}; {detail}")
