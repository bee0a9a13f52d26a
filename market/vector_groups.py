"""Several vector envs behind one vector interface: a block of worlds of several scenarios.

A rollout worker's block may run more than one scenario (``liqnet train`` over
``flash_crash,bank_run,credit_crunch``). The engine batches worlds of one scenario (one
step length, one set of stacked types), so such a block is one engine batch per
scenario, put together here in the block's own order of worlds
(:meth:`liqnet.scenarios.train.EnvFactory.vector`). Each world is stepped by its own
scenario's batch exactly as it would be alone, so the block's arrays equal those of the
same envs stepped one by one (:class:`~liqnet.market.vector_env.ParallelEnvBatch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from liqnet.market.vector_env import VecStep, same_agents


class GroupedVectorEnv:
    """Vector envs with the same agents and observation size as one vector env.

    World ``w`` of the whole is world ``index`` of part ``part``, for
    ``(part, index) = placement[w]``. No autoreset, like the parts a rollout uses: a
    runner calls :meth:`reset_world` for worlds whose episode ended (``alive`` all
    False).

    Args:
        parts: Vector envs (``VectorLiquidityEnv``, its reward wrappers,
            ``ParallelEnvBatch``) without autoreset.
        placement: For each world of the whole, its part and its index in that part;
            every world of every part exactly once.

    Raises:
        ValueError: Parts with different agents or observation shapes, a part that
            autoresets, or a placement that does not name each world of each part once.
    """

    autoreset = False

    def __init__(self, parts: Sequence[Any], placement: Sequence[tuple[int, int]]) -> None:
        self.parts = list(parts)
        self.placement = [(int(part), int(index)) for part, index in placement]
        self.possible_agents = same_agents(self.parts, "parts")
        if any(part.autoreset for part in self.parts):
            raise ValueError("parts must not autoreset: the whole resets world by world")
        shapes = sorted({part.obs.shape[1:] for part in self.parts})
        if len(shapes) != 1:
            raise ValueError(f"all parts need one observation shape; got {shapes}")
        worlds = sorted((p, i) for p, part in enumerate(self.parts) for i in range(part.num_envs))
        if sorted(self.placement) != worlds:
            raise ValueError(
                f"placement must name each world of each part once: expected {worlds}, "
                f"got {sorted(self.placement)}"
            )
        self.num_envs = len(self.placement)
        # The parts' arrays side by side, then rows taken in the whole's order.
        offsets = np.cumsum([0] + [part.num_envs for part in self.parts])
        self._order = np.array([offsets[p] + i for p, i in self.placement])
        # Each part's worlds as rows of the whole, in the part's own order.
        self._rows = [np.zeros(part.num_envs, dtype=np.intp) for part in self.parts]
        for world, (p, i) in enumerate(self.placement):
            self._rows[p][i] = world
        self.horizons = self._whole([np.asarray(part.horizons) for part in self.parts])
        """Steps per episode of each world (0 where its env does not say)."""

    def _whole(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The parts' per-world arrays as one, in the whole's order of worlds."""
        return np.concatenate(arrays)[self._order]

    @property
    def obs(self) -> np.ndarray:
        """``(B, n_agents, obs_dim)``: the latest observation of every world."""
        return self._whole([part.obs for part in self.parts])

    @property
    def alive(self) -> np.ndarray:
        """``(B, n_agents)``: which agents are alive in each world."""
        return self._whole([part.alive for part in self.parts])

    def reset_world(self, world: int, seed: int) -> None:
        """Reset world ``world`` with ``seed`` (in its part)."""
        part, index = self.placement[world]
        self.parts[part].reset_world(index, seed)

    def step(self, actions: np.ndarray) -> VecStep:
        """Step every part with its worlds' rows of ``actions`` ``(B, n_agents, 6)``."""
        steps = [
            part.step(actions[rows]) for part, rows in zip(self.parts, self._rows, strict=True)
        ]
        obs, rewards, terminations, truncations = (
            self._whole([step[k] for step in steps]) for k in range(4)
        )
        acting = self._whole([step[4]["acting"] for step in steps])
        return obs, rewards, terminations, truncations, {"acting": acting}

    def state(self) -> np.ndarray:
        """``(B, state_dim)``: each world's global state."""
        return self._whole([part.state() for part in self.parts])

    def close(self) -> None:
        """Close every part."""
        for part in self.parts:
            part.close()
