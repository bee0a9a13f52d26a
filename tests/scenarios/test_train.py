"""Training environments: the ``"system"`` team reward adds up to the evaluation metrics."""

import pytest

from liqnet.agents.wrappers import TeamMixReward
from liqnet.market.env import LiquidityEnv
from liqnet.market.wrappers import SystemRewardWrapper
from liqnet.scenarios.evaluate import run_metrics
from liqnet.scenarios.policies import run_with_policies
from liqnet.scenarios.train import EnvFactory
from tests.helpers.worlds import Small


@pytest.mark.parametrize("name", ["flash_crash", "credit_crunch"])
@pytest.mark.parametrize("revenue_weight", [0.0, 3.0])
def test_team_rewards_sum_to_the_evaluated_net_of_revenue_and_losses(
    name: str, revenue_weight: float, small: Small
) -> None:
    # The team reward exists while some agent lives. In credit_crunch the defaulted
    # lender's wind-down liquidations (issue 13) default compound too, at step 43: stop
    # just before, when dydx and aave have defaulted (step 40) and compound still acts.
    scenario = small(name, **({"steps": 42} if name == "credit_crunch" else {}))
    env = SystemRewardWrapper(LiquidityEnv(scenario), revenue_weight)
    env.reset(seed=11)
    scale = env.scale
    total, steps = 0.0, 0
    while env.agents:
        _, rewards, *_ = env.step({})  # standing levers: static governance
        rewards = set(rewards.values())
        assert len(rewards) == 1  # one team reward for every acting agent
        total += rewards.pop()
        steps += 1
    assert steps == scenario.steps  # somebody survives to the horizon
    metrics = run_metrics(run_with_policies(scenario, seed=11, policies={}))
    expected = revenue_weight * metrics["revenue_usd"] - metrics["losses_usd"]
    assert total * scale == pytest.approx(expected, rel=1e-9, abs=1e-3)
    assert metrics["losses_usd"] > 0.0  # the crash makes the test mean something


def test_factory_builds_the_requested_reward_and_rejects_negative_weights(small: Small) -> None:
    factory = EnvFactory(("flash_crash",), reward="system", revenue_weight=2.0)
    env = factory(0)
    assert isinstance(env, SystemRewardWrapper) and env.revenue_weight == 2.0
    assert not isinstance(EnvFactory(("flash_crash",))(0), SystemRewardWrapper)
    with pytest.raises(ValueError, match="revenue_weight"):
        SystemRewardWrapper(LiquidityEnv(small("flash_crash")), -1.0)
    # The team mix wraps the system reward (outermost), as documented in EnvFactory.
    mixed = EnvFactory(("flash_crash",), reward="system", team_weight=0.5)(0)
    assert isinstance(mixed, TeamMixReward) and isinstance(mixed.env, SystemRewardWrapper)


def test_train_command_takes_a_config_file_and_the_system_reward(tmp_path) -> None:
    import json

    from liqnet.agents.checkpoint import load_checkpoint
    from liqnet.scenarios.cli import main

    config = tmp_path / "mappo.json"
    config.write_text(json.dumps({"hidden_sizes": [8], "noise_hold_steps": 0, "seed": 7}))
    out = tmp_path / "run"
    args = ["train", "flash_crash", "--steps", "24", "--envs", "2", "--horizon", "12"]
    args += ["--positions", "200", "--no-ray", "--out", str(out), "--config", str(config)]
    assert main([*args, "--reward", "system", "--revenue-weight", "2.5"]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint.config.hidden_sizes == (8,) and checkpoint.config.seed == 7
    assert checkpoint.config.noise_hold_steps == 0
    assert checkpoint.notes["reward"] == "system" and checkpoint.notes["revenue_weight"] == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"hidden_size": [8]}', "hidden_size"),
        ('{"learning_rate": -1}', "learning_rate"),
        ('{"antithetic_pairs": true, "num_envs": 3}', "num_envs = 3: must be even"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_a_bad_config_file_is_one_error_naming_the_field(
    tmp_path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    from liqnet.scenarios.cli import main

    config = tmp_path / "mappo.json"
    config.write_text(text)
    out = tmp_path / "run"
    code = main(["train", "flash_crash", "--no-ray", "--out", str(out), "--config", str(config)])
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 2 and message in printed
    assert not out.exists()  # nothing written
