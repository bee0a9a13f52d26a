"""Reward wrappers of :class:`~liqnet.market.vector_env.VectorLiquidityEnv`.

The vector forms of :class:`~liqnet.market.wrappers.SystemRewardWrapper` and
:class:`~liqnet.agents.wrappers.TeamMixReward`: they transform the ``(B, n_agents)``
reward array of each step, world by world, and give exactly (bit for bit) the rewards
the scalar wrappers give world ``b`` on its own, so training with ``--reward system`` or
``--team-weight`` keeps the array engine instead of falling back to the per-env loop.
Everything else (``obs``, ``alive``, ``reset_world``, ``state()``, ...) reads through to
the wrapped env.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from liqnet.market.vector_env import VecStep, VectorLiquidityEnv
from liqnet.market.wrappers import system_net, system_scale

__all__ = ["VectorRewardWrapper", "VectorSystemReward", "VectorTeamMix"]


class VectorRewardWrapper:
    """Base of vector reward transforms: override :meth:`reward`.

    Args:
        env: A :class:`VectorLiquidityEnv` or another vector reward wrapper.
    """

    def __init__(self, env: VectorLiquidityEnv | VectorRewardWrapper) -> None:
        self.env = env

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the wrapper: the env's own attributes.
        return getattr(self.env, name)

    @property
    def unwrapped(self) -> VectorLiquidityEnv:
        """The innermost :class:`VectorLiquidityEnv`."""
        return self.env.unwrapped

    def reward(self, rewards: np.ndarray, acting: np.ndarray) -> np.ndarray:
        """The transformed ``(B, n_agents)`` rewards of one step; ``acting`` marks the
        agents that acted in it (other entries stay 0)."""
        raise NotImplementedError

    def on_reset(self, world: int) -> None:
        """Hook: world ``world`` has just started an episode."""

    def reset(
        self, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every world (see :meth:`VectorLiquidityEnv.reset`)."""
        out = self.env.reset(seed=seed, options=options)
        for world in range(self.unwrapped.num_envs):
            self.on_reset(world)
        return out

    def reset_world(self, world: int, seed: int) -> None:
        """Reset world ``world`` only (see :meth:`VectorLiquidityEnv.reset_world`)."""
        self.env.reset_world(world, seed)
        self.on_reset(world)

    def step(self, actions: np.ndarray) -> VecStep:
        """Step the wrapped env and transform its rewards."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        return obs, self.reward(rewards, infos["acting"]), terminations, truncations, infos


class VectorSystemReward(VectorRewardWrapper):
    """Every acting agent of world ``b`` gets world ``b``'s system reward: the step's
    change of ``revenue_weight * revenue - losses`` over the protocols' total assets at
    reset (:class:`~liqnet.market.wrappers.SystemRewardWrapper`, per world).

    Raises:
        ValueError: On a negative or non-finite ``revenue_weight``, or an env that resets
            worlds inside ``step`` (autoreset replaces a world before its last reward is
            read; build the env with ``autoreset=False``).
    """

    def __init__(
        self, env: VectorLiquidityEnv | VectorRewardWrapper, revenue_weight: float = 1.0
    ) -> None:
        if not (math.isfinite(revenue_weight) and revenue_weight >= 0.0):
            raise ValueError(f"revenue_weight = {revenue_weight!r}: must be a finite number >= 0")
        super().__init__(env)
        if self.unwrapped.autoreset:
            raise ValueError(
                "VectorSystemReward needs VectorLiquidityEnv(..., autoreset=False): an "
                "autoreset world is replaced before its final system reward is read"
            )
        self.revenue_weight = float(revenue_weight)
        n = self.unwrapped.num_envs
        self.scale = np.ones(n)  # USD per unit of reward, per world
        self._last_net = np.zeros(n)

    def _net(self, world: int) -> float:
        model = self.unwrapped.models[world]
        assert model is not None
        return system_net(model, self.revenue_weight)

    def on_reset(self, world: int) -> None:
        """Record world ``world``'s starting assets and net result."""
        model = self.unwrapped.models[world]
        assert model is not None
        self.scale[world] = system_scale(model)
        self._last_net[world] = self._net(world)

    def reward(self, rewards: np.ndarray, acting: np.ndarray) -> np.ndarray:
        """The team reward of each world that stepped, for its acting agents."""
        out = np.zeros_like(rewards)
        for world in np.flatnonzero(acting.any(axis=1)).tolist():
            net = self._net(world)
            out[world, acting[world]] = (net - self._last_net[world]) / self.scale[world]
            self._last_net[world] = net
        return out


class VectorTeamMix(VectorRewardWrapper):
    """``r_i <- (1 - w) r_i + w mean_j r_j`` over each world's acting agents
    (:class:`~liqnet.agents.wrappers.TeamMixReward`, per world).

    Raises:
        ValueError: If ``team_weight`` is not in [0, 1].
    """

    def __init__(self, env: VectorLiquidityEnv | VectorRewardWrapper, team_weight: float) -> None:
        if not 0.0 <= team_weight <= 1.0:
            raise ValueError(f"team_weight = {team_weight!r}: must be in [0, 1]")
        super().__init__(env)
        self.team_weight = float(team_weight)

    def reward(self, rewards: np.ndarray, acting: np.ndarray) -> np.ndarray:
        """Each world's acting agents' rewards mixed with their mean."""
        w = self.team_weight
        out = rewards.copy()
        for world in np.flatnonzero(acting.any(axis=1)).tolist():
            own = rewards[world, acting[world]]
            team = math.fsum(own.tolist()) / own.size  # fsum: the scalar wrapper's sum
            out[world, acting[world]] = (1.0 - w) * own + w * team
        return out
