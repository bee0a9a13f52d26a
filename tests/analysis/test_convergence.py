"""Tests of action synchrony, policy similarity (CKA) and the convergence index."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from liqnet.analysis import (
    action_synchrony,
    convergence_components,
    convergence_index,
    lever_actions,
    linear_cka,
    policy_similarity,
    response_similarity,
    structural_similarity,
)
from liqnet.analysis.similarity import ModelCard
from liqnet.scenarios import run
from tests.helpers.worlds import Small

RNG = np.random.default_rng(11)


def test_cka_identical_orthogonal_and_scaled() -> None:
    x = RNG.normal(size=(60, 8))
    assert linear_cka(x, x) == pytest.approx(1.0)
    q = ortho_group.rvs(8, random_state=3)
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x, 3.7 * x) == pytest.approx(1.0)
    assert linear_cka(x, 1e-4 * x @ q + 5.0) == pytest.approx(1.0)  # a shift is centred away
    y = RNG.normal(size=(60, 5))
    other = linear_cka(x, y)
    assert other == pytest.approx(linear_cka(x @ q, 2.0 * y))  # invariance of both sides
    assert 0.0 <= other < 0.5
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))


def test_cka_constants_and_errors() -> None:
    x = RNG.normal(size=(10, 3))
    # A constant representation has nothing to align: undefined, not identical.
    assert np.isnan(linear_cka(np.ones((10, 2)), np.zeros((10, 4))))
    assert np.isnan(linear_cka(np.ones((10, 2)), x))
    with pytest.raises(ValueError, match="same >= 2 probes"):
        linear_cka(x, x[:5])
    with pytest.raises(ValueError, match="finite"):
        linear_cka(np.full((10, 2), np.nan), x)


def test_policy_similarity_accepts_callables_and_torch_modules() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    probes = RNG.normal(size=(40, 6)).astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 6))
    hidden = net[:2]

    def same_hidden(obs: np.ndarray) -> np.ndarray:  # one observation -> representation
        with torch.no_grad():
            return 2.0 * hidden(torch.as_tensor(obs)).numpy()

    q = ortho_group.rvs(16, random_state=1)
    policies = {
        "net": net,
        "callable": same_hidden,
        "rotated": lambda obs: same_hidden(obs) @ q,
        "other": lambda obs: np.sin(obs[:3] * 3.0),
    }
    sim = policy_similarity(policies, probes, layer=None)
    assert sim.matrix.loc["callable", "rotated"] == pytest.approx(1.0)
    assert sim.matrix.loc["callable", "other"] < 0.9
    # The hidden layer of the module (hooked by name) is the callable's representation.
    hooked = policy_similarity({"net": net, "fn": same_hidden}, probes, layer="1")
    assert hooked.matrix.loc["net", "fn"] == pytest.approx(1.0)
    batched = policy_similarity([np.tanh, np.tanh], probes, batched=True)
    assert batched.mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        policy_similarity([np.tanh, np.tanh], probes, layer="1")
    with pytest.raises(ValueError, match="at least two"):
        policy_similarity([np.tanh], probes)


def test_identical_lever_series_are_fully_synchronous() -> None:
    series = RNG.uniform(-1, 1, size=(50, 6))
    sync = action_synchrony({"a": series, "b": series.copy(), "c": series.copy()})
    assert sync.mean_correlation == pytest.approx(1.0)
    assert sync.eigenvalue_share == pytest.approx(1.0)
    assert sync.graph.number_of_edges() == 3
    assert convergence_index(sync) == pytest.approx(1.0)
    # Identical constant levers (static policies) are not "converged": undefined.
    still = action_synchrony({"a": np.zeros((20, 6)), "b": np.zeros((20, 6))})
    assert all(still.static.values())
    assert np.isnan(still.mean_correlation) and np.isnan(still.eigenvalue_share)
    assert np.isnan(convergence_index(still))
    assert still.graph.number_of_edges() == 0


def test_unrelated_and_opposed_agents() -> None:
    a, b = RNG.normal(size=(400, 2)), RNG.normal(size=(400, 2))
    sync = action_synchrony({"a": a, "b": b, "c": -a}, threshold=0.5)
    corr = sync.correlation
    assert abs(corr.loc["a", "b"]) < 0.2
    assert corr.loc["a", "c"] == pytest.approx(-1.0)
    assert sync.graph.number_of_edges() == 0
    assert 1 / 3 <= sync.eigenvalue_share <= 1.0
    parts = convergence_components(sync)
    assert parts["correlation"] == 0.0  # negative mean clipped
    assert 0.0 <= convergence_index(sync) <= 1.0
    # A constant agent's correlation is undefined; summaries use the defined pairs.
    mixed = action_synchrony({"a": a, "c": -a, "still": np.ones((400, 2))})
    assert np.isnan(mixed.correlation.loc["a", "still"])
    assert mixed.correlation.loc["still", "still"] == 1.0
    assert mixed.mean_correlation == pytest.approx(-1.0)  # the one defined pair, a / c
    assert mixed.static == {"a": False, "c": False, "still": True}
    assert mixed.graph.nodes["still"]["static"] is True


def test_convergence_index_combines_actions_and_policies() -> None:
    series = RNG.normal(size=(30, 3))
    probes = RNG.normal(size=(20, 4))
    sim = policy_similarity([np.sin, np.cos], probes)
    parts = convergence_components({"a": series, "b": series}, similarity=sim)
    assert set(parts) == {"correlation", "eigenvalue", "cka"}
    assert convergence_index({"a": series, "b": series}, similarity=sim) == pytest.approx(
        (2.0 + parts["cka"]) / 3.0
    )
    assert convergence_index(similarity=sim) == pytest.approx(sim.mean)
    with pytest.raises(ValueError, match="needs actions"):
        convergence_index()
    with pytest.raises(ValueError, match="same shape"):
        action_synchrony({"a": series, "b": series[:10]})
    with pytest.raises(ValueError, match="at least two"):
        action_synchrony({"a": series})


def test_synchrony_of_a_run_uses_the_applied_levers(small: Small) -> None:
    result = run(small("credit_crunch"), steps=12)
    actions = lever_actions(result)
    assert set(actions) == {"aave", "compound", "dydx"}
    assert actions["aave"].shape == (12, 6)
    assert actions["aave"]["lend"].eq(1.0).all()
    sync = action_synchrony(result)
    # Static levers: no agent's response varies, so convergence is undefined (the issue's
    # finding: all-static policies used to score 1.000, "fully converged").
    assert all(sync.static.values())
    assert np.isnan(sync.mean_correlation) and np.isnan(convergence_index(result))


def test_response_similarity_on_probes_is_behaviour_not_identity() -> None:
    probes = RNG.normal(size=(200, 5))
    w = RNG.normal(size=(5, 6))
    policies = {
        "linear": lambda obs: np.tanh(obs @ w),
        "scaled": lambda obs: 0.5 * np.tanh(obs @ w),  # same behaviour, other magnitude
        "opposed": lambda obs: -np.tanh(obs @ w),
        "static": lambda obs: np.zeros(6),  # answers every state the same way
    }
    sync = response_similarity(policies, probes)
    corr = sync.correlation
    assert corr.loc["linear", "scaled"] == pytest.approx(1.0)
    assert corr.loc["linear", "opposed"] == pytest.approx(-1.0)
    assert np.isnan(corr.loc["linear", "static"]) and sync.static["static"]
    assert sync.graph.has_edge("linear", "scaled")
    assert not sync.graph.has_edge("linear", "static")
    only_static = response_similarity([lambda o: np.ones(6), lambda o: np.ones(6)], probes)
    assert np.isnan(convergence_index(only_static))


def test_structural_similarity_counts_shared_traits() -> None:
    shared = ModelCard("sha:aa", "mappo-actor[64,64]", "crash-mix/seed 1")
    cards = {
        "aave": shared,
        "compound": shared,
        "dydx": ModelCard("sha:bb", "mappo-actor[64,64]", "crash-mix/seed 2"),
        "lyra": ModelCard("static:0", "static", ""),
    }
    sim = structural_similarity(cards)
    # 6 pairs: aave/compound share all three; aave,compound x dydx share the architecture.
    assert sim == {
        "same_model": pytest.approx(1 / 6),
        "same_architecture": pytest.approx(3 / 6),
        "same_training": pytest.approx(1 / 6),
    }
    assert structural_similarity({"a": shared, "b": shared}) == dict.fromkeys(
        ("same_model", "same_architecture", "same_training"), 1.0
    )
    with pytest.raises(ValueError, match="at least two"):
        structural_similarity({"a": shared})
