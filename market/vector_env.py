"""Vector environments: ``B`` worlds stepped as one, arrays with a leading world axis.

:class:`VectorLiquidityEnv` is the engine (:class:`~liqnet.market.world_batch.WorldBatch`)
with ``B`` worlds of one scenario; :class:`~liqnet.market.env.LiquidityEnv` is the same
engine with one. :class:`ParallelEnvBatch` gives any PettingZoo ``ParallelEnv`` (a wrapped
env, a plugin's own env) the same interface by stepping its envs one after another, so a
runner written against it takes either.

Shapes: observations ``(B, n_agents, D)`` float32, actions ``(B, n_agents, 6)`` in
[-1, 1], rewards ``(B, n_agents)`` float64, terminations and truncations ``(B, n_agents)``
bool. ``infos`` is a dict of arrays: ``equity``, ``bad_debt`` and ``liquidity_need``
(USD, ``(B, n_agents)``), ``alive`` (agents that act next step), ``acting`` (agents that
acted in this step) and ``episode_seed`` (``(B,)``).

Autoreset (Gymnasium's ``AutoresetMode.SAME_STEP``): when every agent of world ``b`` is
terminated (defaulted) or truncated (horizon), the step that ended it resets it at once.
The returned row ``b`` is then the new episode's first observation; the last observation
of the ended episode is ``infos["final_obs"][b]`` and its balance sheets are in
``infos["final_info"]``, both valid where ``infos["_final_obs"][b]`` is True. Within an
episode, an agent that defaulted stays in the world (winding down) but is dead: its
action row is ignored, its reward is 0, its termination stays False after the step it
defaulted in and its own features read 0.

Seeds: ``reset(seed=s)`` seeds world ``b`` with ``s + b`` (Gymnasium's vector
convention); later episodes of world ``b`` draw their seed from a generator seeded
``s + b``, as :meth:`LiquidityEnv.reset` without a seed does. So every episode of world
``b`` equals the scalar env's episodes after ``reset(seed=s + b)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from liqnet.core.schema import shorten
from liqnet.market.actions import EXPECTED_ACTION
from liqnet.market.env import SEED_BOUND, check_seed
from liqnet.market.world_batch import WorldBatch
from liqnet.protocols.base import LEVER_NAMES

if TYPE_CHECKING:
    from pettingzoo import ParallelEnv

    from liqnet.core.schema import Scenario
    from liqnet.market.model import MarketModel

VecStep = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]
"""``(obs, rewards, terminations, truncations, infos)`` of a vector step."""


class VectorLiquidityEnv:
    """``num_envs`` worlds of one scenario as one vectorised multi-agent env.

    Args:
        scenario: A validated scenario.
        num_envs: ``B``, at least 1.
        seed: Seed of the first :meth:`reset` without one (default ``scenario.seed``).
        horizon: Steps per episode; defaults to ``scenario.steps``.
        insolvency_penalty: See :mod:`liqnet.market.world_batch`.
        shortfall_penalty: See :mod:`liqnet.market.world_batch`.
        vol_window: Steps in the realised-volatility window.
        autoreset: Reset ended worlds in the step that ends them (default). ``False``
            leaves them ended (masked out of later steps) until :meth:`reset_world`.

    Raises:
        ValueError: If an argument is out of range (names it).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "liqnet_liquidity_vector_v0",
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int,
        seed: int | None = None,
        horizon: int | None = None,
        *,
        insolvency_penalty: float = 1.0,
        shortfall_penalty: float = 1.0,
        vol_window: int = 24,
        autoreset: bool = True,
    ) -> None:
        self.batch = batch = WorldBatch(
            scenario, num_envs, horizon, insolvency_penalty, shortfall_penalty, vol_window
        )
        """The engine."""
        self.scenario = scenario
        self.num_envs = batch.num_worlds
        self.horizon = batch.horizon
        self.horizons = np.full(self.num_envs, self.horizon)
        """Steps per episode of each world (one horizon here; see ParallelEnvBatch)."""
        self.autoreset = bool(autoreset)
        self.first_seed = scenario.seed if seed is None else check_seed(seed)
        self.possible_agents = list(batch.possible_agents)
        self.observation_names = batch.observation_names
        n, dim, levers = batch.num_agents, batch.obs_dim, len(LEVER_NAMES)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (n, dim), np.float32)
        """One world's observations: ``(n_agents, D)``."""
        self.single_action_space = spaces.Box(-1.0, 1.0, (n, levers), np.float32)
        """One world's actions: ``(n_agents, 6)`` levers."""
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_envs, n, dim), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_envs, n, levers), np.float32)
        self._seed_rngs: list[np.random.Generator] = []
        self._all = np.arange(self.num_envs)

    @property
    def obs(self) -> np.ndarray:
        """``(B, n_agents, D)``: the latest observations (a fresh array every step)."""
        return self.batch.obs

    @property
    def unwrapped(self) -> VectorLiquidityEnv:
        """This env (Gymnasium's convention; wrappers return the innermost env)."""
        return self

    @property
    def models(self) -> list[MarketModel | None]:
        """The world of each slot (``MarketModel``; ``None`` before the first reset)."""
        return self.batch.models

    @property
    def alive(self) -> np.ndarray:
        """``(B, n_agents)``: agents that act in the next step."""
        return self.batch.alive

    def reset(
        self, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every world.

        Args:
            seed: ``s`` seeds world ``b`` with ``s + b``; a sequence gives each world its
                own seed. ``None``: the first call uses ``seed`` of the constructor, later
                ones draw each world's seed from its own generator.
            options: Accepted for API compatibility; unused.

        Raises:
            ValueError: If a seed is not an integer in ``[0, 2**63)`` or a sequence does
                not hold ``num_envs`` of them.
        """
        if seed is None and self._seed_rngs:
            seeds = [int(rng.integers(SEED_BOUND)) for rng in self._seed_rngs]
        else:
            seeds = self._explicit_seeds(self.first_seed if seed is None else seed)
            self._seed_rngs = [np.random.default_rng(s) for s in seeds]
        for b, world_seed in enumerate(seeds):
            self.batch.reset_world(b, world_seed)
        return self.batch.obs, self._infos(np.zeros_like(self.batch.alive))

    def reset_world(self, world: int, seed: int) -> None:
        """Start a new episode in world ``world`` only, seeded ``seed``; later automatic
        resets of that world draw from a generator seeded ``seed``."""
        if not 0 <= world < self.num_envs:
            raise ValueError(f"world = {world!r}: expected an index in [0, {self.num_envs})")
        seed = check_seed(seed)
        if not self._seed_rngs:
            self._seed_rngs = [np.random.default_rng(self.first_seed + b) for b in self._all]
        self._seed_rngs[world] = np.random.default_rng(seed)
        self.batch.reset_world(world, seed)

    def step(self, actions: np.ndarray) -> VecStep:
        """Step every world that has an episode in progress (see the module docstring).

        Raises:
            ValueError: If ``actions`` is not ``(B, n_agents, 6)`` or a live agent's row is
                not finite (names world and agent; nothing is applied then).
            RuntimeError: If no world has an episode in progress.
        """
        batch = self.batch
        levers = self._check_actions(actions)
        running = np.flatnonzero(batch.alive.any(axis=1))
        if running.size == 0:
            raise RuntimeError("no episode in progress: call reset() first")
        acting, rewards, terminations, truncations = batch.step(levers, running)
        ended: np.ndarray = np.asarray(acting.any(axis=1) & ~batch.alive.any(axis=1))
        infos = self._infos(acting)
        infos["_final_obs"] = ended
        if self.autoreset and ended.any():
            infos["final_obs"] = np.where(ended[:, None, None], batch.obs, 0.0)
            infos["final_info"] = {
                key: np.where(ended[:, None], infos[key], 0.0)
                for key in ("equity", "bad_debt", "liquidity_need")
            }
            for b in np.flatnonzero(ended).tolist():
                batch.reset_world(b, int(self._seed_rngs[b].integers(SEED_BOUND)))
            infos.update(self._infos(acting))
        return batch.obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """``(B, n_agents * D)``: each world's observations, zeros for dead agents."""
        return self.batch.state()

    def close(self) -> None:
        """Release every world."""
        self.batch.models = [None] * self.num_envs
        self.batch.alive[:] = False

    def _explicit_seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, Sequence) and not isinstance(seed, str):
            if len(seed) != self.num_envs:
                raise ValueError(
                    f"seed: expected {self.num_envs} seeds (one per world), got {len(seed)}"
                )
            return [check_seed(s) for s in seed]
        first = check_seed(seed)
        if first + self.num_envs > 2**63:
            raise ValueError(f"seed = {first}: seed + num_envs must stay below 2**63")
        return [first + b for b in range(self.num_envs)]

    def _check_actions(self, actions: object) -> np.ndarray:
        shape = (self.num_envs, *self.single_action_space.shape)
        try:
            levers = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"actions: expected {shape} levers, got {shorten(actions)}") from None
        if levers.shape != shape:
            raise ValueError(f"actions: expected shape {shape}, got {levers.shape}")
        bad = self.batch.alive & ~np.isfinite(levers).all(axis=2)
        if bad.any():
            b, i = (int(x) for x in np.argwhere(bad)[0])
            raise ValueError(
                f"actions[{b}, {i}] (world {b}, agent {self.possible_agents[i]!r}): expected "
                f"{EXPECTED_ACTION}; got non-finite {levers[b, i]}"
            )
        # Levers are bounded increments, so clipping a finite overshoot is harmless.
        return np.clip(levers, -1.0, 1.0)

    def _infos(self, acting: np.ndarray) -> dict[str, Any]:
        batch = self.batch
        return {
            "equity": batch.equity.copy(),
            "bad_debt": batch.bad_debt.copy(),
            "liquidity_need": batch.need.copy(),
            "alive": batch.alive.copy(),
            "acting": acting,
            "episode_seed": batch.seeds.copy(),
        }


def same_agents(envs: Sequence[Any], what: str) -> list[str]:
    """The ``possible_agents`` all of ``envs`` share (``what`` names them in the error).

    Raises:
        ValueError: If two of them have different agents.
    """
    agents = list(envs[0].possible_agents)
    for env in envs:
        if list(env.possible_agents) != agents:
            raise ValueError(
                f"all {what} need the same agents; got {agents} and {list(env.possible_agents)}"
            )
    return agents


class ParallelEnvBatch:
    """Any PettingZoo ``ParallelEnv``s with the same agents behind the vector interface.

    Stepped one after another (the per-world style): for wrapped envs and plugin envs
    that the array engine does not run. No autoreset: a runner calls
    :meth:`reset_world` for worlds whose episode ended (``alive`` all False).

    Args:
        envs: Environments with the same ``possible_agents`` and observation size.

    Raises:
        ValueError: If the envs' agents or observation sizes differ.
    """

    autoreset = False

    def __init__(self, envs: Sequence[ParallelEnv]) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.possible_agents = same_agents(self.envs, "environments")
        dims = {env.observation_space(a).shape for env in self.envs for a in self.possible_agents}
        if len(dims) != 1:
            raise ValueError(f"all environments need one observation shape; got {sorted(dims)}")
        (dim,) = dims.pop()
        n = len(self.possible_agents)
        self.horizons = np.array([getattr(env, "horizon", None) or 0 for env in self.envs])
        """Steps per episode of each env (0 where the env does not say)."""
        self.obs = np.zeros((self.num_envs, n, dim), dtype=np.float32)
        self.alive = np.zeros((self.num_envs, n), dtype=bool)

    def reset_world(self, world: int, seed: int) -> None:
        """Reset env ``world`` with ``seed``."""
        observations, _ = self.envs[world].reset(seed=seed)
        self.obs = self.obs.copy()
        self._store(world, observations)

    def step(self, actions: np.ndarray) -> VecStep:
        """Step every env with live agents; rows of dead agents are not passed on."""
        n = len(self.possible_agents)
        rewards = np.zeros((self.num_envs, n))
        terminations = np.zeros((self.num_envs, n), dtype=bool)
        truncations = np.zeros((self.num_envs, n), dtype=bool)
        acting = self.alive.copy()
        self.obs = self.obs.copy()  # rows handed out before stay as they were
        for b, env in enumerate(self.envs):
            if not acting[b].any():
                continue
            live = {a: actions[b, i] for i, a in enumerate(self.possible_agents) if acting[b, i]}
            observations, rew, term, trunc, _ = env.step(live)
            for i, agent in enumerate(self.possible_agents):
                if agent in live:
                    rewards[b, i] = rew[agent]
                    terminations[b, i] = term[agent]
                    truncations[b, i] = trunc[agent]
            self._store(b, observations)
        return self.obs, rewards, terminations, truncations, {"acting": acting}

    def state(self) -> np.ndarray:
        """``(B, state_dim)``: each env's ``state()``."""
        return np.stack([env.state() for env in self.envs])

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()

    def _store(self, world: int, observations: dict[str, np.ndarray]) -> None:
        """Write env ``world``'s observations (zeros for dead agents) and liveness."""
        live = set(self.envs[world].agents)
        self.alive[world] = [a in live for a in self.possible_agents]
        self.obs[world] = 0.0
        for i, agent in enumerate(self.possible_agents):
            if agent in live:
                self.obs[world, i] = observations[agent]
