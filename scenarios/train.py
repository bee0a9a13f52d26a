"""Training MAPPO on scenarios: environments, the rollout/update loop, checkpoints.

``train("flash_crash,bank_run", steps=200_000, workers=2)`` builds ``config.num_envs``
environments (scenario ``i mod k`` for environment ``i``; ``(i // 2) mod k`` with
antithetic pairs), runs rollout workers (Ray actors, or in-process), updates the learner
after every batch and writes a checkpoint (:mod:`liqnet.agents.checkpoint`) that
``"mappo:PATH"`` policy specs load.

Training rewards (``reward=``, :data:`REWARDS`), built by :func:`make_env` wrappers:

* ``"equity"``: the env's own rewards (:class:`~liqnet.market.env.LiquidityEnv`): each
  protocol's equity change, insolvency and shortfall penalties - self-interested agents;
* ``"system"``: every agent gets the same team reward
  (:class:`~liqnet.market.wrappers.SystemRewardWrapper`), the step's change of
  ``revenue_weight * revenue - losses`` over the system's initial assets, with revenue
  and losses as ``liqnet evaluate`` counts them (:mod:`liqnet.market.accounting`).

``team_weight`` (> 0) mixes each agent's reward with the team mean
(:class:`~liqnet.agents.wrappers.TeamMixReward`), around either reward.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pettingzoo import ParallelEnv

from liqnet.agents.wrappers import TeamMixReward
from liqnet.market.vector_env import VectorLiquidityEnv
from liqnet.market.vector_groups import GroupedVectorEnv
from liqnet.market.vector_wrappers import VectorRewardWrapper, VectorSystemReward, VectorTeamMix
from liqnet.market.wrappers import SystemRewardWrapper
from liqnet.scenarios.envs import make_env, resolve_scenario

if TYPE_CHECKING:
    from liqnet.agents.mappo import MAPPO, MAPPOConfig

# torch and the learner are imported inside train(): `liqnet run` and the other
# subcommands build this module's parser and should not pay torch's import time.

ALGOS = ("mappo",)
"""Training algorithms ``liqnet train --algo`` accepts."""

SHARING = ("shared", "independent")
"""``--sharing`` choices (:data:`liqnet.agents.mappo.SHARING_MODES`)."""

REWARDS = ("equity", "system")
"""Training rewards (see the module docstring)."""


@dataclass(frozen=True)
class EnvFactory:
    """Builds training environment ``i``: scenario ``(i // group) mod len(scenarios)``.

    Picklable (plain data), so Ray workers build their own environments.

    Attributes:
        scenarios: Built-in names or TOML paths.
        overrides: Dotted-key overrides applied to every scenario, as ``(key, value)``.
        horizon: Steps per episode (default: each scenario's ``steps``).
        reward: One of :data:`REWARDS`.
        revenue_weight: Weight of revenue in the ``"system"`` reward.
        team_weight: Share of each reward replaced by the team mean (0: none).
        group: Consecutive environments that run the same scenario (2 for antithetic
            pairs, :attr:`~liqnet.agents.mappo.MAPPOConfig.antithetic_pairs`).
    """

    scenarios: tuple[str, ...]
    overrides: tuple[tuple[str, Any], ...] = ()
    horizon: int | None = None
    reward: str = "equity"
    revenue_weight: float = 1.0
    group: int = 1
    team_weight: float = 0.0

    def wrappers(self) -> list[Callable[[ParallelEnv], ParallelEnv]]:
        """The reward wrappers of :attr:`reward` and :attr:`team_weight`, innermost first."""
        chain: list[Callable[[ParallelEnv], ParallelEnv]] = []
        if self.reward == "system":
            chain.append(partial(SystemRewardWrapper, revenue_weight=self.revenue_weight))
        if self.team_weight > 0.0:
            chain.append(partial(TeamMixReward, team_weight=self.team_weight))
        return chain

    def vector(
        self, indices: Sequence[int]
    ) -> VectorLiquidityEnv | VectorRewardWrapper | GroupedVectorEnv:
        """Environments ``indices`` as one vector env on the array engine: one
        :class:`VectorLiquidityEnv` (no autoreset, inside the vector forms of the reward
        wrappers) when they run one scenario, else one per scenario behind
        :class:`GroupedVectorEnv`, in the order of ``indices``."""
        names = [self.scenarios[i // self.group % len(self.scenarios)] for i in indices]
        kinds = list(dict.fromkeys(names))
        if len(kinds) == 1:
            return self._engine(kinds[0], len(indices))
        placement, seen = [], dict.fromkeys(kinds, 0)
        for name in names:
            placement.append((kinds.index(name), seen[name]))
            seen[name] += 1
        return GroupedVectorEnv([self._engine(name, seen[name]) for name in kinds], placement)

    def _engine(self, name: str, worlds: int) -> VectorLiquidityEnv | VectorRewardWrapper:
        """``worlds`` worlds of scenario ``name`` on the engine, wrapped as
        :meth:`wrappers` wraps each scalar env."""
        scenario = resolve_scenario(name, dict(self.overrides))
        env: VectorLiquidityEnv | VectorRewardWrapper = VectorLiquidityEnv(
            scenario, worlds, horizon=self.horizon, autoreset=False
        )
        # The same chain, in the same order, as wrappers() gives each scalar env.
        if self.reward == "system":
            env = VectorSystemReward(env, revenue_weight=self.revenue_weight)
        if self.team_weight > 0.0:
            env = VectorTeamMix(env, team_weight=self.team_weight)
        return env

    def __call__(self, index: int) -> ParallelEnv:
        """Environment number ``index``."""
        name = self.scenarios[index // self.group % len(self.scenarios)]
        overrides = dict(self.overrides)
        return make_env(name, horizon=self.horizon, overrides=overrides, wrappers=self.wrappers())


def positions_overrides(positions: int, n_protocols: int = 3) -> dict[str, int]:
    """Overrides giving each of the first ``n_protocols`` protocols ``positions`` positions."""
    return {f"protocols.{k}.params.positions": positions for k in range(n_protocols)}


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        learner: The trained learner (networks, optimiser).
        history: One row per iteration (env steps, steps/s, mean return, losses).
        checkpoint: Path of the written ``model.pt`` (``None`` without ``out``).
        wall_s: Wall time of the whole run, set-up included.
        agent_ids: Agent slots of the networks.
        observation_names: Observation layout the actor was trained on.
    """

    learner: MAPPO
    history: list[dict[str, float]]
    checkpoint: Path | None
    wall_s: float
    agent_ids: tuple[str, ...] = ()
    observation_names: tuple[str, ...] = field(default_factory=tuple)


IterationHook = Callable[[dict[str, float], "MAPPO"], "bool | None"]
"""Called after every update with the history row and the learner; ``True`` stops."""


def train(
    scenarios: str | Sequence[str],
    *,
    steps: int = 100_000,
    workers: int = 1,
    config: MAPPOConfig | None = None,
    overrides: dict[str, Any] | None = None,
    horizon: int | None = None,
    out: str | Path | None = None,
    use_ray: bool = True,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    on_iteration: IterationHook | None = None,
    env_fn: Callable[[int], Any] | None = None,
    reward: str = "equity",
    revenue_weight: float = 1.0,
    team_weight: float = 0.0,
) -> TrainResult:
    """Train MAPPO on one or more scenarios.

    Args:
        scenarios: A name/path, a comma-separated list, or a sequence of them.
        steps: Environment steps to train for (rounded up to whole iterations).
        workers: Rollout workers (Ray actors, or in-process blocks without Ray).
        config: Hyper-parameters (default :class:`MAPPOConfig`).
        overrides: Dotted-key scenario overrides, e.g. :func:`positions_overrides`.
        horizon: Steps per training episode (default: each scenario's ``steps``).
        out: Checkpoint directory; nothing is written when ``None``.
        use_ray: Rollouts in Ray actors (``False``: in this process, same batches).
        address: Ray cluster address (``None``: ``RAY_ADDRESS``, else a local Ray).
        runtime_env: Ray ``runtime_env`` of the job (``working_dir``, ``py_modules``, ...).
        on_iteration: See :data:`IterationHook`.
        env_fn: Builds environment ``i`` instead of the scenarios (any PettingZoo
            ParallelEnv with ``state()``; picklable for Ray); ``scenarios`` then only
            labels the run.
        reward: Training reward, one of :data:`REWARDS` (see the module docstring).
        revenue_weight: Weight of revenue in the ``"system"`` reward.
        team_weight: Share of each agent's reward replaced by the team mean, in [0, 1].

    Returns:
        The :class:`TrainResult`.

    Raises:
        ValueError: On ``steps`` < 1, a bad worker count, an unknown reward or
            mismatched scenario agents.
        ScenarioError: If a scenario or an override is invalid.
    """
    import torch

    from liqnet.agents.checkpoint import save_checkpoint
    from liqnet.agents.mappo import MAPPO, MAPPOConfig
    from liqnet.scenarios.rollout import make_rollouts

    start = time.perf_counter()
    if isinstance(scenarios, str):
        scenarios = [s.strip() for s in scenarios.split(",") if s.strip()]
    if not scenarios:
        raise ValueError("scenarios: name at least one scenario")
    if steps < 1:
        raise ValueError(f"steps = {steps!r}: must be >= 1")
    if reward not in REWARDS:
        raise ValueError(f"reward = {reward!r}: must be one of {REWARDS}")
    config = config or MAPPOConfig()
    overrides_items = tuple(sorted((overrides or {}).items()))
    group = 2 if config.antithetic_pairs else 1
    factory = EnvFactory(
        tuple(scenarios), overrides_items, horizon, reward, revenue_weight, group, team_weight
    )
    env_fn = env_fn or factory
    probe = env_fn(0)
    agent_ids = tuple(probe.possible_agents)
    obs_dim = probe.observation_space(agent_ids[0]).shape[0]
    action_dim = probe.action_space(agent_ids[0]).shape[0]
    names = tuple(getattr(probe, "observation_names", ()))
    net_kwargs = {
        "obs_dim": obs_dim,
        "n_agents": len(agent_ids),
        "action_dim": action_dim,
        "config": config.to_dict(),
    }
    # Tiny networks: extra BLAS threads only compete with the rollout workers for cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    learner = MAPPO(config, obs_dim, len(agent_ids), action_dim)
    rollouts = make_rollouts(env_fn, config, net_kwargs, workers, use_ray, address, runtime_env)
    history: list[dict[str, float]] = []
    env_steps, last_return = 0, float("nan")
    try:
        while env_steps < steps:
            tick = time.perf_counter()
            batch = rollouts.sample(learner.actor_params(), config.rollout_steps)
            sampled = time.perf_counter()
            losses = learner.update(batch)
            done = time.perf_counter()
            n = config.rollout_steps * config.num_envs
            env_steps += n
            if batch["episode_returns"].size:
                last_return = float(batch["episode_returns"].mean())
            row = {
                "iteration": float(len(history) + 1),
                "env_steps": float(env_steps),
                "steps_per_s": n / (done - tick),
                "sample_steps_per_s": n / (sampled - tick),
                "episodes": float(batch["episode_returns"].size),
                "mean_return": last_return,
                "wall_s": done - start,
                **losses,
            }
            history.append(row)
            if on_iteration is not None and on_iteration(row, learner):
                break
    finally:
        rollouts.close()
        torch.set_num_threads(threads)
    checkpoint = None
    if out is not None:
        notes = {
            "scenarios": list(scenarios),
            "overrides": dict(factory.overrides),
            "horizon": horizon,
            "reward": reward,
            "revenue_weight": revenue_weight,
            "team_weight": team_weight,
            "env_steps": env_steps,
            "workers": workers,
            "wall_s": time.perf_counter() - start,
            "final_mean_return": last_return,
        }
        checkpoint = save_checkpoint(out, learner.net, config, agent_ids, names, notes)
    return TrainResult(learner, history, checkpoint, time.perf_counter() - start, agent_ids, names)
