"""Reward and observation wrappers: PettingZoo API, the system reward, normalisation,
forecast features and the order of make_env(wrappers=)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from liqnet.agents.forecaster import FEATURES, ForecastConfig, Forecaster, ForecastNet
from liqnet.agents.mappo import RunningNorm
from liqnet.agents.wrappers import ForecastObservation, NormalizeObservation, TeamMixReward
from liqnet.market.env import LiquidityEnv
from liqnet.market.wrappers import SystemRewardWrapper
from liqnet.protocols.base import LEVER_NAMES
from liqnet.protocols.lending import LendingPool
from liqnet.scenarios import make_env
from liqnet.scenarios.evaluate import run_metrics
from liqnet.scenarios.run import _result_from_model

POSITIONS = {f"protocols.{k}.params.positions": 200 for k in range(3)}


def forecaster() -> Forecaster:
    """A real (untrained, seeded) forecaster: a small ForecastNet with its config."""
    config = ForecastConfig(hidden=8, layers=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = ForecastNet(len(FEATURES), config.hidden, config.layers)
    return Forecaster(net, config)


WRAPPERS: dict[str, Callable[[ParallelEnv], ParallelEnv]] = {
    "system": partial(SystemRewardWrapper, revenue_weight=2.0),
    "team_mix": partial(TeamMixReward, team_weight=0.5),
    "normalize": NormalizeObservation,
    "forecast": lambda env: ForecastObservation(env, forecaster()),
}


def wrapped(*names: str, horizon: int = 30, scenario: str = "baseline") -> ParallelEnv:
    """A small env inside the named wrappers, in order."""
    chain = [WRAPPERS[n] for n in names]
    return make_env(scenario, horizon=horizon, overrides=POSITIONS, wrappers=chain)


def rollout(env: ParallelEnv, seed: int, action_seed: int = 0) -> list[tuple]:
    """A whole episode under seeded random levers: every step's outputs and state."""
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace: list[tuple] = [(obs, env.state())]
    while env.agents:
        actions = {a: rng.uniform(-1.0, 1.0, len(LEVER_NAMES)) for a in env.agents}
        trace.append((*env.step(actions)[:4], env.state()))
    return trace


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_each_wrapper_passes_the_pettingzoo_api_and_seed_tests(name: str) -> None:
    env = wrapped(name)
    parallel_api_test(env, num_cycles=40)
    parallel_seed_test(lambda: wrapped(name), num_cycles=40)
    obs, _ = env.reset(seed=1)
    for agent, o in obs.items():
        assert env.observation_space(agent).contains(o)
        assert env.observation_space(agent) is env.observation_space(agent)
    assert env.state().shape == env.state_space.shape


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_each_wrapper_is_deterministic(name: str) -> None:
    first, second = rollout(wrapped(name), seed=5), rollout(wrapped(name), seed=5)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, dict):
                assert x.keys() == y.keys()
                for key in x:
                    np.testing.assert_array_equal(x[key], y[key])
            else:
                np.testing.assert_array_equal(x, y)


def test_system_reward_is_revenue_times_weight_minus_losses_from_the_recorded_run() -> None:
    weight = 3.0
    env = wrapped("system", horizon=None, scenario="flash_crash")
    env.revenue_weight = weight
    env.reset(seed=11)
    model, scale = env.unwrapped.model, env.scale
    pids = list(model.protocols)
    assert scale == pytest.approx(sum(p.total_assets() for p in model.protocols.values()))
    pools = [p for p in model.protocols.values() if isinstance(p, LendingPool)]
    rewards, underwater = [], [sum(p.underwater_shortfall() for p in pools)]
    while env.agents:
        _, step_rewards, *_ = env.step({})
        assert len(set(step_rewards.values())) == 1  # one team reward for the acting agents
        rewards.append(next(iter(step_rewards.values())))
        underwater.append(sum(p.underwater_shortfall() for p in pools))
    # By hand from the recorded table: revenue, realised bad debt and credit losses per
    # protocol and step, plus loans still underwater and what defaulters could not pay.
    ts = model.timeseries().set_index("step")
    assert list(ts.index) == list(range(len(rewards) + 1))  # reset row, then every step
    revenue = ts[[f"{p}.revenue" for p in pids]].sum(axis=1).to_numpy()
    losses = ts[[f"{p}.{c}" for p in pids for c in ("bad_debt", "credit_losses")]]
    losses = losses.sum(axis=1).to_numpy() + np.array(underwater)
    for default in model.defaults:
        losses[int(default["step"]) :] += max(0.0, -default["equity_usd"])
    net = weight * revenue - losses
    np.testing.assert_allclose(np.array(rewards) * scale, np.diff(net), rtol=1e-9, atol=1e-3)
    assert losses[-1] > 0.0  # the crash makes the comparison mean something
    # The episode's return is `liqnet evaluate`'s figure for the same run, in units of scale.
    metrics = run_metrics(_result_from_model(model, env.unwrapped.scenario))
    evaluated = weight * metrics["revenue_usd"] - metrics["losses_usd"]
    assert math.fsum(rewards) * scale == pytest.approx(evaluated - net[0], rel=1e-9, abs=1e-3)


def test_team_mix_moves_each_reward_towards_the_step_mean() -> None:
    plain, mixed = wrapped(), wrapped("team_mix")
    plain.reset(seed=2)
    mixed.reset(seed=2)
    for _ in range(5):
        _, r, *_ = plain.step({})
        _, m, *_ = mixed.step({})
        mean = np.mean(list(r.values()))
        for agent in r:
            assert m[agent] == pytest.approx(0.5 * r[agent] + 0.5 * mean, rel=1e-12)


def test_normalisation_gives_zero_mean_unit_variance_over_a_long_run() -> None:
    env = wrapped("normalize", horizon=400)
    raw_env = wrapped(horizon=400)
    normed = [o for step in rollout(env, seed=4) for o in step[0].values()]
    raw = np.array([o for step in rollout(raw_env, seed=4) for o in step[0].values()])
    normed = np.array(normed)
    assert normed.shape == raw.shape and len(normed) > 1000
    # Features that vary (a constant one normalises to 0); tiny variances are left out of
    # the exact check because the prior (variance 1, weight 1e-4) still shows in them.
    varying = raw.var(0) > 1e-3
    assert varying.sum() >= 10
    # The final moments are those of everything seen: exact standardisation.
    z = (raw - env.mean) / np.sqrt(env.var + env.epsilon)
    np.testing.assert_allclose(z[:, varying].mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[:, varying].var(0), 1.0, rtol=1e-3)
    # What the agents saw online, after a warm-up: about standardised too (the market
    # drifts, so a feature's late mean is not exactly the running one).
    late = normed[len(normed) // 10 :, varying]
    assert np.median(np.abs(late.mean(0))) < 0.35
    assert np.median(late.std(0)) == pytest.approx(1.0, abs=0.2)
    assert np.abs(late.mean(0)).max() < 1.5 and late.std(0).max() < 2.5
    np.testing.assert_allclose(normed[:, raw.var(0) == 0.0], 0.0, atol=0.01)  # constants
    assert np.abs(normed).max() <= env.clip


def test_normalisation_state_round_trips_and_matches_mappo_running_norm() -> None:
    env = wrapped("normalize")
    rollout(env, seed=6)
    saved = env.state_dict()
    frozen = wrapped("normalize")
    frozen.load_state_dict(saved)
    frozen.update_moments = False
    obs, _ = frozen.reset(seed=7)
    np.testing.assert_array_equal(frozen.mean, saved["mean"])  # not moved by the reset
    # A RunningNorm with the same buffers normalises identically: one formula.
    norm = RunningNorm(saved["mean"].shape)
    norm.load_state_dict({k: torch.as_tensor(v) for k, v in saved.items()})
    raw, _ = wrapped().reset(seed=7)
    for agent, o in obs.items():
        expected = norm.normalize(torch.as_tensor(raw[agent])).numpy()
        np.testing.assert_allclose(o, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        frozen.load_state_dict({"mean": np.zeros(3), "var": np.ones(3), "count": 1.0})


def test_forecast_features_are_appended_with_their_names_and_spaces() -> None:
    base, env = wrapped(), wrapped("forecast")
    dim, assets = base.observation_space("aave").shape[0], len(base.asset_names)
    assert env.observation_space("aave").shape == (dim + 2 * assets,)
    assert env.observation_names[:dim] == base.observation_names
    assert env.observation_names[dim:] == (
        *(f"forecast.{a}.vol" for a in base.asset_names),
        *(f"forecast.{a}.crash_prob" for a in base.asset_names),
    )
    space = env.observation_space("aave")
    np.testing.assert_array_equal(space.low[dim:], 0.0)
    np.testing.assert_array_equal(space.high[dim + assets :], 1.0)
    # The appended values are the forecaster's outputs on the raw observations.
    reference = forecaster()
    reference.reset(base.observation_names, base.scenario.dt_hours)
    raw, _ = base.reset(seed=8)
    obs, _ = env.reset(seed=8)
    expected = reference.observe(raw)
    for agent, o in obs.items():
        np.testing.assert_array_equal(o[:dim], raw[agent])
        np.testing.assert_allclose(o[dim:], np.concatenate(expected[agent]), rtol=1e-6)
        assert space.contains(o)
    assert env.state().shape == (len(env.possible_agents) * (dim + 2 * assets),)


def test_make_env_applies_wrappers_in_order_innermost_first() -> None:
    # Forecast then normalise (the documented order): the forecasts are normalised too.
    outer_norm = wrapped("forecast", "normalize")
    assert isinstance(outer_norm, NormalizeObservation)
    assert isinstance(outer_norm.env, ForecastObservation)
    assert isinstance(outer_norm.env.env, LiquidityEnv)
    dim = outer_norm.env.observation_space("aave").shape[0]
    assert outer_norm.observation_space("aave").shape == (dim,)
    np.testing.assert_array_equal(outer_norm.observation_space("aave").low, -outer_norm.clip)
    # The other way round the forecaster sees normalised inputs and its outputs stay raw.
    outer_fc = wrapped("normalize", "forecast")
    assert isinstance(outer_fc, ForecastObservation)
    assert np.all(outer_fc.observation_space("aave").low[-2:] == 0.0)
    a, _ = outer_norm.reset(seed=9)
    b, _ = outer_fc.reset(seed=9)
    assert not np.allclose(a["aave"], b["aave"])
    # A reward wrapper outside the system reward sees the team reward, inside it is lost.
    assert isinstance(wrapped("system", "team_mix").env, SystemRewardWrapper)
    assert isinstance(wrapped("team_mix", "system").env, TeamMixReward)
    with pytest.raises(TypeError, match="LiquidityEnv"):
        SystemRewardWrapper(ParallelEnv())
