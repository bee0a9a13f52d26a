"""VectorLiquidityEnv: world b equals the scalar env, autoreset, seeds, masks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.core.levers import LEVER_NAMES
from liqnet.market.env import LiquidityEnv
from liqnet.market.vector_env import ParallelEnvBatch, VectorLiquidityEnv
from liqnet.market.wrappers import SystemRewardWrapper
from liqnet.scenarios import Scenario, builtin_names, load, make_vec_env
from tests.helpers.worlds import Small

TOLERANCE = 1e-9


def actions_for(rng: np.random.Generator, num_envs: int, n_agents: int) -> np.ndarray:
    """Uniform levers in [-1, 1] for every world and agent."""
    return rng.uniform(-1.0, 1.0, (num_envs, n_agents, len(LEVER_NAMES)))


def step_scalar(env: LiquidityEnv, row: np.ndarray) -> tuple:
    """Step the scalar env with the rows of its live agents."""
    live = {a: row[i] for i, a in enumerate(env.possible_agents) if a in env.agents}
    return env.step(live)


def stacked(values: dict[str, np.ndarray], agents: list[str], dim: int) -> np.ndarray:
    """Per-agent arrays of a dict as one (n_agents, dim) matrix, zeros where missing."""
    return np.stack([values.get(a, np.zeros(dim)) for a in agents])


@pytest.mark.parametrize("name", builtin_names())
def test_world_b_equals_the_scalar_env_over_a_full_episode(name: str) -> None:
    """Every built-in, full size: observations, rewards, ends, infos, the time series,
    cascades and defaults of world b match a scalar env seeded s + b."""
    scenario, seed, num_envs = load(name), 41, 2
    vec = VectorLiquidityEnv(scenario, num_envs, seed=seed, autoreset=False)
    scalars = [LiquidityEnv(scenario) for _ in range(num_envs)]
    obs, infos = vec.reset()
    agents, dim = vec.possible_agents, vec.batch.obs_dim
    for b, env in enumerate(scalars):
        first, _ = env.reset(seed=seed + b)
        np.testing.assert_array_equal(obs[b], stacked(first, agents, dim))
    rng = np.random.default_rng(5)
    steps = 0
    while vec.alive.any():
        actions = actions_for(rng, num_envs, len(agents))
        obs, rewards, terminations, truncations, infos = vec.step(actions)
        steps += 1
        for b, env in enumerate(scalars):
            if not infos["acting"][b].any():
                continue
            o, r, te, tr, info = step_scalar(env, actions[b])
            for i, agent in enumerate(agents):
                if agent not in r:
                    assert rewards[b, i] == 0.0 and not terminations[b, i]
                    continue
                np.testing.assert_allclose(obs[b, i], o[agent], rtol=0, atol=TOLERANCE)
                assert abs(rewards[b, i] - r[agent]) <= TOLERANCE
                assert (terminations[b, i], truncations[b, i]) == (te[agent], tr[agent])
                assert infos["equity"][b, i] == pytest.approx(info[agent]["equity"], abs=1e-6)
            assert list(vec.alive[b]) == [a in env.agents for a in agents]
            np.testing.assert_allclose(vec.state()[b], env.state(), rtol=0, atol=TOLERANCE)
    assert steps == vec.horizon
    for b, env in enumerate(scalars):
        model, twin = vec.models[b], env.model
        assert model is not None and twin is not None
        np.testing.assert_allclose(
            model.timeseries().to_numpy(), twin.timeseries().to_numpy(), rtol=0, atol=TOLERANCE
        )
        assert model.defaults == twin.defaults
        assert [len(rounds) for rounds in model.cascade_history] == [
            len(rounds) for rounds in twin.cascade_history
        ]


def test_worlds_of_one_batch_differ_and_each_conserves_money(small: Small) -> None:
    vec = make_vec_env(small(positions=200), num_envs=3, seed=0)
    vec.reset()
    rng = np.random.default_rng(0)
    cash = [m.total_cash() for m in vec.models if m is not None]
    units = [m.total_units() for m in vec.models if m is not None]
    for _ in range(30):
        vec.step(actions_for(rng, 3, len(vec.possible_agents)))
        for b, model in enumerate(vec.models):
            assert model is not None
            assert model.total_cash() == pytest.approx(cash[b], abs=1e-3)  # of ~1e9 USD
            for asset, total in model.total_units().items():
                assert total == pytest.approx(units[b][asset], abs=1e-6)
    prices = [m.reference_prices["ETH"] for m in vec.models if m is not None]
    assert len(set(prices)) == 3  # own random streams: seeds 0, 1, 2


def _reset_twins(
    scenario: Scenario, seed: int, horizon: int
) -> tuple[VectorLiquidityEnv, list[LiquidityEnv]]:
    """A 2-world vector env and two scalar envs, reset alike (world b seeded seed + b)."""
    vec = VectorLiquidityEnv(scenario, 2, seed=seed, horizon=horizon)
    scalar = [LiquidityEnv(scenario, horizon=horizon) for _ in range(2)]
    vec.reset()
    for b, env in enumerate(scalar):
        env.reset(seed=seed + b)
    return vec, scalar


def test_autoreset_same_step_keeps_the_final_observation_and_seeds_like_the_scalar_env(
    small: Small,
) -> None:
    vec, scalar = _reset_twins(small(positions=200), seed=7, horizon=5)
    rng = np.random.default_rng(1)
    agents, dim = vec.possible_agents, vec.batch.obs_dim
    for _ in range(3):  # episodes
        for t in range(5):
            actions = actions_for(rng, 2, len(agents))
            obs, _, _, truncations, infos = vec.step(actions)
            last = [step_scalar(env, actions[b]) for b, env in enumerate(scalar)]
            if t < 4:
                assert not infos["_final_obs"].any()
                continue
            assert infos["_final_obs"].all() and truncations.all()
            for b, env in enumerate(scalar):
                np.testing.assert_array_equal(
                    infos["final_obs"][b], stacked(last[b][0], agents, dim)
                )
                first, _ = env.reset()  # the scalar env's next seed, drawn as the vector's
                np.testing.assert_array_equal(obs[b], stacked(first, agents, dim))
                assert infos["episode_seed"][b] == env.episode_seed
            assert infos["alive"].all()
    assert vec.metadata["autoreset_mode"].value == "SameStep"


def test_episodes_after_autoresets_equal_the_scalar_env_on_reused_stack_rows(
    small: Small,
) -> None:
    """A new episode's books take the ended world's rows of the batch's shared stacks:
    the stacks do not grow, every observation and reward still equals the scalar env's,
    and the ended world stays readable as it was."""
    vec, scalar = _reset_twins(small(positions=200), seed=3, horizon=4)
    stacks = vec.batch.position_stacks.stacks
    rows = {kind: len(stack.rows) for kind, stack in stacks.items()}
    assert rows and all(n > 0 for n in rows.values())
    rng = np.random.default_rng(2)
    agents, dim = vec.possible_agents, vec.batch.obs_dim
    for _ in range(3):  # episodes
        for t in range(4):
            actions = actions_for(rng, 2, len(agents))
            ended = list(vec.models)
            obs, rewards, _, _, infos = vec.step(actions)
            for b, env in enumerate(scalar):
                o, r, _, _, _ = step_scalar(env, actions[b])
                seen = infos["final_obs"][b] if t == 3 else obs[b]
                np.testing.assert_allclose(seen, stacked(o, agents, dim), rtol=0, atol=TOLERANCE)
                assert rewards[b] == pytest.approx([r[a] for a in agents], abs=TOLERANCE)
                if t == 3:
                    old, twin = ended[b], env.model
                    assert old is not None and twin is not None and old is not vec.models[b]
                    np.testing.assert_array_equal(
                        old.timeseries().to_numpy(), twin.timeseries().to_numpy()
                    )
                    assert [p.equity() for p in old.protocols.values()] == [
                        p.equity() for p in twin.protocols.values()
                    ]
                    first, _ = env.reset()
                    np.testing.assert_array_equal(obs[b], stacked(first, agents, dim))
    assert {kind: len(stack.rows) for kind, stack in stacks.items()} == rows
    with pytest.raises(RuntimeError, match="released"):
        old.step()  # an ended world is read, not stepped: its rows are another's now


def test_without_autoreset_ended_worlds_are_masked_until_reset_world(small: Small) -> None:
    vec = VectorLiquidityEnv(small(positions=200), 2, seed=0, horizon=3, autoreset=False)
    vec.reset()
    rng = np.random.default_rng(2)
    for _ in range(3):
        vec.step(actions_for(rng, 2, len(vec.possible_agents)))
    assert not vec.alive.any()
    with pytest.raises(RuntimeError, match="no episode in progress"):
        vec.step(actions_for(rng, 2, len(vec.possible_agents)))
    vec.reset_world(1, 99)
    _, rewards, _, _, infos = vec.step(actions_for(rng, 2, len(vec.possible_agents)))
    assert vec.models[0] is not None and vec.models[0].step_index == 3  # not stepped
    assert vec.models[1] is not None and vec.models[1].step_index == 1
    assert not infos["acting"][0].any() and (rewards[0] == 0.0).all()


def test_same_seed_same_batch_and_explicit_seed_lists(small: Small) -> None:
    scenario = small(positions=200)

    def run(seed: object) -> list[np.ndarray]:
        vec = VectorLiquidityEnv(scenario, 3)
        rng = np.random.default_rng(3)
        out = [vec.reset(seed=seed)[0]]  # type: ignore[arg-type]
        for _ in range(10):
            out += vec.step(actions_for(rng, 3, len(vec.possible_agents)))[:2]
        return out

    for a, b in zip(run(10), run([10, 11, 12]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(run(10)[-1], run([10, 11, 13])[-1])


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, r"seed = -1"),
        ("3", r"seed = '3'"),
        ([1, 2], r"expected 3 seeds"),
        (2**63 - 2, "2\\*\\*63"),
    ],
)
def test_bad_seeds_are_refused(small: Small, seed: object, message: str) -> None:
    vec = VectorLiquidityEnv(small(positions=200), 3)
    with pytest.raises(ValueError, match=message):
        vec.reset(seed=seed)  # type: ignore[arg-type]


def test_bad_actions_name_the_world_and_agent_and_apply_nothing(small: Small) -> None:
    vec = VectorLiquidityEnv(small(positions=200), 2, seed=0)
    vec.reset()
    n = len(vec.possible_agents)
    with pytest.raises(ValueError, match=r"expected shape \(2, 3, 6\), got \(2, 3\)"):
        vec.step(np.zeros((2, n)))
    with pytest.raises(ValueError, match=r"expected \(2, 3, 6\) levers"):
        vec.step("up")  # type: ignore[arg-type]
    actions = np.zeros((2, n, len(LEVER_NAMES)))
    actions[1, 2, 0] = np.nan
    agent = vec.possible_agents[2]
    with pytest.raises(ValueError, match=rf"actions\[1, 2\] \(world 1, agent '{agent}'\)"):
        vec.step(actions)
    assert all(m is not None and m.step_index == 0 for m in vec.models)
    with pytest.raises(ValueError, match="num_envs = 0"):
        VectorLiquidityEnv(small(positions=200), 0)


def test_overshooting_actions_are_clipped_like_the_scalar_env(small: Small) -> None:
    scenario = small(positions=200)
    vec, env = VectorLiquidityEnv(scenario, 1, seed=4), LiquidityEnv(scenario)
    vec.reset()
    env.reset(seed=4)
    actions = np.full((1, 3, len(LEVER_NAMES)), 5.0)
    _, rewards, _, _, _ = vec.step(actions)
    _, r, _, _, _ = step_scalar(env, actions[0])
    assert rewards[0].tolist() == [r[a] for a in env.possible_agents]


def test_parallel_env_batch_steps_wrapped_envs_like_their_own_loop(small: Small) -> None:
    scenario = small(positions=200)
    batch = ParallelEnvBatch([SystemRewardWrapper(LiquidityEnv(scenario)) for _ in range(2)])
    own = [SystemRewardWrapper(LiquidityEnv(scenario)) for _ in range(2)]
    for b in range(2):
        batch.reset_world(b, 20 + b)
        own[b].reset(seed=20 + b)
    rng = np.random.default_rng(6)
    for _ in range(8):
        actions = actions_for(rng, 2, 3)
        _, rewards, _, _, _ = batch.step(actions)
        for b, env in enumerate(own):
            _, r, _, _, _ = env.step({a: actions[b, i] for i, a in enumerate(env.possible_agents)})
            assert rewards[b].tolist() == [r[a] for a in env.possible_agents]
    assert batch.state().shape == (2, 3 * batch.obs.shape[2])


def test_parallel_env_batch_refuses_envs_with_different_agents(small: Small) -> None:
    renamed = small(positions=200, protocols__0__id="other_pool")
    with pytest.raises(ValueError, match="same agents"):
        ParallelEnvBatch([LiquidityEnv(small(positions=200)), LiquidityEnv(renamed)])
