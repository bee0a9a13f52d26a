"""RLlib PPO trains one shared policy on LiquidityEnv through ParallelPettingZooEnv.

Uses RLlib's default (new) API stack: ``ParallelPettingZooEnv`` is a ``MultiAgentEnv``
and the ``MultiAgentEnvRunner`` samples it directly; the env is not modified.
"""

from __future__ import annotations

import math

import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    EPISODE_RETURN_MEAN,
    LEARNER_RESULTS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_MODULE_STEPS_SAMPLED,
)
from ray.tune.registry import register_env

from liqnet.scenarios.envs import make_env

ENV_NAME = "liqnet_liquidity_small"
HORIZON = 50
POLICY = "shared"


def make_rllib_env(config: dict) -> ParallelPettingZooEnv:
    """Creator for ``register_env``: a tiny baseline world, horizon 50, wrapped as is."""
    positions = {f"protocols__{k}__params__positions": 200 for k in range(3)}
    return ParallelPettingZooEnv(make_env("baseline", horizon=HORIZON, **positions))


@pytest.fixture(scope="module")
def rllib_env(local_ray: None) -> str:
    """The tiny env registered with the local Ray (``local_ray`` from conftest); its name."""
    register_env(ENV_NAME, make_rllib_env)
    return ENV_NAME


def test_ppo_trains_one_shared_policy(rllib_env: str) -> None:
    config = (
        PPOConfig()
        .environment(rllib_env)
        # Sample in the driver: no extra actors on a two-core machine.
        .env_runners(num_env_runners=0, rollout_fragment_length=HORIZON)
        .learners(num_learners=0)
        .multi_agent(
            policies={POLICY},
            policy_mapping_fn=lambda agent_id, episode, **kwargs: POLICY,
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32, 32]))
        .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        module = algo.get_module(POLICY)
    finally:
        algo.stop()

    assert module is not None
    runners = result[ENV_RUNNER_RESULTS]
    env_steps = runners[NUM_ENV_STEPS_SAMPLED_LIFETIME]
    assert env_steps >= 200
    # The one shared module acted for all three protocols at every env step.
    assert runners[NUM_MODULE_STEPS_SAMPLED] == {POLICY: 3 * runners["num_env_steps_sampled"]}
    # 200 env steps over 50-step episodes: whole episodes finished and were scored.
    assert runners[NUM_EPISODES] >= 1
    assert math.isfinite(float(runners[EPISODE_RETURN_MEAN]))
    learner = result[LEARNER_RESULTS][POLICY]
    for key in ("total_loss", "policy_loss", "vf_loss"):
        assert math.isfinite(float(learner[key])), (key, learner[key])
