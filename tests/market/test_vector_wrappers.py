"""Vector reward wrappers: world b's rewards equal the scalar wrappers' on its own env."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.agents.wrappers import TeamMixReward
from liqnet.market.env import LiquidityEnv
from liqnet.market.vector_env import VectorLiquidityEnv
from liqnet.market.vector_wrappers import VectorSystemReward, VectorTeamMix
from liqnet.market.wrappers import SystemRewardWrapper
from liqnet.scenarios import load
from tests.market.test_vector_env import actions_for, step_scalar


def test_system_then_team_mix_equal_the_scalar_chain_over_an_episode() -> None:
    scenario, seed, num_envs = load("flash_crash"), 3, 2
    vec = VectorTeamMix(
        VectorSystemReward(VectorLiquidityEnv(scenario, num_envs, autoreset=False), 2.0), 0.5
    )
    scalars = [
        TeamMixReward(SystemRewardWrapper(LiquidityEnv(scenario), 2.0), 0.5)
        for _ in range(num_envs)
    ]
    vec.reset(seed=seed)
    for b, env in enumerate(scalars):
        env.reset(seed=seed + b)
    rng = np.random.default_rng(0)
    agents, total = vec.possible_agents, 0.0
    while vec.alive.any():
        actions = actions_for(rng, num_envs, len(agents))
        _, rewards, _, _, infos = vec.step(actions)
        for b, env in enumerate(scalars):
            if not infos["acting"][b].any():
                continue
            _, r, _, _, _ = step_scalar(env, actions[b])
            expected = [r.get(a, 0.0) for a in agents]
            np.testing.assert_array_equal(rewards[b], expected)
            total += float(np.abs(rewards[b]).sum())
    assert total > 0.0  # the crash moved the system's net result


def test_a_reset_world_restarts_its_system_baseline() -> None:
    vec = VectorSystemReward(VectorLiquidityEnv(load("flash_crash"), 2, autoreset=False))
    vec.reset(seed=1)
    for _ in range(30):
        vec.step(np.zeros((2, len(vec.possible_agents), 6)))
    vec.reset_world(0, 99)
    scalar = SystemRewardWrapper(LiquidityEnv(load("flash_crash")))
    scalar.reset(seed=99)
    assert vec.scale[0] == scalar.scale
    _, rewards, _, _, _ = vec.step(np.zeros((2, len(vec.possible_agents), 6)))
    _, r, _, _, _ = scalar.step({a: np.zeros(6) for a in scalar.agents})
    np.testing.assert_array_equal(rewards[0], [r[a] for a in vec.possible_agents])


def test_bad_arguments_name_the_field() -> None:
    scenario = load("baseline")
    with pytest.raises(ValueError, match="autoreset=False"):
        VectorSystemReward(VectorLiquidityEnv(scenario, 1))
    with pytest.raises(ValueError, match="revenue_weight"):
        VectorSystemReward(VectorLiquidityEnv(scenario, 1, autoreset=False), -1.0)
    with pytest.raises(ValueError, match="team_weight"):
        VectorTeamMix(VectorLiquidityEnv(scenario, 1), 1.5)
