"""Tests of the probe set and of policy similarity measured on it."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.analysis import convergence_index, policy_similarity, response_similarity
from liqnet.scenarios.probes import probe_states
from tests.helpers.worlds import Small

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def probes(small: Small) -> np.ndarray:
    return probe_states([small("flash_crash"), small("credit_crunch")], n=256, seed=3, steps=24)


def _actor(seed: int, obs_dim: int) -> torch.nn.Module:
    from liqnet.agents.mappo import ActorCritic, MAPPOConfig

    torch.manual_seed(seed)
    return ActorCritic(obs_dim, 3, 6, MAPPOConfig()).actors[0]


def test_probe_states_are_pooled_sampled_and_deterministic(small: Small, probes) -> None:
    assert probes.shape[0] == 256 and probes.dtype == np.float32
    assert np.isfinite(probes).all()
    # Crash states differ from one another: the probe set is not one repeated state.
    assert np.unique(probes.round(6), axis=0).shape[0] > 200
    again = probe_states([small("flash_crash"), small("credit_crunch")], n=256, seed=3, steps=24)
    np.testing.assert_array_equal(probes, again)
    other = probe_states([small("flash_crash")], n=8, seed=4, worlds=1, steps=3)
    assert other.shape == (8, probes.shape[1])
    # Fewer states than asked: all of them (1 world, 2 steps + the initial, 3 agents).
    assert probe_states([small("flash_crash")], n=100, worlds=1, steps=2).shape[0] == 9
    with pytest.raises(ValueError, match="n must be a positive integer"):
        probe_states([small()], n=0)
    with pytest.raises(ValueError, match="at least one scenario"):
        probe_states([])


def test_cka_of_a_policy_with_itself_is_one_and_with_another_seed_below(probes) -> None:
    # Standardised per feature, as MAPPO's running normaliser feeds its actor.
    spread = probes.std(axis=0)
    probes = (probes - probes.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    dim = probes.shape[1]
    a, twin, other = _actor(0, dim), _actor(0, dim), _actor(1, dim)
    policies = {"a": a, "twin": twin, "other": other}
    hidden = policy_similarity(policies, probes, layer="1")  # first hidden activation
    assert hidden.matrix.loc["a", "twin"] == pytest.approx(1.0)
    # Below 1, but barely: a random first layer nearly preserves the probes' own linear
    # geometry (linear CKA is invariant to rotation and scale), so untrained networks look
    # alike here; their behaviour does not (next lines).
    assert hidden.matrix.loc["a", "other"] < 0.999
    behaviour = response_similarity(policies, probes)
    assert behaviour.correlation.loc["a", "twin"] == pytest.approx(1.0)
    assert behaviour.correlation.loc["a", "other"] < 0.9
    assert 0.0 <= convergence_index(behaviour) <= 1.0
