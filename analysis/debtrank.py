"""DebtRank (Battiston et al. 2012) on inter-protocol credit graphs.

Graph convention: an edge ``lender -> borrower`` with ``channel="credit"`` (or no
``channel`` attribute) and ``weight`` = exposure, i.e. what the lender has lent the
borrower. Edges of any other channel (``"collateral"``, ...) are ignored. Nodes carry
``equity`` and optionally an economic-value weight (``value`` by default).

The impact of borrower ``j``'s distress on lender ``i`` is
``W[i, j] = min(1, exposure_ij / equity_i)``: a loss on a claim can at most wipe out the
lender's equity. Distress ``h_i`` lies in ``[0, 1]`` (1 = default). This is the original
SIU formulation: every node is Undistressed, Distressed or Inactive, and a node
propagates its distress exactly once, in the round after it became distressed:

    h_i(t) = min(1, h_i(t-1) + sum_{j Distressed at t-1} W[i, j] * h_j(t-1))

after which Distressed nodes become Inactive (they still absorb distress, but never pass
it on again). Because a node enters the Distressed state with ``h_j(t-1) = 0``, the
amount it propagates equals its increment ``h_j(t) - h_j(t-1)``. The rank is
``R = sum_i v_i h_i(T) - sum_i v_i h_i(1)``: the initial shock itself is excluded.

Reference: S. Battiston, M. Puliga, R. Kaushik, P. Tasca, G. Caldarelli, "DebtRank: Too
Central to Fail? Financial Networks, the FED and Systemic Risk", Sci. Rep. 2, 541 (2012).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp

__all__ = ["DebtRankResult", "debtrank", "debtrank_reference"]

CREDIT_CHANNEL = "credit"


@dataclass(frozen=True)
class DebtRankResult:
    """Outcome of one DebtRank run.

    Attributes:
        total: The DebtRank ``R``: value-weighted distress caused by the propagation,
            excluding the initial shock; in ``[0, 1 - initial_value_lost]``.
        distress: Final distress ``h_i(T)`` in ``[0, 1]`` of every node in the graph.
        initial_value_lost: Value-weighted initial shock ``sum_i v_i h_i(1)``.
        rounds: Number of propagation rounds performed (0 when nothing was distressed).
    """

    total: float
    distress: dict[Hashable, float]
    initial_value_lost: float
    rounds: int


@dataclass(frozen=True)
class _Inputs:
    """Validated inputs shared by the vectorised and the reference implementation."""

    nodes: list[Hashable]
    credit_edges: list[tuple[Hashable, Hashable, float]]  # (lender, borrower, exposure > 0)
    equity: dict[Hashable, float]  # only nodes that carry an ``equity`` attribute
    values: list[float]  # normalised economic-value weights, in ``nodes`` order
    shocks: dict[Hashable, float]


def _is_credit(data: Mapping[str, Any]) -> bool:
    """Whether an edge belongs to the credit channel (no ``channel`` counts as credit)."""
    return data.get("channel", CREDIT_CHANNEL) == CREDIT_CHANNEL


def _as_float(raw: Any, what: str) -> float:
    """Convert ``raw`` to a finite float or raise a ValueError naming ``what``."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def _validate(
    graph: nx.DiGraph,
    shocked: Mapping[Hashable, float],
    value_attr: str | None,
    max_iterations: int | None,
) -> _Inputs:
    """Check every input once and return it in plain-Python form.

    Raises:
        TypeError: ``graph`` is not directed.
        ValueError: On any bad node, edge, shock or ``max_iterations`` (see ``debtrank``).
    """
    if not isinstance(graph, nx.DiGraph):
        raise TypeError(f"graph must be a networkx.DiGraph, got {type(graph).__name__}")
    if max_iterations is not None and (
        isinstance(max_iterations, bool)
        or not isinstance(max_iterations, int)
        or max_iterations < 0
    ):
        raise ValueError(f"max_iterations must be None or an int >= 0, got {max_iterations!r}")

    nodes = list(graph.nodes)
    shocks: dict[Hashable, float] = {}
    for node, raw in shocked.items():
        if node not in graph:
            raise ValueError(f"shocked node {node!r} is not in the graph")
        level = _as_float(raw, f"shock of node {node!r}")
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"shock of node {node!r} must be in [0, 1], got {level}")
        shocks[node] = level

    credit_edges: list[tuple[Hashable, Hashable, float]] = []
    for lender, borrower, data in graph.edges(data=True):
        if not _is_credit(data):
            continue
        if "weight" not in data:
            raise ValueError(f"credit edge {lender!r} -> {borrower!r} has no 'weight'")
        exposure = _as_float(data["weight"], f"weight of edge {lender!r} -> {borrower!r}")
        if exposure < 0.0:
            raise ValueError(
                f"weight of edge {lender!r} -> {borrower!r} must be >= 0, got {exposure}"
            )
        if lender == borrower:
            # A protocol cannot hold a claim on itself; a self-loop is a ledger bug.
            raise ValueError(f"credit edge {lender!r} -> {borrower!r} is a self-loop")
        if exposure > 0.0:  # zero exposures carry no impact; dropping them keeps W sparse
            credit_edges.append((lender, borrower, exposure))

    equity: dict[Hashable, float] = {}
    for node, data in graph.nodes(data=True):
        if "equity" in data:
            eq = _as_float(data["equity"], f"equity of node {node!r}")
            if eq < 0.0:
                raise ValueError(f"equity of node {node!r} must be >= 0, got {eq}")
            equity[node] = eq
    for lender, _, _ in credit_edges:
        # Only lenders can be impacted, so only they need a positive equity.
        if equity.get(lender, 0.0) <= 0.0:
            got = equity.get(lender, "missing")
            raise ValueError(
                f"node {lender!r} lends on credit, so its equity must be > 0 (got {got})"
            )

    return _Inputs(nodes, credit_edges, equity, _value_weights(graph, nodes, value_attr), shocks)


def _value_weights(graph: nx.DiGraph, nodes: list[Hashable], value_attr: str | None) -> list[float]:
    """Economic-value weights normalised to sum 1; equal weights when none are given."""
    if not nodes:
        return []
    attrs = graph.nodes
    given = [] if value_attr is None else [n for n in nodes if value_attr in attrs[n]]
    if not given:
        return [1.0 / len(nodes)] * len(nodes)
    if len(given) != len(nodes):
        missing = next(n for n in nodes if value_attr not in attrs[n])
        raise ValueError(
            f"node {missing!r} has no {value_attr!r} while other nodes do: give all or none"
        )
    raw = [_as_float(attrs[n][value_attr], f"{value_attr} of node {n!r}") for n in nodes]
    if any(x < 0.0 for x in raw):
        bad = next(n for n, x in zip(nodes, raw, strict=True) if x < 0.0)
        raise ValueError(f"{value_attr} of node {bad!r} must be >= 0")
    total = sum(raw)
    if total <= 0.0:
        raise ValueError(f"node {value_attr!r} weights must not all be zero")
    return [x / total for x in raw]


def debtrank(
    graph: nx.DiGraph,
    shocked: Mapping[Hashable, float],
    *,
    value_attr: str | None = "value",
    max_iterations: int | None = None,
) -> DebtRankResult:
    """DebtRank of an initial shock on a credit graph, vectorised with scipy.sparse.

    Each round is one sparse matrix-vector product, so a run costs
    ``O(rounds * (n + edges))``; the SIU rule bounds ``rounds`` by ``n``.

    Args:
        graph: Directed graph; credit edges ``lender -> borrower`` with ``weight`` =
            exposure (parallel edges of a MultiDiGraph are summed before the cap).
        shocked: Initial distress ``h_i(1)`` in ``[0, 1]`` per node (1.0 = default);
            nodes not listed start undistressed.
        value_attr: Node attribute holding the economic-value weight. If no node has it
            (or it is None), all nodes weigh the same.
        max_iterations: Stop after this many propagation rounds (None: run until no node
            is distressed, which always happens within ``n`` rounds).

    Returns:
        The DebtRank, the final distress of every node, the initial value lost and the
        number of rounds.

    Raises:
        TypeError: ``graph`` is not a DiGraph.
        ValueError: A shocked node is not in the graph; a shock is outside ``[0, 1]``; a
            credit edge has a missing, negative or non-finite weight or is a self-loop; a
            node has negative equity, or lends on credit without positive equity; value
            weights are partial, negative or all zero; ``max_iterations`` is negative.
    """
    inputs = _validate(graph, shocked, value_attr, max_iterations)
    nodes = inputs.nodes
    n = len(nodes)
    index = {node: k for k, node in enumerate(nodes)}

    m = len(inputs.credit_edges)
    lenders = np.fromiter((index[u] for u, _, _ in inputs.credit_edges), np.intp, count=m)
    borrowers = np.fromiter((index[v] for _, v, _ in inputs.credit_edges), np.intp, count=m)
    exposure = np.fromiter((x for _, _, x in inputs.credit_edges), np.float64, count=m)
    equity = np.array([inputs.equity.get(node, 0.0) for node in nodes], dtype=np.float64)

    # CSR construction sums parallel edges, so the cap applies to the total exposure.
    W = sp.csr_array((exposure, (lenders, borrowers)), shape=(n, n))
    W.sum_duplicates()
    row_of_entry = np.repeat(np.arange(n), np.diff(W.indptr))
    W.data = np.minimum(1.0, W.data / equity[row_of_entry])

    h0 = np.zeros(n)
    for node, level in inputs.shocks.items():
        h0[index[node]] = level
    h = h0.copy()
    distressed = h > 0.0
    inactive = np.zeros(n, dtype=bool)
    rounds = 0
    while distressed.any() and (max_iterations is None or rounds < max_iterations):
        # Only nodes distressed in the previous round pass on their (whole) distress.
        h = np.minimum(1.0, h + W @ np.where(distressed, h, 0.0))
        inactive |= distressed
        # Anyone not inactive with positive distress was undistressed until now.
        distressed = (h > 0.0) & ~inactive
        rounds += 1

    values = np.asarray(inputs.values, dtype=np.float64)
    # v . (h - h0) instead of v.h - v.h0: every term is >= 0, so R cannot round below 0.
    total = float(values @ (h - h0)) if n else 0.0
    initial = float(values @ h0) if n else 0.0
    distress = dict(zip(nodes, h.tolist(), strict=True))
    return DebtRankResult(total, distress, initial, rounds)


def debtrank_reference(
    graph: nx.DiGraph,
    shocked: Mapping[Hashable, float],
    *,
    value_attr: str | None = "value",
    max_iterations: int | None = None,
) -> DebtRankResult:
    """Plain-Python DebtRank, looping over NetworkX nodes and edges.

    A deliberately literal transcription of Battiston et al.'s algorithm, kept as a test
    oracle for :func:`debtrank` and as the baseline in
    ``benchmarks/analysis_throughput.py``. Same arguments, result and errors as
    :func:`debtrank`, only slower.

    Args:
        graph: Directed credit graph (see :func:`debtrank`).
        shocked: Initial distress per node.
        value_attr: Node attribute holding the economic-value weight.
        max_iterations: Maximum number of propagation rounds.

    Returns:
        The same :class:`DebtRankResult` as :func:`debtrank`, up to float rounding.
    """
    inputs = _validate(graph, shocked, value_attr, max_iterations)
    nodes = inputs.nodes
    h = {node: inputs.shocks.get(node, 0.0) for node in nodes}
    h_initial = dict(h)
    state = {node: "D" if h[node] > 0.0 else "U" for node in nodes}
    rounds = 0
    while any(s == "D" for s in state.values()):
        if max_iterations is not None and rounds >= max_iterations:
            break
        new_h = dict(h)
        for j in nodes:
            if state[j] != "D":
                continue
            # Sum parallel credit edges per lender first: the cap is on the total claim.
            claims: dict[Hashable, float] = defaultdict(float)
            for i, _, data in graph.in_edges(j, data=True):
                if _is_credit(data):
                    claims[i] += float(data["weight"])
            for i, exposure in claims.items():
                if exposure > 0.0:
                    new_h[i] += min(1.0, exposure / inputs.equity[i]) * h[j]
        for node in nodes:
            new_h[node] = min(1.0, new_h[node])
            if state[node] == "D":
                state[node] = "I"
            elif state[node] == "U" and new_h[node] > 0.0:
                state[node] = "D"
        h = new_h
        rounds += 1

    total = sum(v * (h[n] - h_initial[n]) for n, v in zip(nodes, inputs.values, strict=True))
    initial = sum(v * h_initial[n] for n, v in zip(nodes, inputs.values, strict=True))
    return DebtRankResult(float(total), h, float(initial), rounds)
