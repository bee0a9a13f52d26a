"""Rollouts: Ray actors and in-process workers give the same batches for the same seeds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from liqnet.agents.mappo import MAPPO, MAPPOConfig
from liqnet.scenarios.rollout import (
    HELD_OUT_SEEDS_FROM,
    LocalRollouts,
    RayRollouts,
    batch_stats,
    episode_seed,
    partition,
)
from liqnet.scenarios.train import EnvFactory, positions_overrides

HORIZON = 12
STEPS = 16  # longer than an episode: every env resets once inside the batch
CONFIG = MAPPOConfig(num_envs=4, rollout_steps=STEPS, hidden_sizes=(16, 16), seed=11)
ENV_FN = EnvFactory(
    ("baseline", "flash_crash"), tuple(positions_overrides(200).items()), horizon=HORIZON
)


def setup() -> tuple[MAPPO, dict]:
    """A learner and the worker network arguments for the tiny two-scenario world."""
    env = ENV_FN(0)
    obs_dim = env.observation_space("aave").shape[0]
    learner = MAPPO(CONFIG, obs_dim, 3, 6)
    kwargs = {"obs_dim": obs_dim, "n_agents": 3, "action_dim": 6, "config": CONFIG.to_dict()}
    return learner, kwargs


def test_ray_workers_give_the_in_process_batch(local_ray: None) -> None:
    learner, kwargs = setup()
    local = LocalRollouts(ENV_FN, CONFIG.num_envs, 2, CONFIG.seed, kwargs)
    remote = RayRollouts(ENV_FN, CONFIG.num_envs, 2, CONFIG.seed, kwargs)
    try:
        for _ in range(2):  # the second batch continues the episodes of the first
            params = learner.actor_params()
            expected, got = local.sample(params, STEPS), remote.sample(params, STEPS)
            assert batch_stats(got) == batch_stats(expected)
            assert set(got) == set(expected)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
            learner.update(expected)  # new parameters are broadcast for the next batch
    finally:
        remote.close()
        local.close()
    stats = batch_stats(expected)
    assert stats["episodes"] == 4 and np.isfinite(stats["mean_episode_return"])
    assert got["obs"].shape == (STEPS, 4, 3, kwargs["obs_dim"])
    assert got["state"].shape == (STEPS, 4, 3 * kwargs["obs_dim"])


def test_worker_split_does_not_change_the_batch() -> None:
    learner, kwargs = setup()
    params = learner.actor_params()
    one = LocalRollouts(ENV_FN, CONFIG.num_envs, 1, CONFIG.seed, kwargs).sample(params, STEPS)
    two = LocalRollouts(ENV_FN, CONFIG.num_envs, 2, CONFIG.seed, kwargs).sample(params, STEPS)
    # Same env seeds and noise; only the batched matmul shapes differ (float round-off).
    for key in ("raw_obs", "state", "rewards", "dones", "alive"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(two["actions"], one["actions"], atol=1e-5)
    other = LocalRollouts(ENV_FN, CONFIG.num_envs, 2, CONFIG.seed + 1, kwargs).sample(params, 4)
    assert not np.allclose(other["actions"], two["actions"][:4])


def test_batch_marks_episode_ends_and_resets() -> None:
    learner, kwargs = setup()
    batch = LocalRollouts(ENV_FN, 2, 1, CONFIG.seed, kwargs).sample(learner.actor_params(), STEPS)
    # Every agent's episode ends at the horizon (or earlier on default); then a new one.
    assert batch["dones"][HORIZON - 1].all()
    assert batch["alive"][HORIZON].all() and np.all(batch["time"][HORIZON] == 0.0)
    np.testing.assert_allclose(batch["time"][:HORIZON, 0], np.arange(HORIZON) / HORIZON)
    assert not batch["rewards"][~batch["alive"]].any()
    assert batch["episode_lengths"].tolist() == [HORIZON, HORIZON]


@pytest.mark.parametrize("hold", [0, 1, 5])
def test_held_noise_stays_for_its_steps_and_episode(hold: int) -> None:
    learner, kwargs = setup()
    kwargs["config"] = replace(CONFIG, noise_hold_steps=hold).to_dict()
    batch = LocalRollouts(ENV_FN, 2, 1, CONFIG.seed, kwargs).sample(learner.actor_params(), STEPS)
    # logp = -|noise|^2 / 2 + const: equal logps mean the same noise draw.
    logp = batch["logp"]
    same = np.isclose(logp[1:], logp[:-1], rtol=0.0, atol=1e-5).all(axis=(1, 2))
    t = np.arange(1, STEPS) % HORIZON  # episode step of logp[1:]; 0 after a reset
    held = (t % hold != 0) if hold else (t != 0)
    np.testing.assert_array_equal(same, held)


def test_antithetic_pairs_share_seeds_and_mirror_noise() -> None:
    learner, kwargs = setup()
    config = replace(CONFIG, antithetic_pairs=True, noise_hold_steps=0)
    kwargs["config"] = config.to_dict()
    env_fn = replace(ENV_FN, group=2)  # envs 0, 1: baseline; 2, 3: flash_crash
    batch = LocalRollouts(env_fn, 4, 2, config.seed, kwargs).sample(learner.actor_params(), STEPS)
    episodes = batch["episode"]
    np.testing.assert_array_equal(episodes[:, 0], episodes[:, 1])
    np.testing.assert_array_equal(episodes[:, 2], episodes[:, 3])
    assert (episodes[:, 0] != episodes[:, 2]).all()
    # Step 0: partners see one world; their actions mirror about the same mean.
    np.testing.assert_array_equal(batch["raw_obs"][0, 0], batch["raw_obs"][0, 1])
    with torch.no_grad():
        mean = learner.net.action_mean(torch.from_numpy(batch["obs"][0, 0]))
    pair_sum = batch["actions"][0, 0] + batch["actions"][0, 1]
    np.testing.assert_allclose(pair_sum, 2.0 * mean.numpy(), atol=1e-5)
    assert not np.allclose(batch["actions"][0, 0], batch["actions"][0, 1])
    # Opposite noise has the same likelihood, at every step of both episodes.
    np.testing.assert_allclose(batch["logp"][:, 0], batch["logp"][:, 1], atol=1e-4)
    np.testing.assert_allclose(batch["logp"][:, 2], batch["logp"][:, 3], atol=1e-4)


def test_seeds_and_partition() -> None:
    assert partition(4, 2) == [[0, 1], [2, 3]]
    assert all(len(block) % 2 == 0 for block in partition(10, 3, unit=2))
    with pytest.raises(ValueError, match=r"workers = 2: must be in \[1, 1\]"):
        partition(2, 2, unit=2)
    assert [i for block in partition(7, 3) for i in block] == list(range(7))
    with pytest.raises(ValueError, match="workers = 3"):
        partition(2, 3)
    seeds = {episode_seed(s, e, k) for s in range(5) for e in range(64) for k in range(200)}
    assert len(seeds) == 5 * 64 * 200 and max(seeds) < HELD_OUT_SEEDS_FROM


class PerEnv:
    """``EnvFactory`` without its ``vector`` method: workers step ``ParallelEnvBatch``."""

    def __init__(self, factory: EnvFactory) -> None:
        self.factory = factory

    def __call__(self, index: int) -> object:
        return self.factory(index)


@pytest.mark.parametrize(
    ("reward", "team_weight", "inner"),
    [("system", 0.0, "VectorSystemReward"), ("equity", 0.5, "VectorTeamMix"), ("system", 1.0, "")],
)
def test_reward_wrappers_keep_the_array_engine_and_its_batch(
    reward: str, team_weight: float, inner: str
) -> None:
    """The system reward and team mixes run as vector wrappers of the engine, and the
    batch equals the per-env loop's (the scalar wrappers), bit for bit."""
    factory = EnvFactory(
        ("bank_run",),
        tuple(positions_overrides(200).items()),
        horizon=30,
        reward=reward,
        team_weight=team_weight,
    )
    learner, kwargs = setup()
    params = learner.actor_params()
    engine = LocalRollouts(factory, 4, 1, CONFIG.seed, kwargs)
    per_env = LocalRollouts(PerEnv(factory), 4, 1, CONFIG.seed, kwargs)
    envs = engine.workers[0].envs
    assert type(envs.unwrapped).__name__ == "VectorLiquidityEnv"
    assert type(envs).__name__ == (inner or "VectorTeamMix")
    if not inner:  # both: the team mix outside the system reward, as wrappers() stacks them
        assert type(envs.env).__name__ == "VectorSystemReward"
    for _ in range(2):
        expected, got = per_env.sample(params, 40), engine.sample(params, 40)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert np.abs(got["rewards"]).sum() > 0.0


@pytest.mark.parametrize("name", ["flash_crash", "bank_run"])
def test_array_engine_workers_give_the_per_env_batch(name: str) -> None:
    """One scenario and no reward wrapper: the worker steps its block through
    VectorLiquidityEnv; the batch equals the per-env loop's, bit for bit."""
    factory = EnvFactory((name,), tuple(positions_overrides(200).items()), horizon=30)
    learner, kwargs = setup()
    config = replace(CONFIG, antithetic_pairs=True)
    kwargs["config"] = config.to_dict()
    params = learner.actor_params()
    engine = LocalRollouts(factory, 4, 1, config.seed, kwargs)
    per_env = LocalRollouts(PerEnv(factory), 4, 1, config.seed, kwargs)
    assert type(engine.workers[0].envs).__name__ == "VectorLiquidityEnv"
    assert type(per_env.workers[0].envs).__name__ == "ParallelEnvBatch"
    for _ in range(2):
        expected, got = per_env.sample(params, 40), engine.sample(params, 40)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert got["episode_returns"].size >= 4


@pytest.mark.parametrize(("group", "reward"), [(1, "equity"), (2, "system")])
def test_blocks_of_several_scenarios_run_on_the_engine(group: int, reward: str) -> None:
    """A block that mixes scenarios is one engine batch per scenario (GroupedVectorEnv),
    worlds in the block's order; its batch equals the per-env loop's, bit for bit."""
    factory = EnvFactory(
        ("baseline", "flash_crash"),
        tuple(positions_overrides(200).items()),
        group=group,
        horizon=30,
        reward=reward,
    )
    learner, kwargs = setup()
    config = replace(CONFIG, num_envs=6, antithetic_pairs=group == 2)
    kwargs["config"] = config.to_dict()
    params = learner.actor_params()
    engine = LocalRollouts(factory, 6, 1, config.seed, kwargs)
    per_env = LocalRollouts(PerEnv(factory), 6, 1, config.seed, kwargs)
    envs = engine.workers[0].envs
    assert type(envs).__name__ == "GroupedVectorEnv"
    assert [type(p.unwrapped).__name__ for p in envs.parts] == ["VectorLiquidityEnv"] * 2
    names = [p.unwrapped.scenario.name for p in envs.parts]
    assert [names[p] for p, _ in envs.placement] == [
        factory.scenarios[i // group % 2] for i in range(6)
    ]
    for _ in range(2):
        expected, got = per_env.sample(params, 40), engine.sample(params, 40)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert got["episode_returns"].size >= 6
