"""Tests for liqnet.analysis.debtrank (DebtRank, Battiston et al. 2012)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.analysis.debtrank import DebtRankResult, debtrank, debtrank_reference

IMPLEMENTATIONS = [debtrank, debtrank_reference]


def credit_graph(
    edges: list[tuple[str, str, float]],
    equity: dict[str, float],
    value: dict[str, float] | None = None,
) -> nx.DiGraph:
    """Build a credit graph: edges are (lender, borrower, exposure)."""
    graph = nx.DiGraph()
    for node, eq in equity.items():
        graph.add_node(node, equity=eq)
        if value is not None:
            graph.nodes[node]["value"] = value[node]
    for lender, borrower, exposure in edges:
        graph.add_edge(lender, borrower, weight=exposure, channel="credit")
    return graph


@pytest.fixture
def golden() -> nx.DiGraph:
    """Three-protocol network from REFERENCE_PARAMETERS.md (Battiston et al. 2012)."""
    return credit_graph(
        [("a", "b", 1), ("b", "a", 10), ("b", "c", 3), ("c", "a", 3), ("c", "b", 2)],
        equity={"a": 2, "b": 5, "c": 2},
        value={"a": 10, "b": 100, "c": 30},
    )


# --- golden values ---------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("shocked", "expected_r", "expected_rounds"),
    [({"a": 1.0}, 0.9285714, 2), ({"b": 1.0}, 0.25, 2), ({"c": 1.0}, 0.6642857, 3)],
)
def test_golden_full_default(impl, golden, shocked, expected_r, expected_rounds) -> None:
    result = impl(golden, shocked)
    assert isinstance(result, DebtRankResult)
    assert result.total == pytest.approx(expected_r, abs=1e-7)
    assert result.rounds == expected_rounds
    node = next(iter(shocked))
    assert result.initial_value_lost == pytest.approx(golden.nodes[node]["value"] / 140)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_golden_default_of_c_needs_the_cap(impl, golden) -> None:
    # c -> b (0.6) -> a (0.3) -> b again: W[b, a] = min(1, 10/5) = 1 adds 0.3 to b's 0.6.
    # Uncapped, W[b, a] = 2 would push b to 1.2 -> 1 and R to 103/140 = 0.7357.
    result = impl(golden, {"c": 1.0})
    assert result.distress == pytest.approx({"a": 0.3, "b": 0.9, "c": 1.0})


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_golden_ten_percent_shock_to_all(impl, golden) -> None:
    result = impl(golden, {"a": 0.1, "b": 0.1, "c": 0.1})
    assert result.total == pytest.approx(0.1607143, abs=1e-7)
    assert result.distress == pytest.approx({"a": 0.15, "b": 0.26, "c": 0.30})
    assert result.initial_value_lost == pytest.approx(0.1)
    assert result.rounds == 1  # everyone propagates in round 1, then all are inactive


# --- small networks by hand ------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_chain(impl) -> None:
    # a lends 4 to b, b lends 6 to c; equity a 8, b 10, c 5; equal values (1/3 each).
    # W[b, c] = 6/10 = 0.6, W[a, b] = 4/8 = 0.5. c defaults:
    #   round 1: c passes 1 to b -> h_b = 0.6;  round 2: b passes 0.6 to a -> h_a = 0.3;
    #   round 3: a has no creditors, goes inactive.  R = (0.6 + 0.3) / 3 = 0.3.
    graph = credit_graph([("a", "b", 4), ("b", "c", 6)], equity={"a": 8, "b": 10, "c": 5})
    result = impl(graph, {"c": 1.0})
    assert result.total == pytest.approx(0.3)
    assert result.distress == pytest.approx({"a": 0.3, "b": 0.6, "c": 1.0})
    assert result.initial_value_lost == pytest.approx(1 / 3)
    assert result.rounds == 3


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_star(impl) -> None:
    # Hub borrows 1, 2, 3, 8 from lenders l1..l4, each with equity 4:
    # W = 0.25, 0.5, 0.75, min(1, 2) = 1. Values: hub 4, lenders 1 each (total 8).
    # Hub shocked to 0.5: lenders' distress = 0.125, 0.25, 0.375, 0.5 in round 1;
    # they lend to nobody upstream, so round 2 passes nothing on.
    # R = (0.125 + 0.25 + 0.375 + 0.5) / 8 = 0.15625; initial loss = 0.5 * 4 / 8 = 0.25.
    exposures = {"l1": 1, "l2": 2, "l3": 3, "l4": 8}
    graph = credit_graph(
        [(lender, "hub", x) for lender, x in exposures.items()],
        equity={"hub": 1, **{lender: 4 for lender in exposures}},
        value={"hub": 4, **{lender: 1 for lender in exposures}},
    )
    result = impl(graph, {"hub": 0.5})
    assert result.total == pytest.approx(0.15625)
    assert result.initial_value_lost == pytest.approx(0.25)
    assert [result.distress[f"l{k}"] for k in range(1, 5)] == pytest.approx(
        [0.125, 0.25, 0.375, 0.5]
    )
    assert result.rounds == 2


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_cycle_propagates_each_node_once(impl) -> None:
    # a lends to b, b to c, c to a, each 1 against equity 2: every W = 0.5. Shock a = 0.4.
    #   round 1: a passes 0.4 to its creditor c -> h_c = 0.2
    #   round 2: c passes 0.2 to its creditor b -> h_b = 0.1
    #   round 3: b passes 0.1 to its creditor a -> h_a = 0.45; a is inactive, so the
    #            loop stops there instead of feeding back forever.
    # R = (0.05 + 0.1 + 0.2) / 3 = 0.35 / 3 (the inactive node's extra 0.05 counts).
    graph = credit_graph(
        [("a", "b", 1), ("b", "c", 1), ("c", "a", 1)], equity={"a": 2, "b": 2, "c": 2}
    )
    result = impl(graph, {"a": 0.4})
    assert result.total == pytest.approx(0.35 / 3)
    assert result.distress == pytest.approx({"a": 0.45, "b": 0.1, "c": 0.2})
    assert result.rounds == 3


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_no_edges_no_propagation(impl) -> None:
    graph = credit_graph([], equity={"a": 1, "b": 1, "c": 1})
    result = impl(graph, {"a": 1.0, "b": 0.3})
    assert result.total == 0.0
    assert result.distress == {"a": 1.0, "b": 0.3, "c": 0.0}
    assert result.initial_value_lost == pytest.approx(1.3 / 3)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_channels_missing_channel_and_parallel_edges(impl) -> None:
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(["a", "b"], equity=4.0)
    graph.add_node("c")  # no equity needed: c lends nothing on credit
    graph.add_edge("a", "b", weight=1.0)  # no channel -> credit
    graph.add_edge("a", "b", weight=1.0, channel="credit")  # summed: a holds 2 on b
    graph.add_edge("c", "b", weight=50.0, channel="collateral")  # ignored
    graph.add_edge("b", "c", weight=1.0, channel="credit")
    result = impl(graph, {"b": 1.0})
    # W[a, b] = 2 / 4 = 0.5; c's collateral link does not transmit credit losses.
    assert result.distress == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.0})
    assert result.total == pytest.approx(0.5 / 3)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_max_iterations_truncates(impl) -> None:
    graph = credit_graph([("a", "b", 4), ("b", "c", 6)], equity={"a": 8, "b": 10, "c": 5})
    result = impl(graph, {"c": 1.0}, max_iterations=1)
    assert result.rounds == 1
    assert result.distress == pytest.approx({"a": 0.0, "b": 0.6, "c": 1.0})
    assert impl(graph, {"c": 1.0}, max_iterations=0).total == 0.0


def test_empty_graph() -> None:
    result = debtrank(nx.DiGraph(), {})
    assert result == DebtRankResult(0.0, {}, 0.0, 0)


# --- properties on random graphs -------------------------------------------------------


@st.composite
def random_networks(draw: st.DrawFn) -> tuple[nx.DiGraph, dict[int, float]]:
    """A random credit graph (some collateral edges, some zero values) and a shock."""
    n = draw(st.integers(1, 12))
    graph = nx.DiGraph()
    for node in range(n):
        graph.add_node(
            node,
            equity=draw(st.floats(0.05, 20.0)),
            value=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 100.0)),
        )
    if sum(v for _, v in graph.nodes(data="value")) == 0.0:
        graph.nodes[0]["value"] = 1.0
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    for i, j in draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([])):
        channel = draw(st.sampled_from(["credit", "credit", "collateral"]))
        graph.add_edge(i, j, weight=draw(st.floats(0.0, 30.0)), channel=channel)
    levels = st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0)
    shocked = draw(st.dictionaries(st.integers(0, n - 1), levels, max_size=n))
    return graph, shocked


@settings(max_examples=150, deadline=None)
@given(random_networks())
def test_vectorised_matches_reference(network: tuple[nx.DiGraph, dict[int, float]]) -> None:
    graph, shocked = network
    fast, slow = debtrank(graph, shocked), debtrank_reference(graph, shocked)
    assert fast.rounds == slow.rounds
    assert fast.total == pytest.approx(slow.total, abs=1e-12)
    assert fast.initial_value_lost == pytest.approx(slow.initial_value_lost, abs=1e-12)
    assert fast.distress == pytest.approx(slow.distress, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(random_networks())
def test_bounds(network: tuple[nx.DiGraph, dict[int, float]]) -> None:
    graph, shocked = network
    result = debtrank(graph, shocked)
    assert 0.0 <= result.total <= 1.0 - result.initial_value_lost + 1e-12
    assert all(0.0 <= h <= 1.0 for h in result.distress.values())
    # Distress only grows: no node ends below its initial shock.
    assert all(result.distress[node] >= level for node, level in shocked.items())
    assert result.rounds <= graph.number_of_nodes()


def test_large_sparse_graph_equals_the_reference() -> None:
    rng = np.random.default_rng(7)
    n, m = 10_000, 50_000
    graph = nx.gnm_random_graph(n, m, seed=7, directed=True)
    for (u, v), x in zip(graph.edges, rng.lognormal(0.0, 1.0, m), strict=True):
        graph.edges[u, v]["weight"] = float(x)
    lent = dict(graph.out_degree(weight="weight"))
    for node in graph.nodes:
        graph.nodes[node]["equity"] = 0.5 * lent[node] + 1.0  # lenders are 2x leveraged
    result = debtrank(graph, {k: 1.0 for k in range(10)})
    # At 10k nodes the sparse propagation gives the literal algorithm's answer, node by
    # node and round by round; its speed-up is measured in benchmarks/analysis_throughput.py.
    reference = debtrank_reference(graph, {k: 1.0 for k in range(10)})
    assert result.rounds == reference.rounds
    assert result.total == pytest.approx(reference.total, abs=1e-12)
    assert max(abs(result.distress[k] - reference.distress[k]) for k in graph) < 1e-12
    assert 0.0 < result.total < 1.0
    assert math.isclose(result.initial_value_lost, 10 / n)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("mutate", "shocked", "match"),
    [
        (None, {"z": 1.0}, "shocked node 'z' is not in the graph"),
        (None, {"a": 1.5}, r"shock of node 'a' must be in \[0, 1\]"),
        (None, {"a": -0.1}, r"shock of node 'a' must be in \[0, 1\]"),
        (None, {"a": float("nan")}, "shock of node 'a' must be finite"),
        (lambda g: g.nodes["a"].pop("equity"), {"b": 1.0}, "node 'a' lends on credit"),
        (lambda g: g.nodes["a"].update(equity=0.0), {"b": 1.0}, "equity must be > 0"),
        (lambda g: g.nodes["c"].update(equity=-1.0), {"b": 1.0}, "equity of node 'c'"),
        (lambda g: g.edges["a", "b"].update(weight=-1.0), {"b": 1.0}, "weight of edge"),
        (lambda g: g.edges["a", "b"].pop("weight"), {"b": 1.0}, "has no 'weight'"),
        (lambda g: g.add_edge("a", "a", weight=1.0), {"b": 1.0}, "self-loop"),
        (lambda g: g.nodes["a"].pop("value"), {"b": 1.0}, "give all or none"),
        (lambda g: g.nodes["a"].update(value=-1.0), {"b": 1.0}, "value of node 'a'"),
    ],
)
def test_bad_input(impl, golden, mutate, shocked, match) -> None:
    if mutate is not None:
        mutate(golden)
    with pytest.raises(ValueError, match=match):
        impl(golden, shocked)


def test_bad_graph_type_and_max_iterations(golden) -> None:
    with pytest.raises(TypeError, match="DiGraph"):
        debtrank(nx.Graph(golden), {"a": 1.0})
    with pytest.raises(ValueError, match="max_iterations"):
        debtrank(golden, {"a": 1.0}, max_iterations=-1)


def test_equal_weights_when_no_values() -> None:
    graph = credit_graph([("a", "b", 1)], equity={"a": 1, "b": 1})
    assert debtrank(graph, {"b": 1.0}, value_attr="value").total == pytest.approx(0.5)
    assert debtrank(graph, {"b": 1.0}, value_attr=None).total == pytest.approx(0.5)
