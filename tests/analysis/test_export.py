"""Tests of GraphML and node-link JSON exports (:mod:`liqnet.analysis.export`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from liqnet.analysis import (
    action_synchrony,
    cascade_tree,
    contagion_graph,
    read_node_link_json,
    to_graphml,
    to_node_link_json,
)
from liqnet.scenarios import run
from tests.helpers.worlds import Small


@pytest.fixture(scope="module")
def crunch(small: Small):
    """credit_crunch (small world) past its defaults."""
    return run(small("credit_crunch"), steps=45)


def _same(a: nx.Graph, b: nx.Graph) -> None:
    assert set(a.nodes) == set(b.nodes)
    assert set(a.edges) == set(b.edges)
    for node, data in a.nodes(data=True):
        assert b.nodes[node] == pytest.approx(data)
        for key, value in data.items():
            assert type(b.nodes[node][key]) is type(value), key
    for u, v, data in a.edges(data=True):
        assert b.edges[u, v] == pytest.approx(data)
    # read_graphml adds its own node_default / edge_default keys.
    extra = {"node_default", "edge_default"}
    assert {k: v for k, v in b.graph.items() if k not in extra} == pytest.approx(a.graph)


@pytest.mark.parametrize("which", ["contagion", "cascade", "synchrony"])
def test_graphml_round_trips(crunch, tmp_path: Path, which: str) -> None:
    graph = {
        "contagion": lambda: contagion_graph(crunch, 38),
        "cascade": lambda: cascade_tree(crunch),
        "synchrony": lambda: action_synchrony(crunch).graph,
    }[which]()
    assert graph.number_of_nodes() > 0
    path = to_graphml(graph, tmp_path / "g" / f"{which}.graphml")
    back = nx.read_graphml(path)
    assert back.is_directed() == graph.is_directed()
    _same(graph, back)
    _same(graph, read_node_link_json(to_node_link_json(graph, tmp_path / f"{which}.json")))


def test_exports_sanitise_attributes(tmp_path: Path) -> None:
    graph = nx.DiGraph(label=np.str_("x"))
    graph.add_node(1, size=np.float64(2.5), count=np.int64(3), flag=np.bool_(True), none=None)
    graph.add_node("b", tags=["a", "b"], worst=math.inf)
    graph.add_edge(1, "b", weight=np.float32(1.5), path=np.arange(3))
    back = nx.read_graphml(to_graphml(graph, tmp_path / "g.graphml"))
    assert back.nodes["1"] == {"size": 2.5, "count": 3, "flag": True}
    assert back.nodes["b"]["tags"] == '["a", "b"]' and back.nodes["b"]["worst"] == math.inf
    assert back.edges["1", "b"] == {"weight": 1.5, "path": "[0, 1, 2]"}
    text = (to_node_link_json(graph, tmp_path / "g.json")).read_text(encoding="utf-8")
    data = json.loads(text)  # strict JSON: no bare Infinity
    assert "Infinity" not in text
    assert {n["id"] for n in data["nodes"]} == {"1", "b"}
    assert read_node_link_json(tmp_path / "g.json").nodes["b"]["worst"] == "inf"
