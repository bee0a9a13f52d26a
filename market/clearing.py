"""Eisenberg-Noe clearing of a network of inter-protocol liabilities.

When a protocol defaults, its creditors are paid from what it has, and what it has
depends on what its own debtors pay it. Eisenberg & Noe (2001), "Systemic Risk in
Financial Systems", Management Science 47(2), show that the consistent set of payments
is a fixed point of the clearing map

    Phi(p) = min(p_bar, max(0, a + Pi^T p)),

where ``p_bar`` are the total obligations to the network, ``Pi`` the relative liability
matrix (each row of obligations divided by its total) and ``a`` the assets available for
network payments. The greatest fixed point is found in at most ``n`` linear solves by
their fictitious-default algorithm, implemented here with NumPy only.

Senior external debt (e.g. depositors) is paid first out of external assets, as in the
reference example in ``shared/REFERENCE_PARAMETERS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.sparse import linalg as splinalg

__all__ = ["ClearingResult", "eisenberg_noe"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Relative tolerance for "pays less than it owes". Without it a node whose wealth equals
# its obligations up to round-off could flip into the default set and, worse, a closed
# cycle of such nodes could make the linear system singular.
_REL_TOL = 1e-12


@dataclass(frozen=True, eq=False)
class ClearingResult:
    """Outcome of clearing a liability network (all arrays are read-only).

    Attributes:
        payments: (n,) total each node pays to the network.
        payment_matrix: (n, n) ``payment_matrix[i, j]`` is what i pays j; row i is
            ``payments[i]`` split pro rata to ``liabilities[i, :]``.
        defaulted: (n,) True where a node pays less than it owes to the network or
            cannot meet its senior external debt.
        creditor_losses: (n,) for each creditor j, owed to j minus received by j.
        equity: (n,) external assets - external liabilities + received - owed (the full
            obligation, not the payment, so it is negative for defaulted nodes).
        iterations: number of linear solves of the fictitious-default algorithm
            (0 when nobody defaults on the network; at most n).
    """

    payments: FloatArray
    payment_matrix: FloatArray
    defaulted: BoolArray
    creditor_losses: FloatArray
    equity: FloatArray
    iterations: int


def _as_float_array(value: ArrayLike, name: str, ndim: int) -> FloatArray:
    """Convert ``value`` to a float array of ``ndim`` dims, finite and non-negative."""
    try:
        arr = np.array(value, dtype=np.float64)  # a copy: the caller's array is never aliased
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array; got {type(value).__name__}") from exc
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative; smallest entry is {arr.min()!r}")
    return arr


def _validate(
    liabilities: ArrayLike,
    external_assets: ArrayLike,
    external_liabilities: ArrayLike | None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check the inputs and return them as float arrays; raise one clear ValueError."""
    L = _as_float_array(liabilities, "liabilities", 2)
    n = L.shape[0]
    if L.shape != (n, n):
        raise ValueError(f"liabilities must be a square (n, n) matrix; got shape {L.shape}")
    if np.any(np.diag(L) != 0):
        raise ValueError("liabilities must have a zero diagonal (a node cannot owe itself)")
    e = _as_float_array(external_assets, "external_assets", 1)
    if e.shape != (n,):
        raise ValueError(f"external_assets must have length {n} (one per node); got {e.shape[0]}")
    if external_liabilities is None:
        el = np.zeros(n)
    else:
        el = _as_float_array(external_liabilities, "external_liabilities", 1)
        if el.shape != (n,):
            raise ValueError(
                f"external_liabilities must have length {n} (one per node); got {el.shape[0]}"
            )
    return L, e, el


def _readonly(arr: NDArray) -> NDArray:
    """Mark an array read-only so a frozen result stays frozen."""
    arr.setflags(write=False)
    return arr


def _picard(
    Pi: FloatArray, owed: FloatArray, net_external: FloatArray, start: FloatArray, tol: float
) -> FloatArray:
    """Iterate ``p <- min(owed, max(0, net + Pi^T p))`` down from an upper bound."""
    payments = start.copy()
    for _ in range(1_000_000):
        following = np.minimum(owed, np.maximum(0.0, net_external + Pi.T @ payments))
        if np.max(np.abs(following - payments), initial=0.0) <= 1e-3 * tol:
            return following
        payments = following
    raise RuntimeError("Picard iteration did not converge")  # pragma: no cover


def eisenberg_noe(
    liabilities: ArrayLike,
    external_assets: ArrayLike,
    external_liabilities: ArrayLike | None = None,
) -> ClearingResult:
    """Clear a liability network and return the greatest clearing payment vector.

    Fictitious-default algorithm (Eisenberg & Noe 2001, section 3): start from everyone
    paying in full; find the nodes that cannot pay given what they receive; solve the
    linear system in which exactly those nodes pay all they have; repeat until the
    default set stops growing. The default set only grows, so there are at most ``n``
    solves, each on the defaulters' sub-block only.

    Args:
        liabilities: (n, n) ``liabilities[i, j]`` is what node i owes node j;
            non-negative, finite, zero diagonal.
        external_assets: (n,) each node's assets outside the network; non-negative.
        external_liabilities: (n,) senior external debt, paid first out of everything
            the node has (external assets and receipts from the network); defaults to
            zeros. A node whose net worth is negative is marked defaulted.

    Returns:
        The clearing result; see `ClearingResult`.

    Raises:
        ValueError: if an argument has the wrong shape, or contains negative,
            non-finite or (on the diagonal of ``liabilities``) non-zero entries.

    Example:
        >>> r = eisenberg_noe([[0, 4, 0], [0, 0, 3], [2, 0, 0]], [18, 18, 9], [17, 18, 8])
        >>> r.payments.tolist(), r.equity.tolist()
        ([3.0, 3.0, 2.0], [-1.0, 0.0, 2.0])
    """
    L, e, el = _validate(liabilities, external_assets, external_liabilities)
    n = L.shape[0]
    owed = L.sum(axis=1)  # p_bar: total obligations to the network
    # Relative liabilities; a row that owes nothing stays zero (it never pays anyone).
    Pi = np.divide(L, owed[:, None], out=np.zeros_like(L), where=owed[:, None] > 0)
    # Senior external debt comes first, out of all the node's assets: what reaches the
    # network is external assets minus external debt plus receipts (negative net worth
    # outside the network eats into receipts; Elsinger 2009).
    net_external = e - el
    scale = max(float(owed.max(initial=0.0)), float(np.abs(net_external).max(initial=0.0)), 1.0)
    tol = _REL_TOL * scale

    payments = owed.copy()
    in_default = np.zeros(n, dtype=bool)
    solves = 0
    # Each pass either stops or adds at least one node to the default set: <= n + 1 passes.
    for _ in range(n + 1):
        wealth = net_external + Pi.T @ payments
        # Union with the old set: the default set is monotone in exact arithmetic, and
        # enforcing it makes termination independent of round-off.
        new_default = in_default | (wealth < owed - tol)
        if np.array_equal(new_default, in_default):
            break
        in_default = new_default
        d = np.flatnonzero(in_default)
        s = np.flatnonzero(~in_default)
        # Defaulters pay everything they have: p_D = a_D + Pi_DD^T p_D + Pi_SD^T p_bar_S.
        system = np.eye(d.size) - Pi[np.ix_(d, d)].T
        rhs = net_external[d] + Pi[np.ix_(s, d)].T @ owed[s]
        solved = None
        if np.linalg.cond(system) < 1e10:
            solved = np.linalg.solve(system, rhs)
        solves += 1
        if solved is None or np.any(solved < -tol):
            # A defaulter that would pay a negative amount (its losses outside the network
            # exceed its receipts), or a closed cycle of defaulters losing money outside
            # the network: the linear system no longer describes the clearing vector.
            # The decreasing Picard iteration from the last upper bound finds the
            # greatest fixed point exactly.
            payments = _picard(Pi, owed, net_external, payments, tol)
            in_default = payments < owed - tol
            break
        payments = owed.copy()
        payments[d] = np.clip(solved, 0.0, owed[d])  # round-off must stay in [0, owed]
    else:  # pragma: no cover - unreachable: the loop bound is the size of the node set
        raise RuntimeError("fictitious-default algorithm did not converge")

    payment_matrix = Pi * payments[:, None]
    received = payment_matrix.sum(axis=0)
    creditor_losses = np.maximum(L.sum(axis=0) - received, 0.0)
    equity = net_external + received - owed
    defaulted = in_default | (equity < -tol)
    return ClearingResult(
        payments=_readonly(payments),
        payment_matrix=_readonly(payment_matrix),
        defaulted=_readonly(defaulted),
        creditor_losses=_readonly(creditor_losses),
        equity=_readonly(equity),
        iterations=solves,
    )


def eisenberg_noe_sparse(
    liabilities: sparse.sparray | sparse.spmatrix,
    external_assets: ArrayLike,
    external_liabilities: ArrayLike | None = None,
) -> ClearingResult:
    """:func:`eisenberg_noe` for large sparse networks (same algorithm, same result).

    The defaulters' linear systems are solved with a sparse LU factorisation, so a network
    of 10,000 nodes and 50,000 liabilities clears in milliseconds where the dense version
    would need gigabytes. ``payment_matrix`` is returned sparse (CSR).
    """
    L = sparse.csr_array(liabilities, dtype=np.float64)
    n = L.shape[0]
    if L.shape != (n, n):
        raise ValueError(f"liabilities must be a square (n, n) matrix; got shape {L.shape}")
    if L.nnz and (not np.all(np.isfinite(L.data)) or L.data.min() < 0):
        raise ValueError("liabilities must be finite and non-negative")
    if L.diagonal().any():
        raise ValueError("liabilities must have a zero diagonal (a node cannot owe itself)")
    e = _as_float_array(external_assets, "external_assets", 1)
    el = (
        np.zeros(n)
        if external_liabilities is None
        else _as_float_array(external_liabilities, "external_liabilities", 1)
    )
    if e.shape != (n,) or el.shape != (n,):
        raise ValueError(f"external_assets and external_liabilities must have length {n}")
    owed = np.asarray(L.sum(axis=1)).ravel()
    inverse = np.divide(1.0, owed, out=np.zeros(n), where=owed > 0)
    Pi = sparse.csr_array(sparse.diags_array(inverse) @ L)
    PiT = sparse.csr_array(Pi.T)
    net_external = e - el
    scale = max(float(owed.max(initial=0.0)), float(np.abs(net_external).max(initial=0.0)), 1.0)
    tol = _REL_TOL * scale
    payments = owed.copy()
    in_default = np.zeros(n, dtype=bool)
    solves = 0
    for _ in range(n + 1):
        wealth = net_external + PiT @ payments
        new_default = in_default | (wealth < owed - tol)
        if np.array_equal(new_default, in_default):
            break
        in_default = new_default
        d = np.flatnonzero(in_default)
        s = np.flatnonzero(~in_default)
        system = sparse.eye_array(d.size, format="csc") - sparse.csc_array(PiT[d][:, d])
        rhs = net_external[d] + PiT[d][:, s] @ owed[s]
        solves += 1
        try:
            solved = splinalg.splu(system).solve(rhs)
        except RuntimeError:  # exactly singular: see the dense version
            solved = None
        # A near-singular factorisation answers with nonsense rather than an error: a
        # defaulter can pay neither less than nothing nor more than it owes.
        if (
            solved is None
            or not np.all(np.isfinite(solved))
            or np.any(solved < -tol)
            or np.any(solved > owed[d] + tol)
        ):
            payments = _picard(PiT.T, owed, net_external, payments, tol)
            in_default = payments < owed - tol
            break
        payments = owed.copy()
        payments[d] = np.clip(solved, 0.0, owed[d])
    payment_matrix = sparse.csr_array(sparse.diags_array(payments) @ Pi)
    received = np.asarray(payment_matrix.sum(axis=0)).ravel()
    creditor_losses = np.maximum(np.asarray(L.sum(axis=0)).ravel() - received, 0.0)
    equity = net_external + received - owed
    return ClearingResult(
        payments=_readonly(payments),
        payment_matrix=payment_matrix,
        defaulted=_readonly(in_default | (equity < -tol)),
        creditor_losses=_readonly(creditor_losses),
        equity=_readonly(equity),
        iterations=solves,
    )
