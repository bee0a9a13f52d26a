"""Rollouts: workers that each step several environments with the current actor.

A :class:`RolloutWorker` holds a fixed block of environments (by global env index) and
samples ``steps`` steps in each with the actor parameters it is handed. The learner
runs workers either as Ray actors (:class:`RayRollouts`: local Ray by default, a cluster
when an address or ``RAY_ADDRESS`` is given) or in this process (:class:`LocalRollouts`).
Both split the environments into the same blocks and draw action noise and episode seeds per
*environment*, so for the same seeds they return the same batch, bit for bit.

Environments come from a picklable ``env_fn(env_index)`` (any PettingZoo ParallelEnv with
``state()``), so this module needs no scenario files: the caller decides what is built.
A factory with a ``vector(env_indices)`` method hands each worker its block as one vector
env instead (the array engine).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch.distributions import Normal

from liqnet.agents.mappo import ActorCritic, MAPPOConfig
from liqnet.market.vector_env import ParallelEnvBatch, VectorLiquidityEnv
from liqnet.market.vector_groups import GroupedVectorEnv
from liqnet.market.vector_wrappers import VectorRewardWrapper

if TYPE_CHECKING:
    from ray.actor import ActorHandle

Batch = dict[str, np.ndarray]
"""A rollout batch. Time-major arrays ``(T, E, ...)``: ``obs`` (normalised as the actor
saw them), ``raw_obs``, ``state``, ``time`` (elapsed share of the episode), ``actions``,
``logp``, ``rewards``, ``dones``, ``alive``, ``episode`` (the episode's seed); after the
last step, per env: ``last_state``, ``last_time``, ``last_alive``; per finished episode:
``episode_returns`` (mean over the agents), ``episode_lengths``."""

_TIME_MAJOR = (
    "obs",
    "raw_obs",
    "state",
    "time",
    "actions",
    "logp",
    "rewards",
    "dones",
    "alive",
    "episode",
)
_PER_ENV = ("last_state", "last_time", "last_alive")
_PER_EPISODE = ("episode_returns", "episode_lengths")

HELD_OUT_SEEDS_FROM = 2_000_000_000
"""Training episodes never use seeds at or above this; evaluate on seeds from here on."""


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """World seed of training episode ``episode`` of environment ``env_index``."""
    return ((seed * 1000 + env_index) * 100_000 + episode) % HELD_OUT_SEEDS_FROM


def partition(num_envs: int, num_workers: int, unit: int = 1) -> list[list[int]]:
    """Contiguous, nearly equal blocks of env indices, one per worker.

    Blocks hold whole groups of ``unit`` consecutive envs (2 keeps antithetic pairs
    together in one worker).
    """
    groups = num_envs // unit
    if not 1 <= num_workers <= groups:
        raise ValueError(
            f"workers = {num_workers}: must be in [1, {groups}] "
            f"({num_envs} envs in groups of {unit})"
        )
    bounds = np.linspace(0, groups, num_workers + 1).round().astype(int) * unit
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


def merge(batches: Sequence[Batch]) -> Batch:
    """Join worker batches in worker order (so env order is the global env index)."""
    merged = {k: np.concatenate([b[k] for b in batches], axis=1) for k in _TIME_MAJOR}
    merged.update({k: np.concatenate([b[k] for b in batches]) for k in _PER_ENV + _PER_EPISODE})
    return merged


def batch_stats(batch: Batch) -> dict[str, float]:
    """Summary figures of a batch (used to compare Ray and in-process rollouts)."""
    alive = batch["alive"]
    returns = batch["episode_returns"]
    return {
        "samples": float(alive.sum()),
        "mean_reward": float(batch["rewards"][alive].mean()),
        "mean_action": float(batch["actions"][alive].mean()),
        "mean_logp": float(batch["logp"][alive].mean()),
        "episodes": float(returns.size),
        "mean_episode_return": float(returns.mean()) if returns.size else float("nan"),
    }


class RolloutWorker:
    """Steps a block of environments, as one vector env, with a Gaussian actor.

    The block is ``env_fn.vector(env_indices)`` when the factory has that method
    (:class:`liqnet.scenarios.train.EnvFactory` returns the array engine:
    :class:`~liqnet.market.vector_env.VectorLiquidityEnv`, or one per scenario behind
    :class:`~liqnet.market.vector_groups.GroupedVectorEnv`), else the envs
    ``env_fn(i)`` behind :class:`~liqnet.market.vector_env.ParallelEnvBatch`. Either way
    the batch is the same, bit for bit.

    Args:
        env_fn: ``env_fn(env_index)`` builds one environment.
        env_indices: The global indices of the environments this worker holds.
        seed: Training seed (action noise and episode seeds derive from it per env).
        net_kwargs: ``obs_dim``, ``n_agents``, ``action_dim`` and ``config`` (a
            :class:`MAPPOConfig` dict) of the actor to build.
    """

    def __init__(
        self,
        env_fn: Callable[[int], Any],
        env_indices: Sequence[int],
        seed: int,
        net_kwargs: dict[str, Any],
    ) -> None:
        # One thread: several workers share a few cores, and tiny matmuls gain nothing.
        torch.set_num_threads(1)
        self.env_indices = list(env_indices)
        self.seed = seed
        vector = getattr(env_fn, "vector", None)
        self.envs: (
            VectorLiquidityEnv | VectorRewardWrapper | GroupedVectorEnv | ParallelEnvBatch
        ) = (
            vector(self.env_indices)
            if vector is not None
            else ParallelEnvBatch([env_fn(i) for i in self.env_indices])
        )
        self.agents: list[str] = list(self.envs.possible_agents)
        kwargs = dict(net_kwargs)
        config = MAPPOConfig.from_dict(kwargs.pop("config"))
        self.net = ActorCritic(config=config, **kwargs)
        self.noise = [np.random.default_rng([seed, i]) for i in self.env_indices]
        self.hold = config.noise_hold_steps
        # Antithetic pairs (2j, 2j + 1): the second env replays the first one's seeds
        # and takes its noise negated (``partition`` keeps a pair in one worker).
        self.paired = config.antithetic_pairs
        n_envs = len(self.env_indices)
        self._seeds = [0] * n_envs
        self._eps = [np.empty(0)] * n_envs
        self.episodes = [0] * n_envs
        self._horizons = np.asarray(self.envs.horizons, dtype=np.float64)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._returns = np.zeros((n_envs, len(self.agents)))
        for k in range(n_envs):
            self._reset(k)

    def _reset(self, k: int) -> None:
        index = self.env_indices[k]
        index -= index % 2 if self.paired else 0
        seed = self._seeds[k] = episode_seed(self.seed, index, self.episodes[k])
        self.episodes[k] += 1
        self.envs.reset_world(k, seed)
        self._t[k] = 0
        self._returns[k] = 0.0

    def _time(self) -> np.ndarray:
        """Elapsed share of each env's episode (0 where the horizon is unknown)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(self._horizons > 0, self._t / self._horizons, 0.0)
        return np.nan_to_num(share).astype(np.float32)

    def _noise(self, k: int) -> np.ndarray:
        """Standard-normal action noise of env ``k`` this step, held for
        :attr:`MAPPOConfig.noise_hold_steps` steps of the episode."""
        t = self._t[k]
        if self.paired and self.env_indices[k] % 2 and self._in_step_with_partner(k):
            self._eps[k] = -self._eps[k - 1]
        elif (t % self.hold == 0) if self.hold else t == 0:
            # Each env's own generator: the noise is independent of how envs are split.
            shape = (len(self.agents), self.net.action_dim)
            self._eps[k] = self.noise[k].standard_normal(shape)
        return self._eps[k]

    def _in_step_with_partner(self, k: int) -> bool:
        """Whether env ``k`` runs the same episode and step as the env before it."""
        return self._seeds[k] == self._seeds[k - 1] and self._t[k] == self._t[k - 1]

    def sample(self, params: dict[str, torch.Tensor], steps: int) -> Batch:
        """Load actor ``params`` and take ``steps`` steps in every environment."""
        self.net.load_state_dict(params, strict=False)
        envs, net = self.envs, self.net
        n_envs = len(self.env_indices)
        out: dict[str, list] = {k: [] for k in _TIME_MAJOR}
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        std = net.log_std.detach().exp()
        for _ in range(steps):
            alive = envs.alive.copy()
            # Dead agents' rows read zeros, whatever the env leaves there.
            raw = np.where(alive[:, :, None], envs.obs, np.float32(0.0))
            with torch.no_grad():
                obs = net.obs_norm.normalize(torch.from_numpy(raw))
                mean = net.action_mean(obs)
                eps = np.stack([self._noise(k) for k in range(n_envs)])
                actions = mean + std * torch.from_numpy(eps.astype(np.float32))
                logp = Normal(mean, std.expand_as(mean)).log_prob(actions).sum(-1)
            out["obs"].append(obs.numpy())
            out["raw_obs"].append(raw)
            out["state"].append(envs.state())
            out["time"].append(self._time())
            out["actions"].append(actions.numpy())
            out["logp"].append(logp.numpy())
            out["alive"].append(alive)
            out["episode"].append(np.array(self._seeds, np.int64))
            _, rew, term, trunc, _ = envs.step(actions.numpy())
            rewards = np.where(alive, rew, 0.0).astype(np.float32)
            dones = np.where(alive, term | trunc, True)
            self._returns += rewards
            self._t += 1
            for k in np.flatnonzero(~envs.alive.any(axis=1)).tolist():
                episode_returns.append(float(self._returns[k].mean()))
                episode_lengths.append(int(self._t[k]))
                self._reset(k)
            out["rewards"].append(rewards)
            out["dones"].append(dones)
        batch = {k: np.stack(v) for k, v in out.items()}
        batch["last_state"] = envs.state()
        batch["last_time"] = self._time()
        batch["last_alive"] = envs.alive.copy()
        batch["episode_returns"] = np.array(episode_returns, np.float64)
        batch["episode_lengths"] = np.array(episode_lengths, np.int64)
        return batch


class LocalRollouts:
    """Rollout workers in this process, with the same env blocks as :class:`RayRollouts`.

    Args:
        env_fn: Builds environment ``i``.
        num_envs: Environments in all.
        num_workers: Blocks the environments are split into.
        seed: Training seed.
        net_kwargs: See :class:`RolloutWorker`.
    """

    def __init__(
        self,
        env_fn: Callable[[int], Any],
        num_envs: int,
        num_workers: int,
        seed: int,
        net_kwargs: dict[str, Any],
    ) -> None:
        blocks = partition(num_envs, num_workers, _unit(net_kwargs))
        self.workers = [RolloutWorker(env_fn, block, seed, net_kwargs) for block in blocks]

    def sample(self, params: dict[str, torch.Tensor], steps: int) -> Batch:
        """One batch from every worker, merged."""
        return merge([w.sample(params, steps) for w in self.workers])

    def close(self) -> None:
        """Nothing to release in-process."""
        self.workers = []


class RayRollouts:
    """Rollout workers as Ray actors; parameters are broadcast once per batch.

    Connects through :func:`liqnet.scenarios.ray_connect.ray_connection`, as sweeps do: a
    connection already made is used; else ``address`` or ``RAY_ADDRESS`` is joined (the
    cluster's own resources); else a private local Ray with one CPU per worker starts.

    Args:
        env_fn: Builds environment ``i`` (pickled to the workers).
        num_envs: Environments in all.
        num_workers: Ray actors, one CPU each.
        seed: Training seed.
        net_kwargs: See :class:`RolloutWorker`.
        address: Ray cluster address; ``None``: ``RAY_ADDRESS``, else a local Ray.
        runtime_env: Ray ``runtime_env`` of the job (``working_dir``, ``py_modules``, ...).
    """

    def __init__(
        self,
        env_fn: Callable[[int], Any],
        num_envs: int,
        num_workers: int,
        seed: int,
        net_kwargs: dict[str, Any],
        address: str | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        import ray  # imported here: in-process training never pays Ray's start-up

        from liqnet.scenarios.ray_connect import ray_connection

        # Checked before Ray starts: a bad worker count costs no start-up.
        blocks = partition(num_envs, num_workers, _unit(net_kwargs))
        self._ray = ray
        self._connection = contextlib.ExitStack()
        self._connection.enter_context(
            ray_connection(address, num_workers, runtime_env, log_to_driver=False)
        )
        remote_worker = ray.remote(num_cpus=1)(RolloutWorker)
        # ActorClass.remote returns an ActorHandle; Ray's stubs widen it to
        # ActorHandle | type[RolloutWorker] so that plain attribute access type-checks.
        try:
            self.workers = [
                cast(
                    "ActorHandle[RolloutWorker]",
                    remote_worker.remote(env_fn, block, seed, net_kwargs),
                )
                for block in blocks
            ]
        except BaseException:
            self._connection.close()
            raise

    def sample(self, params: dict[str, torch.Tensor], steps: int) -> Batch:
        """Broadcast ``params`` (one object in the store), sample on every actor, merge."""
        ref = self._ray.put(params)
        return merge(self._ray.get([w.sample.remote(ref, steps) for w in self.workers]))

    def close(self) -> None:
        """Stop the actors, and disconnect from Ray if this object connected."""
        for worker in self.workers:
            self._ray.kill(worker)
        self.workers = []
        self._connection.close()


def _unit(net_kwargs: dict[str, Any]) -> int:
    """Envs a worker block must keep together: 2 with antithetic pairs, else 1."""
    return 2 if net_kwargs["config"].get("antithetic_pairs") else 1


def make_rollouts(
    env_fn: Callable[[int], Any],
    config: MAPPOConfig,
    net_kwargs: dict[str, Any],
    num_workers: int = 1,
    use_ray: bool = True,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> LocalRollouts | RayRollouts:
    """Ray actors (``use_ray``) or in-process workers for ``config.num_envs`` envs."""
    if use_ray:
        return RayRollouts(
            env_fn, config.num_envs, num_workers, config.seed, net_kwargs, address, runtime_env
        )
    return LocalRollouts(env_fn, config.num_envs, num_workers, config.seed, net_kwargs)
