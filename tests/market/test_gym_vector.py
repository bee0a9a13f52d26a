"""GymVectorEnv: the array engine behind Gymnasium's VectorEnv, checked with its wrappers."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import ClipAction, RecordEpisodeStatistics

from liqnet.market.gym_vector import GymVectorEnv
from liqnet.market.vector_env import VectorLiquidityEnv
from tests.helpers.worlds import Small, drain

HORIZON = 6


@pytest.fixture
def pair(small: Small) -> tuple[GymVectorEnv, VectorLiquidityEnv]:
    """A Gym view of 3 worlds and an identical multi-agent vector env beside it."""
    scenario = small(positions=200)
    return (
        GymVectorEnv(VectorLiquidityEnv(scenario, 3, seed=11, horizon=HORIZON)),
        VectorLiquidityEnv(scenario, 3, seed=11, horizon=HORIZON),
    )


def test_steps_equal_the_multi_agent_env_flattened_with_the_mean_reward(
    pair: tuple[GymVectorEnv, VectorLiquidityEnv],
) -> None:
    gym_env, vec = pair
    assert isinstance(gym_env, VectorEnv)
    obs, _ = gym_env.reset()
    inner, _ = vec.reset()
    np.testing.assert_array_equal(obs, inner.reshape(3, -1))
    assert obs in gym_env.observation_space
    rng = np.random.default_rng(0)
    for t in range(2 * HORIZON):  # two episodes: the autoreset step included
        actions = gym_env.action_space.sample() if t else rng.uniform(-1, 1, (3, 18))
        obs, rewards, terminated, truncated, infos = gym_env.step(actions)
        inner, agent_rewards, _, _, inner_infos = vec.step(actions.reshape(3, 3, 6))
        np.testing.assert_array_equal(obs, inner.reshape(3, -1))
        np.testing.assert_array_equal(rewards, agent_rewards.mean(axis=1))
        assert rewards.shape == (3,) and not terminated.any()
        assert truncated.all() == (t % HORIZON == HORIZON - 1)
        assert not truncated.any() or truncated.all()
        if truncated.any():
            final = inner_infos["final_obs"].reshape(3, -1)
            np.testing.assert_array_equal(infos["final_obs"], final)
        np.testing.assert_array_equal(infos["equity"], inner_infos["equity"])


def test_a_world_whose_protocols_all_default_terminates_and_restarts(
    pair: tuple[GymVectorEnv, VectorLiquidityEnv],
) -> None:
    gym_env, _ = pair
    gym_env.reset()
    world = gym_env.env.models[0]
    assert world is not None
    for protocol in world.protocols.values():  # an exploit drains every balance sheet
        drain(protocol)
    first_seed = gym_env.env.batch.seeds[0]
    _, rewards, terminated, truncated, infos = gym_env.step(np.zeros((3, 18)))
    assert terminated.tolist() == [True, False, False] and not truncated.any()
    assert rewards[0] < -1.0  # each lost more than its equity, plus the penalty
    assert infos["_final_obs"].tolist() == [True, False, False]
    assert infos["episode_seed"][0] != first_seed and infos["alive"][0].all()


def test_gymnasium_vector_wrappers_run_on_it(small: Small) -> None:
    env = GymVectorEnv(VectorLiquidityEnv(small(positions=200), 2, seed=3, horizon=HORIZON))
    # (NormalizeObservation and the other stateful observation wrappers take only
    # NEXT_STEP envs; RecordEpisodeStatistics handles SAME_STEP.)
    env = RecordEpisodeStatistics(ClipAction(env))
    env.reset(seed=5)
    returns = np.zeros(2)
    for _ in range(HORIZON):
        _, rewards, _, truncated, infos = env.step(np.full((2, 18), 3.0))  # clipped to 1
        returns += rewards
    assert truncated.all()
    episode = infos["episode"]
    np.testing.assert_array_equal(episode["l"], [HORIZON, HORIZON])
    np.testing.assert_allclose(episode["r"], returns, rtol=1e-6)
    env.close()


def test_bad_actions_and_an_env_without_autoreset_are_refused(small: Small) -> None:
    scenario = small(positions=200)
    with pytest.raises(ValueError, match=r"autoreset = False.*SAME_STEP"):
        GymVectorEnv(VectorLiquidityEnv(scenario, 2, autoreset=False))
    env = GymVectorEnv(VectorLiquidityEnv(scenario, 2, horizon=HORIZON))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected shape \(2, 18\), got \(2, 3, 6\)"):
        env.step(np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match=r"actions: expected a \(2, 18\) array of levers"):
        env.step("all levers up")
    bad = np.zeros((2, 18))
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"actions\[1, 1\] \(world 1, agent 'compound'\)"):
        env.step(bad)
    assert env.env.models[0] is not None and env.env.models[0].step_index == 0
