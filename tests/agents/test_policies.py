"""Tests of the non-learning policies and of running scenarios with policies.

Unit tests feed synthetic observations through a hand-made :class:`PolicyContext`; the
end-to-end tests run small worlds (300 positions per protocol) for a few dozen steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces
from pandas.testing import assert_frame_equal

from liqnet.agents import (
    DEFAULT_STANDING_LEVERS,
    BayesConfig,
    BayesianRiskManager,
    NormalInverseGamma,
    PolicyContext,
    StaticGovernance,
    VolatilityTargeting,
    VolTargetConfig,
    make_policy,
    policy_names,
)
from liqnet.core.levers import DEFAULT_LEVERS
from liqnet.scenarios import ScenarioError, run
from liqnet.scenarios.policies import resolve_policies, run_with_policies
from tests.helpers.worlds import Small

NAMES = (
    "risk_parameter",
    "ETH.log_return",
    "ETH.realised_vol",
    "BTC.log_return",
    "BTC.realised_vol",
)
STANDING = {"a": np.array([0.0, 0.2, 0.5, -0.3, -1.0, 0.1]), "b": np.zeros(6)}


def context(dt_hours: float = 1.0, standing: dict | None = None) -> PolicyContext:
    """A two-agent context over :data:`NAMES`."""
    return PolicyContext(
        agent_ids=("a", "b"),
        observation_space=spaces.Box(-np.inf, np.inf, (len(NAMES),), np.float32),
        action_space=spaces.Box(-1.0, 1.0, (6,), np.float32),
        observation_names=NAMES,
        dt_hours=dt_hours,
        standing_levers=STANDING if standing is None else standing,
    )


def obs(eth_vol: float = 0.0, btc_vol: float = 0.0, eth_ret: float = 0.0, btc_ret: float = 0.0):
    """Observations of both agents (market entries are shared, as in the env)."""
    row = np.array([0.8, eth_ret, eth_vol, btc_ret, btc_vol], dtype=np.float32)
    return {"a": row.copy(), "b": row.copy()}


# -- static ---------------------------------------------------------------------------------
def test_static_returns_standing_levers_from_context_constructor_or_defaults() -> None:
    policy = StaticGovernance()
    policy.reset(context())
    actions = policy.act(obs())
    np.testing.assert_allclose(actions["a"], STANDING["a"], atol=1e-7)
    np.testing.assert_allclose(actions["b"], STANDING["b"])
    policy.reset(context(standing={}))
    np.testing.assert_array_equal(policy.act(obs())["a"], DEFAULT_STANDING_LEVERS)
    assert tuple(DEFAULT_LEVERS.values()) == DEFAULT_STANDING_LEVERS
    chosen = StaticGovernance({"a": [0.0, 0.0, 1.0, 1.0, -1.0, 0.0]})
    chosen.reset(context())
    first = chosen.act(obs())
    first["a"][0] = 0.9  # handing out copies: mutating an action changes nothing later
    np.testing.assert_array_equal(chosen.act(obs())["a"], [0, 0, 1, 1, -1, 0])
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        StaticGovernance({"a": [2.0, 0, 0, 0, 0, 0]})


# -- volatility targeting -------------------------------------------------------------------
def test_vol_targeting_tightens_as_vol_rises_and_loosens_only_what_it_tightened() -> None:
    policy = VolatilityTargeting(VolTargetConfig(target_vol=1.0, loosen_rate=0.1))
    policy.reset(context())
    risk = [policy.act(obs(eth_vol=v))["a"][0] for v in (0.5, 0.5, 1.2, 1.5, 3.0, 0.4, 0.4)]
    assert risk[:2] == [0.0, 0.0]  # calm from the start: nothing to loosen
    assert 0.0 < risk[2] < risk[3] < risk[4] == 1.0  # more volatility, more tightening
    assert risk[5] == pytest.approx(-0.1) and risk[6] == pytest.approx(-0.1)  # slowly
    for _ in range(30):
        risk.append(policy.act(obs(eth_vol=0.2))["a"][0])
    assert sum(risk) == pytest.approx(0.0, abs=1e-6)  # back to the set parameters, no further
    assert min(np.cumsum(risk)) >= -1e-6
    # The highest asset volatility counts; the other levers stay standing.
    policy.reset(context())
    action = policy.act(obs(eth_vol=0.1, btc_vol=2.0))["a"]
    assert action[0] == 1.0
    np.testing.assert_allclose(action[1:], STANDING["a"][1:], atol=1e-7)


def test_vol_targeting_caps_outstanding_tightening() -> None:
    policy = VolatilityTargeting(VolTargetConfig(max_tightening=3.0))
    policy.reset(context())
    total = sum(policy.act(obs(eth_vol=5.0))["b"][0] for _ in range(10))
    assert total == pytest.approx(3.0)


# -- Bayesian -------------------------------------------------------------------------------
def textbook(mu0, kappa0, alpha0, beta0, x):
    """The closed-form NIG posterior (per column of ``x``)."""
    n, xbar = len(x), x.mean(axis=0)
    kappa = kappa0 + n
    return (
        (kappa0 * mu0 + n * xbar) / kappa,
        kappa,
        alpha0 + n / 2,
        beta0 + 0.5 * ((x - xbar) ** 2).sum(axis=0) + kappa0 * n * (xbar - mu0) ** 2 / (2 * kappa),
    )


def test_nig_batch_and_sequential_updates_equal_the_closed_form() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal([0.01, -0.02], [0.05, 0.2], size=(40, 2))
    prior = NormalInverseGamma.prior(2, mu=0.005, kappa=2.0, alpha=3.0, beta=0.01)
    batch = prior.updated(x)
    sequential = prior
    for row in x:
        sequential = sequential.updated(row)
    expected = textbook(0.005, 2.0, 3.0, 0.01, x)
    for got_batch, got_seq, want in zip(
        (batch.mu, batch.kappa, batch.alpha, batch.beta),
        (sequential.mu, sequential.kappa, sequential.alpha, sequential.beta),
        expected,
        strict=True,
    ):
        np.testing.assert_allclose(got_batch, want, rtol=1e-12)
        np.testing.assert_allclose(got_seq, want, rtol=1e-10)
    # Split batches compose too.
    split = prior.updated(x[:15]).updated(x[15:])
    np.testing.assert_allclose(split.beta, expected[3], rtol=1e-10)


def test_bayesian_policy_posterior_matches_closed_form_on_observed_returns() -> None:
    config = BayesConfig(prior_vol=0.8, prior_kappa=1.5, prior_alpha=4.0, memory_hours=math.inf)
    policy = BayesianRiskManager(config)
    policy.reset(context(dt_hours=0.25))
    rng = np.random.default_rng(0)
    returns = rng.normal(0.0, 0.01, size=(25, 2))
    policy.act(obs())  # the reset observation carries no return
    for eth, btc in returns:
        policy.act(obs(eth_ret=eth, btc_ret=btc))
    prior_var = (0.8 * np.sqrt(0.25 / 8760)) ** 2
    x = returns.astype(np.float32).astype(np.float64)  # the observation is float32
    want = textbook(0.0, 1.5, 4.0, prior_var * 3.0, x)
    for got, expected in zip(policy.posterior(), want, strict=True):
        np.testing.assert_allclose(got, np.broadcast_to(expected, (2,)), rtol=1e-9)


def test_bayesian_derisks_when_unsure_or_when_the_tail_grows() -> None:
    policy = BayesianRiskManager()
    policy.reset(context())
    first = policy.act(obs())["a"][0]
    assert first > 0.0  # no data yet: the posterior is wide, so tighten
    unsure = policy.stress()
    calm = np.random.default_rng(1).normal(0.0, 0.4 * np.sqrt(1 / 8760), size=(200, 2))
    risk = [policy.act(obs(eth_ret=a, btc_ret=b))["a"][0] for a, b in calm]
    assert policy.stress() < 1.0 < unsure
    assert min(risk) < 0.0  # sure of a calm market: it undoes its early tightening
    assert policy.budget.outstanding["a"] == pytest.approx(0.0, abs=1e-6)
    # The uncertainty margin is what widens the early stress.
    no_margin = BayesianRiskManager(BayesConfig(uncertainty_weight=0.0))
    no_margin.reset(context())
    assert no_margin.stress() < unsure
    # A crash return fattens the predictive tail: tighten again.
    calm_stress = policy.stress()
    assert policy.act(obs(eth_ret=-0.2))["a"][0] > 0.0
    assert policy.stress() > calm_stress


def test_discounting_weighs_each_observation_by_its_age() -> None:
    # keep**age weights, in closed form: kappa = kappa0 + sum w, kappa mu = kappa0 mu0 +
    # sum w x, beta + kappa mu^2 / 2 = beta0 + kappa0 mu0^2 / 2 + sum w x^2 / 2, alpha =
    # alpha0 + sum w / 2.
    rng = np.random.default_rng(5)
    x = rng.normal(0.01, 0.1, size=(30, 1))
    prior = NormalInverseGamma.prior(1, mu=0.02, kappa=2.0, alpha=3.0, beta=0.05)
    keep = 0.9
    state = prior
    for row in x:
        state = state.discounted(prior, keep).updated(row)
    w = keep ** np.arange(len(x))[::-1, None]
    kappa = 2.0 + w.sum(0)
    mu = (2.0 * 0.02 + (w * x).sum(0)) / kappa
    beta = 0.05 + 0.5 * 2.0 * 0.02**2 + 0.5 * (w * x**2).sum(0) - 0.5 * kappa * mu**2
    np.testing.assert_allclose(state.kappa, kappa, rtol=1e-12)
    np.testing.assert_allclose(state.mu, mu, rtol=1e-12)
    np.testing.assert_allclose(state.alpha, 3.0 + 0.5 * w.sum(0), rtol=1e-12)
    np.testing.assert_allclose(state.beta, beta, rtol=1e-10)
    assert state.discounted(prior, 1.0) is state  # keep = 1 never forgets


@pytest.mark.parametrize("memory_hours", [math.inf, 48.0])
def test_the_forgetting_posterior_tightens_after_a_regime_change(memory_hours: float) -> None:
    # Issue 17: after 2,000 calm hours, 48 hours at 5x volatility caused no tightening -
    # the posterior never forgot the calm. With a 48-hour memory it tightens within hours.
    policy = BayesianRiskManager(BayesConfig(memory_hours=memory_hours))
    policy.reset(context())
    policy.act(obs())
    rng = np.random.default_rng(0)
    sd = 0.5 * np.sqrt(1 / 8760)
    for a, b in rng.normal(0.0, sd, size=(2_000, 2)):
        policy.act(obs(eth_ret=a, btc_ret=b))
    calm_stress = policy.stress()
    risk = [
        policy.act(obs(eth_ret=a, btc_ret=b))["a"][0] for a, b in rng.normal(0, 5 * sd, (48, 2))
    ]
    if math.isinf(memory_hours):
        assert max(risk) <= 0.0  # the old behaviour, kept as the control
    else:
        assert calm_stress < 1.0
        first = next(k for k, r in enumerate(risk) if r > 0.0)
        assert first < 12 and max(risk) == 1.0


# -- registry and scenario runs -------------------------------------------------------------
def test_builtin_policy_names_and_unknown_spec_errors(small: Small) -> None:
    assert {"static", "vol_target", "bayesian", "forecaster"} <= set(policy_names())
    assert isinstance(make_policy("vol_target:0.8"), VolatilityTargeting)
    assert make_policy("vol_target:0.8").config.target_vol == 0.8
    with pytest.raises(ValueError, match="annualised target"):
        make_policy("vol_target:fast")
    with pytest.raises(ValueError, match="needs a checkpoint"):
        make_policy("forecaster")
    scenario = small("flash_crash", protocols__1__policy="optimal")
    with pytest.raises(ScenarioError) as err:
        run(scenario, steps=2)
    message = str(err.value)
    assert "protocols[1].policy = 'optimal'" in message and "'compound'" in message
    for name in ("static", "vol_target", "bayesian", "forecaster"):
        assert name in message


def test_agents_sharing_a_spec_share_one_policy_object(small: Small) -> None:
    scenario = small("baseline", protocols__0__policy="bayesian", protocols__2__policy="bayesian")
    policies = resolve_policies(scenario)
    assert policies["aave"] is policies["dydx"]
    assert isinstance(policies["compound"], StaticGovernance)


def test_static_through_the_env_reproduces_the_model_path(small: Small) -> None:
    scenario = small("flash_crash")
    fast = run(scenario, seed=5, steps=30)
    via_env = run_with_policies(scenario, seed=5, steps=30)
    assert_frame_equal(fast.timeseries, via_env.timeseries)
    assert fast.summary == via_env.summary


def test_policies_drive_a_run_end_to_end_with_money_conserved(small: Small) -> None:
    scenario = small(
        "flash_crash",
        protocols__0__policy="vol_target",
        protocols__1__policy="bayesian",
        protocols__2__policy="vol_target:0.5",
    )
    totals = []

    def check(env, observations) -> None:
        totals.append((env.model.total_cash(), env.model.total_units()))

    result = run_with_policies(scenario, seed=2, steps=40, on_step=check)
    cash, units = totals[0]
    for later_cash, later_units in totals[1:]:
        assert later_cash == pytest.approx(cash, abs=1e-9 * abs(cash) + 1e-3)
        for asset, amount in units.items():
            assert later_units[asset] == pytest.approx(amount, rel=1e-9, abs=1e-6)
    assert len(totals) >= 2
    static = run(small("flash_crash"), seed=2, steps=40)
    assert list(result.timeseries.columns) == list(static.timeseries.columns)
    assert len(result.timeseries) == len(static.timeseries) == 41
    assert set(result.summary) == set(static.summary)
    levers = result.timeseries[[f"{p}.lever.risk" for p in ("aave", "compound", "dydx")]]
    assert (levers.abs().sum() > 0).all()  # every policy moved its protocol's risk lever
    assert (static.timeseries["aave.lever.risk"] == 0).all()
    # run() sends non-static scenarios through the same path.
    assert_frame_equal(run(scenario, seed=2, steps=40).timeseries, result.timeseries)
