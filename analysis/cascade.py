"""Cascade trees: which liquidations a price move triggered, and what those triggered.

Within a world step, cascade rounds run in order (market/cascade.py): round ``r``'s
forced sales of an asset move its price, the oracle may follow, and round ``r + 1``
liquidates the positions that move pushed under water. The tree makes that explicit:

* ``move:{step}:{asset}``: the step's exogenous move of an asset (kind ``move``);
* ``liq:{step}:{round}:{protocol}:{asset}:{kind}``: one batch of liquidations (kind
  ``liquidation``) or hedge trades (kind ``hedge``) of one protocol in one round;
  a batch rather than one node per position keeps a run with 10^5 liquidations at a
  few hundred nodes;
* ``impact:{step}:{round}:{asset}``: the price move caused by round ``r``'s sales of
  the asset (kind ``impact``).

Edges: move -> round-0 batches; batch (round r) -> impact (round r, same asset);
impact (round r) -> batches of round r + 1 of the same asset. A batch of round r + 1
whose asset saw no sale in round r hangs from the step's move node (the oracle caught
up with the exogenous move late). Several protocols selling in the same round jointly
cause one move, so impact nodes may have several parents: the "tree" is a DAG, a
tree when one protocol sells.

Statistics (graph attributes and :class:`CascadeStats`):

* ``depth``: the longest chain of liquidation generations (1 = only first-round
  liquidations, no knock-on);
* width per round: liquidations (positions) and USD repaid in each cascade round;
* ``branching_ratio``: the Harris estimator of a Galton-Watson process, liquidations
  triggered by earlier liquidations / liquidations that could trigger any (batches in
  the last round allowed by ``max_cascade_rounds`` are censored and left out of the
  denominator); ``branching_ratio_usd`` weighs each liquidation by the debt repaid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from liqnet.core.result import RunResult

__all__ = ["CascadeStats", "cascade_rounds", "cascade_stats", "cascade_tree"]


@dataclass(frozen=True)
class CascadeStats:
    """Summary of a cascade tree.

    Attributes:
        depth: Longest chain of liquidation generations (0 without liquidations).
        width: Per cascade round: ``liquidations``, ``repaid_usd`` and ``steps`` (how many
            steps reached that round), indexed by round.
        branching_ratio: Mean number of liquidations triggered per liquidation (count).
        branching_ratio_usd: The same, weighted by debt repaid.
    """

    depth: int
    width: pd.DataFrame
    branching_ratio: float
    branching_ratio_usd: float


def cascade_rounds(result: RunResult) -> pd.DataFrame:
    """Liquidations per (step, round): ``step, round, liquidations, repaid_usd,
    bad_debt_usd, proceeds_usd`` (hedge trades excluded)."""
    events = result.events
    liq = events[events["kind"] == "liquidation"] if len(events) else events
    columns = ["step", "round", "liquidations", "repaid_usd", "bad_debt_usd", "proceeds_usd"]
    if len(liq) == 0:
        return pd.DataFrame(columns=columns)
    table = liq.groupby(["step", "round"], sort=True).agg(
        liquidations=("repaid_usd", "size"),
        repaid_usd=("repaid_usd", "sum"),
        bad_debt_usd=("bad_debt_usd", "sum"),
        proceeds_usd=("proceeds_usd", "sum"),
    )
    table = table.reset_index()
    table[["step", "round"]] = table[["step", "round"]].astype(int)
    return table[columns]


def cascade_tree(result: RunResult) -> nx.DiGraph:
    """The cascade tree (a DAG) of a run, with its statistics as graph attributes.

    Args:
        result: A run.

    Returns:
        The DiGraph described in the module doc. Graph attributes: ``depth``,
        ``branching_ratio``, ``branching_ratio_usd``, ``max_cascade_rounds`` and
        ``width_per_round`` (a JSON list of liquidations per round, for GraphML).
    """
    tree = nx.DiGraph(scenario=result.scenario.name, seed=int(result.seed))
    tree.graph["max_cascade_rounds"] = int(result.scenario.market.max_cascade_rounds)
    events = result.events
    if len(events):
        batches = events.groupby(["step", "round", "protocol", "asset", "kind"], sort=True).agg(
            events=("repaid_usd", "size"),
            repaid_usd=("repaid_usd", "sum"),
            bad_debt_usd=("bad_debt_usd", "sum"),
            proceeds_usd=("proceeds_usd", "sum"),
            seized_units=("seized_units", "sum"),
            oracle_price=("oracle_price", "mean"),
        )
        ts = result.timeseries.set_index("step")
        for (step, rnd, protocol, asset, kind), b in batches.iterrows():
            step, rnd = int(step), int(rnd)
            move = f"move:{step}:{asset}"
            if move not in tree:
                tree.add_node(
                    move,
                    kind="move",
                    step=step,
                    asset=asset,
                    reference_before=float(ts.at[step - 1, f"{asset}.reference"]),
                    reference_after=float(ts.at[step, f"{asset}.reference"]),
                )
            node = f"liq:{step}:{rnd}:{protocol}:{asset}:{kind}"
            tree.add_node(
                node,
                kind=kind,
                step=step,
                round=rnd,
                protocol=protocol,
                asset=asset,
                events=int(b["events"]),
                repaid_usd=float(b["repaid_usd"]),
                bad_debt_usd=float(b["bad_debt_usd"]),
                proceeds_usd=float(b["proceeds_usd"]),
                oracle_price=float(b["oracle_price"]),
            )
            parent = f"impact:{step}:{rnd - 1}:{asset}"
            tree.add_edge(parent if parent in tree else move, node)
            impact = f"impact:{step}:{rnd}:{asset}"
            if impact not in tree:
                tree.add_node(
                    impact,
                    kind="impact",
                    step=step,
                    round=rnd,
                    asset=asset,
                    sold_units=0.0,
                    proceeds_usd=0.0,
                    oracle_before=float(b["oracle_price"]),
                )
            tree.nodes[impact]["sold_units"] += float(b["seized_units"])
            tree.nodes[impact]["proceeds_usd"] += float(b["proceeds_usd"])
            tree.add_edge(node, impact)
        _finish_impacts(tree)
    stats = cascade_stats(tree)
    tree.graph.update(
        depth=stats.depth,
        branching_ratio=stats.branching_ratio,
        branching_ratio_usd=stats.branching_ratio_usd,
        width_per_round=json.dumps([int(x) for x in stats.width["liquidations"]]),
    )
    return tree


def _finish_impacts(tree: nx.DiGraph) -> None:
    """Add the oracle move each impact led to (where a next round saw the price).

    Impacts without children stay: they are sales that moved the price without pushing
    anyone else under water, the place where a cascade died out.
    """
    for node in [n for n, d in tree.nodes(data=True) if d["kind"] == "impact"]:
        children = list(tree.successors(node))
        if children:
            after = [tree.nodes[c]["oracle_price"] for c in children]
            data = tree.nodes[node]
            data["oracle_after"] = float(sum(after) / len(after))
            if data["oracle_before"] > 0.0:
                data["oracle_move"] = data["oracle_after"] / data["oracle_before"] - 1.0


def _generation(tree: nx.DiGraph) -> dict[str, int]:
    """Generation of every liquidation batch: 1 + that of the liquidations whose sales
    triggered it (through an impact node); hedge trades carry no generation."""
    generation: dict[str, int] = {}
    for node in nx.topological_sort(tree):  # parents before children
        if tree.nodes[node]["kind"] == "liquidation":
            above = [
                generation[g]
                for p in tree.predecessors(node)
                for g in tree.predecessors(p)
                if g in generation
            ]
            generation[node] = 1 + max(above, default=0)
    return generation


def cascade_stats(tree: nx.DiGraph) -> CascadeStats:
    """Depth, width per round and empirical branching ratios of a cascade tree.

    Only liquidations count as offspring and parents; hedge trades still carry the
    causal chain (their sales move prices) but are not liquidations.
    """
    generation = _generation(tree)
    liq = {n: d for n, d in tree.nodes(data=True) if d["kind"] == "liquidation"}
    depth = max((generation[n] for n in liq), default=0)
    width = pd.DataFrame(
        [(d["round"], d["events"], d["repaid_usd"], d["step"]) for d in liq.values()],
        columns=["round", "liquidations", "repaid_usd", "step"],
    )
    width = width.groupby("round").agg(
        liquidations=("liquidations", "sum"),
        repaid_usd=("repaid_usd", "sum"),
        steps=("step", "nunique"),
    )
    limit = int(tree.graph.get("max_cascade_rounds", 0)) or None
    parents = children = parents_usd = children_usd = 0.0
    for node, data in liq.items():
        if generation[node] > 1:  # triggered by earlier liquidations' sales
            children += data["events"]
            children_usd += data["repaid_usd"]
        if limit is None or data["round"] < limit - 1:  # offspring observable
            parents += data["events"]
            parents_usd += data["repaid_usd"]
    return CascadeStats(
        depth=depth,
        width=width,
        branching_ratio=children / parents if parents else 0.0,
        branching_ratio_usd=children_usd / parents_usd if parents_usd else 0.0,
    )
