"""Exports of analysis graphs: GraphML and node-link JSON.

GraphML holds only strings, numbers and booleans, and JSON has no NaN or infinity, so
both writers first make a sanitised copy: NumPy scalars become Python ones, lists and
dicts become JSON strings, ``None`` attributes are dropped, and non-finite floats are
written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` in JSON (GraphML keeps floats).
Node ids become strings, which is what ``networkx.read_graphml`` gives back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

__all__ = ["read_node_link_json", "sanitize_graph", "to_graphml", "to_node_link_json"]


def _value(value: Any, finite_only: bool) -> Any:
    """An attribute value GraphML and JSON can hold, or None to drop it."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if finite_only and not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, allow_nan=False)
    return str(value)


def _clean(attrs: Mapping[str, Any], finite_only: bool) -> dict[str, Any]:
    out = {}
    for key, raw in attrs.items():
        value = _value(raw, finite_only)
        if value is not None:
            out[str(key)] = value
    return out


def sanitize_graph(graph: nx.Graph, *, finite_only: bool = False) -> nx.Graph:
    """A copy of ``graph`` (same class) with string node ids and exportable attributes.

    Args:
        graph: Any NetworkX graph.
        finite_only: Also turn non-finite floats into strings (for strict JSON).

    Returns:
        The sanitised copy.
    """
    clean = graph.__class__()
    clean.graph.update(_clean(graph.graph, finite_only))
    for node, data in graph.nodes(data=True):
        clean.add_node(str(node), **_clean(data, finite_only))
    if graph.is_multigraph():
        for u, v, key, data in graph.edges(keys=True, data=True):
            clean.add_edge(str(u), str(v), key=key, **_clean(data, finite_only))
    else:
        for u, v, data in graph.edges(data=True):
            clean.add_edge(str(u), str(v), **_clean(data, finite_only))
    return clean


def to_graphml(graph: nx.Graph, path: str | Path) -> Path:
    """Write ``graph`` as GraphML (readable with ``networkx.read_graphml``).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nx.write_graphml(sanitize_graph(graph), path)
    return path


def to_node_link_json(graph: nx.Graph, path: str | Path) -> Path:
    """Write ``graph`` as node-link JSON (``networkx.node_link_data``, ``edges`` key).

    The file is strict JSON (no NaN); read it back with :func:`read_node_link_json`.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = nx.node_link_data(sanitize_graph(graph, finite_only=True), edges="edges")
    path.write_text(json.dumps(data, indent=1, allow_nan=False), encoding="utf-8")
    return path


def read_node_link_json(path: str | Path) -> nx.Graph:
    """Read a graph written by :func:`to_node_link_json`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return nx.node_link_graph(data, edges="edges")
