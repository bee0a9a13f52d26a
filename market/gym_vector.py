"""The vector env as a Gymnasium ``VectorEnv``: one controller per world.

Gymnasium's vector API is single-agent: one observation, one action, one reward and one
end flag per world. :class:`GymVectorEnv` presents a
:class:`~liqnet.market.vector_env.VectorLiquidityEnv` that way, so runners written for
``gymnasium.vector.VectorEnv`` (Gymnasium's own vector wrappers, CleanRL-style loops,
TorchRL's ``GymWrapper``, RLlib's single-agent env runners) step the array engine
unchanged. It is a *centralised* view: one policy sets every protocol's levers.

* observation ``(B, n_agents * D)``: each world's agents' observations, agent-major;
* action ``(B, n_agents * 6)`` in [-1, 1], agent-major (row ``b`` reshaped to
  ``(n_agents, 6)`` is world ``b``'s levers);
* reward ``(B,)``: the mean of the world's agents' rewards (a defaulted agent's is 0),
  so its scale is one protocol's;
* ``terminated[b]``: world ``b`` ended before its horizon (every agent defaulted);
  ``truncated[b]``: it reached its horizon. Autoreset is the inner env's
  ``AutoresetMode.SAME_STEP``; ``infos["final_obs"]`` is flattened the same way.

Per-agent arrays (``equity``, ``liquidity_need``, ``alive``, ...) stay in ``infos``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv

if TYPE_CHECKING:
    from collections.abc import Sequence

    from liqnet.market.vector_env import VectorLiquidityEnv


class GymVectorEnv(VectorEnv):
    """A :class:`VectorLiquidityEnv` behind Gymnasium's ``VectorEnv`` (see the module).

    Args:
        env: The multi-agent vector env; it must reset ended worlds itself
            (``autoreset=True``), as Gymnasium's vector runners expect.

    Raises:
        ValueError: If ``env`` does not autoreset.
    """

    def __init__(self, env: VectorLiquidityEnv) -> None:
        if not env.autoreset:
            raise ValueError(
                "env.autoreset = False: GymVectorEnv needs an env that resets ended "
                "worlds (autoreset=True, Gymnasium's SAME_STEP mode)"
            )
        self.env = env
        self.num_envs = env.num_envs
        self.metadata = {**env.metadata, "name": f"{env.metadata['name']}_gym"}
        agents, dim = env.single_observation_space.shape
        levers = env.single_action_space.shape[1]
        self._agent_actions = (agents, levers)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (agents * dim,), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (agents * levers,), np.float32)
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (self.num_envs, agents * dim), np.float32
        )
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_envs, agents * levers), np.float32)

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every world (seeding as :meth:`VectorLiquidityEnv.reset`)."""
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._flat(obs), infos

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every world with ``(B, n_agents * 6)`` actions.

        Raises:
            ValueError: If ``actions`` is not ``(B, n_agents * 6)`` or a live agent's
                levers are not finite (names world and agent).
        """
        shape = self.action_space.shape
        try:
            levers = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"actions: expected a {shape} array of levers") from None
        if levers.shape != shape:
            raise ValueError(f"actions: expected shape {shape}, got {levers.shape}")
        obs, rewards, _, truncations, infos = self.env.step(
            levers.reshape(self.num_envs, *self._agent_actions)
        )
        ended = infos["_final_obs"]
        truncated = ended & truncations.any(axis=1)
        terminated = ended & ~truncated
        if "final_obs" in infos:
            infos["final_obs"] = self._flat(infos["final_obs"])
        return self._flat(obs), rewards.mean(axis=1), terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Release the worlds (called by ``VectorEnv.close``, also on garbage collection)."""
        env = getattr(self, "env", None)  # absent when __init__ refused its argument
        if env is not None:
            env.close()

    def _flat(self, obs: np.ndarray) -> np.ndarray:
        return obs.reshape(self.num_envs, -1)
