"""Tests for liqnet.market.clearing (Eisenberg-Noe clearing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from liqnet.market.clearing import ClearingResult, eisenberg_noe

# Golden example, shared/REFERENCE_PARAMETERS.md (Eisenberg-Noe 2001): a->b 4, b->c 3,
# c->a 2; external assets 20, 20, 10 cut by 10%; external liabilities 17, 18, 8.
GOLDEN_L = np.array([[0.0, 4.0, 0.0], [0.0, 0.0, 3.0], [2.0, 0.0, 0.0]])
GOLDEN_E = np.array([20.0, 20.0, 10.0]) * 0.9
GOLDEN_EL = np.array([17.0, 18.0, 8.0])


def clearing_map(p: np.ndarray, L: np.ndarray, e: np.ndarray, el: np.ndarray) -> np.ndarray:
    """Phi(p) = min(p_bar, max(0, a + Pi^T p)), written independently of the module."""
    owed = L.sum(axis=1)
    Pi = np.zeros_like(L)
    np.divide(L, owed[:, None], out=Pi, where=owed[:, None] > 0)
    return np.minimum(owed, np.maximum(0.0, e - el + Pi.T @ p))


def test_golden_reference_example() -> None:
    r = eisenberg_noe(GOLDEN_L, GOLDEN_E, GOLDEN_EL)
    np.testing.assert_allclose(r.payments, [3.0, 3.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(r.equity, [-1.0, 0.0, 2.0], atol=1e-12)
    np.testing.assert_array_equal(r.defaulted, [True, False, False])
    assert r.defaulted.sum() == 1
    np.testing.assert_allclose(
        r.payment_matrix, [[0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [2.0, 0.0, 0.0]], atol=1e-12
    )
    # b is owed 4 by a and receives 3; a and c are paid in full.
    np.testing.assert_allclose(r.creditor_losses, [0.0, 1.0, 0.0], atol=1e-12)
    assert r.iterations == 1


def test_textbook_cycle_of_two_defaulters() -> None:
    """A owes B 8 and C 2, B owes A 6 and C 4; no senior debt.

    Both default at full payment (2 + 6 < 10, 1 + 8 < 10), so one solve of
    p_A = 2 + 0.6 p_B, p_B = 1 + 0.8 p_A gives p_A = p_B = 5.
    """
    L = np.array([[0.0, 8.0, 2.0], [6.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    r = eisenberg_noe(L, [2.0, 1.0, 0.0])
    np.testing.assert_allclose(r.payments, [5.0, 5.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        r.payment_matrix, [[0.0, 4.0, 1.0], [3.0, 0.0, 2.0], [0.0, 0.0, 0.0]], atol=1e-12
    )
    np.testing.assert_allclose(r.equity, [-5.0, -5.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(r.creditor_losses, [3.0, 4.0, 3.0], atol=1e-12)
    np.testing.assert_array_equal(r.defaulted, [True, True, False])
    assert r.iterations == 1


def test_default_cascade_needs_a_second_solve() -> None:
    """A owes B 10 with 5 of assets; B owes C 10 with 3: B only fails once A does."""
    L = np.array([[0.0, 10.0, 0.0], [0.0, 0.0, 10.0], [0.0, 0.0, 0.0]])
    r = eisenberg_noe(L, [5.0, 3.0, 0.0])
    np.testing.assert_allclose(r.payments, [5.0, 8.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(r.defaulted, [True, True, False])
    np.testing.assert_allclose(r.equity, [-5.0, -2.0, 8.0], atol=1e-12)
    assert r.iterations == 2


def test_greatest_of_many_fixed_points() -> None:
    """Two nodes owing each other 1 with no assets: every (t, t) clears; pick (1, 1)."""
    r = eisenberg_noe([[0.0, 1.0], [1.0, 0.0]], [0.0, 0.0])
    np.testing.assert_allclose(r.payments, [1.0, 1.0])
    assert not r.defaulted.any()
    assert r.iterations == 0


def test_senior_external_debt_not_covered() -> None:
    """External assets 3 < senior debt 4: nothing reaches the network, the rest is lost."""
    r = eisenberg_noe([[0.0, 5.0], [0.0, 0.0]], [3.0, 1.0], [4.0, 0.0])
    np.testing.assert_allclose(r.payments, [0.0, 0.0])
    np.testing.assert_array_equal(r.defaulted, [True, False])
    np.testing.assert_allclose(r.equity, [3.0 - 4.0 - 5.0, 1.0])
    np.testing.assert_allclose(r.creditor_losses, [0.0, 5.0])


def test_senior_debt_default_without_network_obligations() -> None:
    r = eisenberg_noe(np.zeros((2, 2)), [1.0, 2.0], [2.0, 2.0])
    np.testing.assert_array_equal(r.defaulted, [True, False])
    np.testing.assert_allclose(r.equity, [-1.0, 0.0])


def test_empty_network() -> None:
    r = eisenberg_noe(np.zeros((0, 0)), np.zeros(0))
    assert r.payments.shape == (0,)
    assert r.iterations == 0


def test_result_is_frozen_and_inputs_not_aliased() -> None:
    L = GOLDEN_L.copy()
    r = eisenberg_noe(L, GOLDEN_E, GOLDEN_EL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.iterations = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        r.payments[0] = 0.0  # read-only array
    L[0, 1] = 100.0
    assert r.payment_matrix[0, 1] == pytest.approx(3.0)
    assert isinstance(r, ClearingResult)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"liabilities": np.zeros((2, 3))}, "liabilities must be a square"),
        ({"liabilities": np.zeros(3)}, "liabilities must be a 2-D"),
        ({"liabilities": [[0.0, -1.0], [0.0, 0.0]]}, "liabilities must be non-negative"),
        ({"liabilities": [[0.0, np.nan], [0.0, 0.0]]}, "liabilities must be finite"),
        ({"liabilities": [[1.0, 0.0], [0.0, 0.0]]}, "liabilities must have a zero diagonal"),
        ({"liabilities": [["a", "b"], ["c", "d"]]}, "liabilities must be a numeric"),
        ({"external_assets": [1.0]}, "external_assets must have length 2"),
        ({"external_assets": [1.0, -2.0]}, "external_assets must be non-negative"),
        ({"external_assets": [1.0, np.inf]}, "external_assets must be finite"),
        ({"external_liabilities": [1.0, 2.0, 3.0]}, "external_liabilities must have length 2"),
        ({"external_liabilities": [-1.0, 0.0]}, "external_liabilities must be non-negative"),
    ],
)
def test_validation(kwargs: dict, match: str) -> None:
    args = {
        "liabilities": [[0.0, 1.0], [1.0, 0.0]],
        "external_assets": [1.0, 1.0],
        "external_liabilities": None,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        eisenberg_noe(**args)


# --- properties on random small networks -------------------------------------------------

_value = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)
# About half the edges are absent, so that sparse chains and cycles both appear.
_edge = st.one_of(st.just(0.0), _value)


@st.composite
def networks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random network of 1-6 nodes: (liabilities, external assets, external debt)."""
    n = draw(st.integers(1, 6))
    L = draw(arrays(np.float64, (n, n), elements=_edge))
    np.fill_diagonal(L, 0.0)
    e = draw(arrays(np.float64, n, elements=_value))
    el = draw(st.one_of(st.just(np.zeros(n)), arrays(np.float64, n, elements=_value)))
    return L, e, el


def _tol(L: np.ndarray, e: np.ndarray) -> float:
    return 1e-9 * max(1.0, L.sum(), e.sum())


@settings(max_examples=200, deadline=None)
@given(networks())
def test_clearing_properties(net: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    L, e, el = net
    r = eisenberg_noe(L, e, el)
    tol = _tol(L, e)
    owed = L.sum(axis=1)
    received = r.payment_matrix.sum(axis=0)

    assert np.all(r.payments >= 0.0)
    assert np.all(r.payments <= owed + tol)
    # Limited liability: nobody pays more than it has after senior debt plus what it gets.
    assert np.all(r.payments <= np.maximum(e - el + received, 0.0) + tol)
    # Money conservation and the pro-rata split.
    assert r.payments.sum() == pytest.approx(received.sum(), abs=tol)
    np.testing.assert_allclose(r.payment_matrix.sum(axis=1), r.payments, atol=tol)
    share = np.divide(L, owed[:, None], out=np.zeros_like(L), where=owed[:, None] > 0)
    np.testing.assert_allclose(r.payment_matrix, share * r.payments[:, None], atol=tol)
    np.testing.assert_allclose(r.creditor_losses, L.sum(axis=0) - received, atol=tol)
    np.testing.assert_allclose(r.equity, e - el + received - owed, atol=tol)
    # Fixed point of the clearing map.
    np.testing.assert_allclose(clearing_map(r.payments, L, e, el), r.payments, atol=tol)
    # Defaults are exactly the nodes that underpay or end with negative net worth.
    solvent = ~r.defaulted
    np.testing.assert_allclose(r.payments[solvent], owed[solvent], atol=tol)
    underpaying = r.payments < owed - tol
    assert np.all(r.defaulted[underpaying])
    assert np.all(r.defaulted[r.equity < -tol])
    assert np.all(underpaying[r.defaulted] | (r.equity[r.defaulted] < 0))
    assert 0 <= r.iterations <= L.shape[0]


@settings(max_examples=200, deadline=None)
@given(networks())
def test_greatest_fixed_point_matches_picard_iteration(
    net: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Picard iteration from full payment decreases to the greatest fixed point.

    Every Picard iterate is an upper bound of the greatest fixed point, and the sequence
    converges to it, so the result must stay below every iterate and be reached.

    Near-closed cycles of debt (two nodes owing each other almost all they are owed)
    contract at a rate near 1, and Picard needs millions of steps there. Once the
    defaulters are settled the map is affine and the error shrinks geometrically, so
    when the budget runs out the distance left to the result must be the geometric tail
    of the last steps (``rho / (1 - rho)`` times the last one), not more.
    """
    L, e, el = net
    r = eisenberg_noe(L, e, el)
    tol = _tol(L, e)
    p = L.sum(axis=1)
    steps: list[float] = []
    for _ in range(200_000):
        assert np.all(r.payments <= p + tol)
        if np.max(np.abs(p - r.payments), initial=0.0) <= tol:
            return
        nxt = clearing_map(p, L, e, el)
        steps.append(float(np.max(p - nxt, initial=0.0)))
        assert steps[-1] > 0.0, "Picard iteration stalled above result"
        p = nxt
    rho = steps[-1] / steps[-2]
    assert rho < 1.0
    left = float(np.max(np.abs(p - r.payments)))
    assert left <= 1.01 * steps[-1] * rho / (1.0 - rho) + tol, "Picard heads above the result"


@settings(max_examples=100, deadline=None)
@given(networks())
def test_all_solvent_pays_in_full(net: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Give every node enough external assets: no default, every obligation paid."""
    L, _, el = net
    e = el + L.sum(axis=1)
    r = eisenberg_noe(L, e, el)
    assert not r.defaulted.any()
    np.testing.assert_array_equal(r.payments, L.sum(axis=1))
    np.testing.assert_allclose(r.creditor_losses, 0.0, atol=_tol(L, e))
    assert r.iterations == 0


@settings(max_examples=100, deadline=None)
@given(networks())
def test_sparse_version_matches_dense(net: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The sparse solver is the same algorithm: same payments, defaults and equity."""
    from scipy import sparse

    from liqnet.market.clearing import eisenberg_noe_sparse

    L, e, el = net
    dense = eisenberg_noe(L, e, el)
    fast = eisenberg_noe_sparse(sparse.csr_array(L), e, el)
    tol = 1e-8 * max(1.0, L.sum(), e.sum(), el.sum())
    np.testing.assert_allclose(fast.payments, dense.payments, atol=tol)
    np.testing.assert_allclose(fast.equity, dense.equity, atol=tol)
    np.testing.assert_array_equal(fast.defaulted, dense.defaulted)
    np.testing.assert_allclose(fast.payment_matrix.toarray(), dense.payment_matrix, atol=tol)


def test_sparse_golden_example() -> None:
    from scipy import sparse

    from liqnet.market.clearing import eisenberg_noe_sparse

    L = sparse.csr_array(np.array([[0, 4, 0], [0, 0, 3], [2, 0, 0]], dtype=float))
    r = eisenberg_noe_sparse(L, [18.0, 18.0, 9.0], [17.0, 18.0, 8.0])
    np.testing.assert_allclose(r.payments, [3.0, 3.0, 2.0])
    np.testing.assert_allclose(r.equity, [-1.0, 0.0, 2.0])
    assert r.defaulted.tolist() == [True, False, False]
