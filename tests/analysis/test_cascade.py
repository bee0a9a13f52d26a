"""Tests of cascade trees (:mod:`liqnet.analysis.cascade`)."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import pandas as pd
import pytest

from liqnet.analysis import cascade_rounds, cascade_stats, cascade_tree
from liqnet.core import RunResult
from liqnet.market.events import EVENT_COLUMNS
from liqnet.scenarios import run
from tests.helpers.worlds import Small


@pytest.fixture(scope="module")
def crash(small: Small):
    """flash_crash (small world) through the crash."""
    return run(small("flash_crash"), steps=30)


def test_flash_crash_tree_is_deep(crash) -> None:
    tree = cascade_tree(crash)
    assert nx.is_directed_acyclic_graph(tree)
    assert tree.graph["depth"] >= 2
    assert tree.graph["depth"] <= crash.summary["max_cascade_rounds"]
    assert 0.0 < tree.graph["branching_ratio"] < 1.0  # the cascades die out
    stats = cascade_stats(tree)
    assert stats.depth == tree.graph["depth"]
    liquidations = crash.events[crash.events["kind"] == "liquidation"]
    assert stats.width["liquidations"].sum() == len(liquidations)
    assert stats.width["repaid_usd"].sum() == pytest.approx(liquidations["repaid_usd"].sum())
    assert list(stats.width.index) == sorted(liquidations["round"].unique())


def test_tree_links_rounds_through_price_impacts(crash) -> None:
    tree = cascade_tree(crash)
    kinds = nx.get_node_attributes(tree, "kind")
    for node, kind in kinds.items():
        parents = list(tree.predecessors(node))
        if kind == "move":
            assert parents == []
        elif kind in ("liquidation", "hedge"):
            (parent,) = parents
            data, up = tree.nodes[node], tree.nodes[parent]
            assert up["step"] == data["step"] and up["asset"] == data["asset"]
            if data["round"] == 0:
                assert up["kind"] == "move"
            elif up["kind"] == "impact":
                assert up["round"] == data["round"] - 1
        else:  # impact: caused by the same round's sales of the same asset
            assert kind == "impact"
            for p in parents:
                assert tree.nodes[p]["round"] == tree.nodes[node]["round"]
                assert tree.nodes[p]["asset"] == tree.nodes[node]["asset"]
    # Every round-r+1 sale of an asset sold in round r hangs from that impact.
    moved = [n for n, k in kinds.items() if k == "impact" and tree.out_degree(n) > 0]
    assert moved and all("oracle_move" in tree.nodes[n] for n in moved)


@pytest.fixture
def _result_with_events(small: Small) -> Callable[..., RunResult]:
    """Factory: a flash_crash result whose events are replaced by ``(step, round, protocol,
    n)`` rows: ``_result_with_events(rows, max_rounds=10)``."""

    def make(rows: list[tuple[int, int, str, int]], max_rounds: int = 10) -> RunResult:
        result = run(small("flash_crash", market__max_cascade_rounds=max_rounds), steps=8)
        records = []
        for step, rnd, protocol, n in rows:
            for k in range(n):
                records.append(
                    dict.fromkeys(EVENT_COLUMNS, 0.0)
                    | {"step": step, "round": rnd, "kind": "liquidation", "protocol": protocol}
                    | {"asset": "ETH", "book": "ETH", "position": k, "repaid_usd": 10.0}
                    | {"oracle_price": 3000.0 - 100.0 * rnd}
                )
        result.events = pd.DataFrame(records, columns=list(EVENT_COLUMNS))
        return result

    return make


def test_branching_ratio_by_hand(_result_with_events: Callable[..., RunResult]) -> None:
    # Step 5: 4 liquidations, then 2 triggered by them, then 1; step 6: 3 and 3.
    rows = [(5, 0, "aave", 3), (5, 0, "dydx", 1), (5, 1, "aave", 2), (5, 2, "aave", 1)]
    rows += [(6, 0, "aave", 3), (6, 1, "compound", 3)]
    tree = cascade_tree(_result_with_events(rows))
    # Harris estimator: offspring (2 + 1 + 3) / parents (4 + 2 + 1 + 3 + 3).
    assert tree.graph["branching_ratio"] == pytest.approx(6 / 13)
    assert tree.graph["branching_ratio_usd"] == pytest.approx(6 / 13)
    assert tree.graph["depth"] == 3
    assert tree.graph["width_per_round"] == "[7, 5, 1]"
    assert set(tree.predecessors("impact:5:0:ETH")) == {"liq:5:0:aave:ETH:liquidation"} | {
        "liq:5:0:dydx:ETH:liquidation"
    }
    assert list(tree.successors("impact:5:0:ETH")) == ["liq:5:1:aave:ETH:liquidation"]
    assert tree.nodes["impact:5:0:ETH"]["oracle_move"] == pytest.approx(-100.0 / 3000.0)
    table = cascade_rounds(_result_with_events(rows))
    assert table["liquidations"].tolist() == [4, 2, 1, 3, 3]


def test_censored_last_round_is_not_a_parent(_result_with_events: Callable[..., RunResult]) -> None:
    # With a 2-round limit, round 1's offspring could never be observed.
    tree = cascade_tree(_result_with_events([(5, 0, "aave", 4), (5, 1, "aave", 2)], 2))
    assert tree.graph["branching_ratio"] == pytest.approx(2 / 4)


def test_no_liquidations_gives_an_empty_tree(small: Small) -> None:
    result = run(small("baseline"), steps=5)
    result.events = result.events.iloc[0:0]
    tree = cascade_tree(result)
    assert tree.number_of_nodes() == 0
    assert (tree.graph["depth"], tree.graph["branching_ratio"]) == (0, 0.0)
    assert len(cascade_rounds(result)) == 0
