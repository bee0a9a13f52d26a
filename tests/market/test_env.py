"""LiquidityEnv: PettingZoo API compliance, determinism, spaces, rewards, defaults, render."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from liqnet.market.env import LiquidityEnv
from liqnet.market.treasury import MARKET_CREDIT_FEATURES, OWN_CREDIT_FEATURES, horizon_steps
from liqnet.protocols.base import FEATURE_NAMES, LEVER_NAMES
from liqnet.scenarios import ScenarioError, builtin_names, load
from liqnet.scenarios.envs import make_env
from tests.helpers.worlds import Small, drain

POSITIONS = 200


@pytest.fixture
def env_for(small: Small) -> Callable[..., LiquidityEnv]:
    """Factory ``env_for(name="baseline", horizon=40, **kwargs)``: a small world (200
    positions per protocol) as an environment."""

    def make(name: str = "baseline", horizon: int | None = 40, **kwargs: object) -> LiquidityEnv:
        return LiquidityEnv(small(name, positions=POSITIONS), horizon=horizon, **kwargs)

    return make


def random_actions(env: LiquidityEnv, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform levers in [-1, 1] for every live agent, from ``rng``."""
    return {a: rng.uniform(-1.0, 1.0, len(LEVER_NAMES)).astype(np.float32) for a in env.agents}


def play(env: LiquidityEnv, seed: int, action_seed: int = 0) -> list[tuple]:
    """A whole episode under seeded random actions: every step's outputs and state."""
    rng = np.random.default_rng(action_seed)
    obs, infos = env.reset(seed=seed)
    trace = [(obs, infos, env.state())]
    while env.agents:
        out = env.step(random_actions(env, rng))
        trace.append((*out, env.state()))
    return trace


def assert_same(a: object, b: object) -> None:
    """Exact equality of nested dicts / tuples / lists of arrays and scalars."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("name", builtin_names())
def test_parallel_api_and_seed_tests_pass(name: str, env_for: Callable[..., LiquidityEnv]) -> None:
    # 40 cycles over a 30-step horizon: the truncation path is exercised too.
    parallel_api_test(env_for(name, horizon=30), num_cycles=40)
    parallel_seed_test(lambda: env_for(name, horizon=30), num_cycles=40)


def test_same_seed_same_episode_different_seed_differs(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    first = play(env_for("flash_crash", horizon=None), seed=3)
    second = play(env_for("flash_crash", horizon=None), seed=3)
    assert len(first) == 97  # reset + the scenario's 96 steps
    assert_same(first, second)
    other = play(env_for("flash_crash", horizon=None), seed=4)
    last_obs, other_obs = first[-1][0], other[-1][0]
    assert any(not np.array_equal(last_obs[a], other_obs[a]) for a in last_obs)


def test_reset_without_seed_is_reproducible_and_varies_between_episodes(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=5)
    first, _ = env.reset()
    assert env.episode_seed == env.scenario.seed
    env.reset()
    second_seed = env.episode_seed
    assert second_seed != env.scenario.seed
    again = env_for(horizon=5)
    again.reset()
    again.reset()
    assert again.episode_seed == second_seed
    np.testing.assert_array_equal(env.reset(seed=env.scenario.seed)[0]["aave"], first["aave"])


def test_observations_are_finite_float32_inside_their_spaces(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for("bank_run", horizon=None)
    dims = set()
    for step in play(env, seed=1):
        observations, state = step[0], step[-1]
        for agent, obs in observations.items():
            assert obs.dtype == np.float32
            assert np.isfinite(obs).all()
            assert env.observation_space(agent).contains(obs)
            dims.add(obs.shape)
        assert state.shape == env.state_space.shape
        assert state.dtype == np.float32
    assert dims == {(len(env.observation_names),)}
    assert env.state_space.shape[0] == len(env.possible_agents) * len(env.observation_names)


def test_observation_layout_type_one_hot_and_market_block(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=3)
    obs, _ = env.reset(seed=0)
    names = env.observation_names
    assert names[: len(FEATURE_NAMES)] == FEATURE_NAMES
    for spec in env.scenario.protocols:
        one_hot = {n: obs[spec.id][names.index(n)] for n in names if n.startswith("type.")}
        assert one_hot == {f"type.{t}": float(t == spec.type) for t in env.protocol_types}
    env.step(random_actions(env, np.random.default_rng(0)))
    model = env.model
    obs = env.step(random_actions(env, np.random.default_rng(1)))[0]["aave"]
    eth = model.reference_prices["ETH"]
    assert obs[names.index("ETH.oracle_deviation")] == pytest.approx(
        eth / model.oracle_prices["ETH"] - 1.0, rel=1e-5, abs=1e-7
    )
    assert obs[names.index("ETH.pool_deviation")] == pytest.approx(
        model.pools["ETH"].price / eth - 1.0, rel=1e-5, abs=1e-7
    )
    assert obs[names.index("ETH.realised_vol")] > 0.0
    assert obs[names.index("gas_multiplier")] == pytest.approx(model.gas_multiplier)


def test_credit_block_shows_the_book_own_need_and_borrowers_health(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for("bank_run", horizon=None)
    env.reset(seed=0)
    names, model = env.observation_names, env.model
    column = {n: names.index(n) for n in (*OWN_CREDIT_FEATURES, *MARKET_CREDIT_FEATURES)}
    spec = model.scenario.negotiation
    scale = {a: model.protocols[a].total_assets() for a in env.agents}
    traded = False
    while env.agents and not traded:
        levers = {a: np.zeros(len(LEVER_NAMES), dtype=np.float32) for a in env.agents}
        observations = env.step(levers)[0]
        book = model.credit_book
        traded = book.volume_usd > 0
    assert traded, "the treasury rule lends to the pool that is run on"
    obs = observations["aave"]
    assert obs[column["credit.last_rate"]] == pytest.approx(book.last_rate, rel=1e-5)
    total = sum(scale.values())
    assert obs[column["credit.volume"]] == pytest.approx(book.volume_usd / total, rel=1e-5)
    aave = model.protocols["aave"]
    maturing = model.ledger.maturing(model.step_index + horizon_steps(model))[0]
    need = aave.projected_need(spec.horizon_hours / 24.0, float(maturing))
    assert obs[column["credit.projected_need"]] == pytest.approx(need / scale["aave"], rel=1e-4)
    # A lender sees the health of its one borrower, aave (equity ratio over the limit's).
    owed_by_aave = model.ledger.liabilities()[0]
    lender = next(
        a for j, a in enumerate(env.possible_agents) if owed_by_aave[j] > 0 and a in observations
    )
    health = observations[lender][column["credit.counterparty_health"]]
    equity_ratio = aave.equity() / aave.total_assets()
    expected = min(1.0, max(0.0, equity_ratio / spec.limits.healthy_equity_ratio))
    assert health == pytest.approx(expected, rel=1e-4)


def test_market_block_tracks_returns_and_rolling_realised_volatility(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for("vol_regime", horizon=None, vol_window=24)
    env.reset(seed=5)
    names, rng = env.observation_names, np.random.default_rng(0)
    prices = [env.model.reference_prices["BTC"]]
    for _ in range(40):
        obs = env.step(random_actions(env, rng))[0]["aave"]
        prices.append(env.model.reference_prices["BTC"])
    returns = np.diff(np.log(prices))
    steps_per_year = 8760.0 / env.scenario.dt_hours
    realised = np.sqrt(np.mean(returns[-24:] ** 2) * steps_per_year)
    assert obs[names.index("BTC.log_return")] == pytest.approx(returns[-1], rel=1e-5)
    assert obs[names.index("BTC.realised_vol")] == pytest.approx(realised, rel=1e-5)
    stressed = env.model.price_process.regime != 0  # vol_regime: regime 1 is x4 volatility
    assert obs[names.index("stressed_regime")] == float(stressed)


def test_reward_is_scaled_equity_change_minus_shortfall_penalty(small: Small) -> None:
    # vol_regime, seed 0: the perp's LPs ask for more than its free cash from step ~130.
    # Negotiation is off, else the lending pools' credit would meet the shortfall.
    scenario = small("vol_regime", positions=POSITIONS, negotiation__enabled=False)
    env = LiquidityEnv(scenario, horizon=None, shortfall_penalty=0.5, insolvency_penalty=0.0)
    _, infos = env.reset(seed=0)
    scale = {a: env.model.protocols[a].total_assets() for a in env.agents}
    equity = {a: infos[a]["equity"] for a in env.agents}
    rng, saw_shortfall = np.random.default_rng(0), False
    while env.agents:
        _, rewards, _, _, infos = env.step(random_actions(env, rng))
        for agent, reward in rewards.items():
            need = infos[agent]["liquidity_need"]
            saw_shortfall |= need > 0
            expected = (infos[agent]["equity"] - equity[agent] - 0.5 * need) / scale[agent]
            assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12)
            equity[agent] = infos[agent]["equity"]
    assert saw_shortfall  # the LP run made the penalty term matter


def test_default_terminates_only_that_agent_with_penalty(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=10)
    env.reset(seed=0)
    pool, model = env.model.protocols["aave"], env.model
    drained = pool.equity() + 1e6  # an exploit drains more than the pool's equity
    model.world.transfer(pool, "depositors", usd=drained)
    rng = np.random.default_rng(0)
    _, rewards, terminations, truncations, _ = env.step(random_actions(env, rng))
    assert terminations == {"aave": True, "compound": False, "dydx": False}
    assert not any(truncations.values())
    assert env.agents == ["compound", "dydx"]
    assert rewards["aave"] < -1.0  # lost more than its equity, plus the insolvency penalty
    state = env.state().reshape(len(env.possible_agents), -1)
    assert not state[0].any() and state[1].any()
    with pytest.raises(ValueError, match=r"'aave'.*\(6,\).*\[-1, 1\].*not a live agent"):
        env.step({"aave": np.zeros(6)})
    observations, *_ = env.step(random_actions(env, rng))
    assert set(observations) == {"compound", "dydx"}


def test_horizon_truncates_everyone_then_step_needs_reset(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(2):
        assert not any(env.step(random_actions(env, rng))[3].values())
    *_, terminations, truncations, _ = env.step(random_actions(env, rng))
    assert all(truncations.values()) and not any(terminations.values())
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.zeros(5), r"'aave'.*shape \(6,\).*\[-1, 1\].*got shape \(5,\)"),
        (np.zeros((1, 6)), r"'aave'.*got shape \(1, 6\)"),
        (np.array([0, 0, np.nan, 0, 0, 0]), r"'aave'.*non-finite"),
        (np.array([0, 0, np.inf, 0, 0, 0]), r"'aave'.*non-finite"),
        ("risk up", r"'aave'.*expected a finite array"),
    ],
)
def test_malformed_action_raises_and_applies_nothing(
    action: object, match: str, env_for: Callable[..., LiquidityEnv]
) -> None:
    env = env_for(horizon=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step({"compound": np.ones(6), "aave": action})
    assert env.model.step_index == 0 and env.model.pending_levers == {}


def test_unknown_agent_raises(env_for: Callable[..., LiquidityEnv]) -> None:
    env = env_for(horizon=5)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'maker'.*\(6,\).*not a live agent"):
        env.step({"maker": np.zeros(6)})


def test_out_of_range_actions_are_clipped_before_the_world_sees_them(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=5)
    env.reset(seed=0)
    levers = np.array([3.0, -7.0, 1.5, -1.5, 0.5, 2.0])
    env.step(dict.fromkeys(env.agents, levers))
    # The levers the world applied in that step.
    used = env.model.last_levers
    assert set(used) == set(env.possible_agents)
    for vector in used.values():
        np.testing.assert_array_equal(vector, [1.0, -1.0, 1.0, -1.0, 0.5, 1.0])
    assert env.model.protocols["aave"].slope_multiplier < 1.0  # the price lever acted


def test_default_on_the_last_step_is_a_termination_not_a_truncation(
    env_for: Callable[..., LiquidityEnv],
) -> None:
    env = env_for(horizon=1)
    env.reset(seed=0)
    pool = env.model.protocols["compound"]
    drained = pool.equity() + 1e6
    env.model.world.transfer(pool, "depositors", usd=drained)
    *_, terminations, truncations, _ = env.step(random_actions(env, np.random.default_rng(0)))
    assert terminations == {"aave": False, "compound": True, "dydx": False}
    assert truncations == {"aave": True, "compound": False, "dydx": True}
    assert env.agents == []


def test_spaces_are_cached_objects(env_for: Callable[..., LiquidityEnv]) -> None:
    env = env_for()
    for agent in env.possible_agents:
        assert env.action_space(agent) is env.action_space(agent)
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent).shape == (len(LEVER_NAMES),)
    assert env.action_space("aave") is not env.action_space("dydx")  # seeded separately


def test_render_ansi_and_rgb_array(env_for: Callable[..., LiquidityEnv]) -> None:
    text_env = env_for(render_mode="ansi", horizon=3)
    text_env.reset(seed=0)
    text_env.step(random_actions(text_env, np.random.default_rng(0)))
    text = text_env.render()
    assert isinstance(text, str)
    assert all(agent in text for agent in text_env.possible_agents)
    assert "step 1/3" in text
    image_env = env_for(render_mode="rgb_array", horizon=3)
    image_env.reset(seed=0)
    image_env.step(random_actions(image_env, np.random.default_rng(0)))
    image = image_env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 0  # something was drawn
    image_env.close()
    assert image_env.agents == []


def test_constructor_rejects_bad_arguments(small: Small) -> None:
    scenario = small(positions=POSITIONS)
    with pytest.raises(ValueError, match="render_mode = 'human'"):
        LiquidityEnv(scenario, render_mode="human")
    for horizon in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"horizon = {horizon}"):
            LiquidityEnv(scenario, horizon=horizon)
    with pytest.raises(ValueError, match="vol_window = 0"):
        LiquidityEnv(scenario, vol_window=0)
    with pytest.raises(ValueError, match="insolvency_penalty = -1"):
        LiquidityEnv(scenario, insolvency_penalty=-1)


def test_make_env_applies_dunder_and_dict_overrides() -> None:
    env = make_env(
        "flash_crash",
        horizon=7,
        overrides={"protocols.aave.params.positions": POSITIONS},
        market__permanent_impact=0.8,
        protocols__1__params__positions=POSITIONS,
    )
    assert env.horizon == 7
    assert env.scenario.market.permanent_impact == 0.8
    assert [p.params["positions"] for p in env.scenario.protocols] == [200, 200, 10_000]
    scenario = load("baseline")
    assert make_env(scenario).scenario is scenario
    assert make_env(scenario, steps=12).scenario.steps == 12
    with pytest.raises(ScenarioError, match="permanent_impact"):
        make_env("flash_crash", market__permanent_impact=3.0)


class _ExploitedEnv(LiquidityEnv):
    """An env whose aave pool is drained at every reset: it defaults in the first step."""

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        out = super().reset(seed=seed, options=options)
        assert self.model is not None
        drain(self.model.protocols["aave"])
        return out


def test_a_defaulted_agent_terminates_and_its_protocol_winds_down(small: Small) -> None:
    env = _ExploitedEnv(small(positions=POSITIONS), horizon=12)
    parallel_api_test(env, num_cycles=12)
    env.reset(seed=0)
    pool = env.model.protocols["aave"]
    rng = np.random.default_rng(0)
    *_, terminations, _, _ = env.step(random_actions(env, rng))
    assert terminations["aave"] and "aave" not in env.agents
    deposits = pool.deposits
    while env.agents:
        observations, *_ = env.step(random_actions(env, rng))
        assert "aave" not in observations
    # The agent is gone but its pool is not frozen: depositors took out what was left.
    assert pool.deposits < deposits and pool.haircut_usd > 0.0
