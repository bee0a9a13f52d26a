"""Contagion graphs of a run (NetworkX) and DebtRank per protocol on them.

A contagion graph is a snapshot at one step. Nodes are protocols (``kind="protocol"``)
and assets (``kind="asset"``, id ``"asset:ETH"``; protocol ids cannot contain ``:``, so
the two never collide). Edges carry a ``channel``:

* ``credit``: lender -> borrower, ``weight`` = what the borrower owes the lender on open
  lines at that step (USD), rebuilt from the ledger history; ``loss`` = what the lender
  has written off on the pair's lines so far; ``lines`` = number of open lines. An edge
  whose lines were all written off stays, with ``weight`` 0, so the path of a loss
  remains visible after the default.
* ``collateral``: protocol -> asset, ``weight`` = the protocol's USD exposure to the
  asset (``{pid}.exposure.{asset}``). Protocols sharing an asset are linked through it:
  one's fire sales move the price the other is marked at.

The graph is ready for :func:`liqnet.analysis.debtrank.debtrank`: protocol nodes carry
``equity`` (the capital buffer, ``max(book equity, 0)``; the signed book value is
``equity_usd``) and ``value`` (economic weight, the protocol's initial equity); asset
nodes carry ``value = 0`` so they weigh nothing in the rank.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import networkx as nx
import pandas as pd

from liqnet.analysis.debtrank import DebtRankResult, debtrank
from liqnet.analysis.results import credit_exposures, protocol_ids, resolve_step
from liqnet.core.result import RunResult

__all__ = [
    "asset_node",
    "contagion_graph",
    "debtrank_by_protocol",
    "debtrank_ready",
    "edge_table",
    "node_table",
    "peak_credit_debtrank",
]

CREDIT = "credit"
COLLATERAL = "collateral"


def asset_node(asset: str) -> str:
    """Node id of an asset in a contagion graph (``"asset:ETH"``)."""
    return f"asset:{asset}"


def contagion_graph(result: RunResult, step: int | None = None) -> nx.DiGraph:
    """The contagion graph of ``result`` at the end of ``step`` (see the module doc).

    Args:
        result: A run (from :func:`liqnet.scenarios.run` or :func:`load_result`).
        step: A recorded step (0 is the initial state); None for the last step.

    Returns:
        A DiGraph with graph attributes ``scenario``, ``seed``, ``feedback``, ``step``.
        Protocol node attributes: ``kind``, ``type`` (registered protocol type),
        ``equity``, ``equity_usd``, ``value``, ``loss`` (equity lost since step 0, >= 0),
        ``bad_debt`` (realised), ``credit_losses``, ``defaulted``, ``default_step``
        (-1 if none). Asset node attributes: ``kind``, ``type="asset"``, ``label``,
        ``price`` (reference), ``drawdown`` (from the running peak), ``value`` (0).

    Raises:
        ValueError: ``step`` was not recorded.
    """
    step = resolve_step(result, step)
    ts = result.timeseries
    row = ts.loc[ts["step"] == step].iloc[0]
    first = ts.iloc[0]
    graph = nx.DiGraph(
        scenario=result.scenario.name, seed=int(result.seed), feedback=bool(result.feedback)
    )
    graph.graph["step"] = step
    default_at: dict[str, int] = {}  # protocol id -> step of its first default
    for record in result.defaults:
        default_at.setdefault(record["protocol"], int(record["step"]))
    for pid in protocol_ids(result):
        equity = float(row[f"{pid}.equity"])
        defaulted_at = default_at.get(pid, -1)
        graph.add_node(
            pid,
            kind="protocol",
            type=result.protocol_types.get(pid, "protocol"),
            equity=max(equity, 0.0),
            equity_usd=equity,
            # Initial equity as economic weight: R is then the share of the system's
            # starting capital destroyed by propagation.
            value=max(float(first[f"{pid}.equity"]), 0.0),
            loss=max(0.0, float(first[f"{pid}.equity"]) - equity),
            bad_debt=float(row.get(f"{pid}.bad_debt", 0.0)),
            credit_losses=float(row.get(f"{pid}.credit_losses", 0.0)),
            defaulted=0 <= defaulted_at <= step,
            default_step=defaulted_at if 0 <= defaulted_at <= step else -1,
        )
    upto = ts.loc[ts["step"] <= step]
    for asset in result.scenario.market.assets:
        path = upto[f"{asset}.reference"]
        graph.add_node(
            asset_node(asset),
            kind="asset",
            type="asset",
            label=asset,
            price=float(path.iloc[-1]),
            drawdown=float(1.0 - path.iloc[-1] / path.max()),
            value=0.0,
        )
        for pid in protocol_ids(result):
            exposure = float(row.get(f"{pid}.exposure.{asset}", 0.0))
            if exposure > 0.0:
                graph.add_edge(pid, asset_node(asset), channel=COLLATERAL, weight=exposure)
    lines = credit_exposures(result, step)
    if len(lines):
        pairs = lines.groupby(["lender", "borrower"], sort=True)
        for (lender, borrower), group in pairs:
            owed = float(group["owed"].sum())
            rate = float((group["rate"] * group["owed"]).sum() / owed) if owed > 0 else 0.0
            graph.add_edge(
                lender, borrower, channel=CREDIT, weight=owed, lines=len(group), rate=rate
            )
    # The loss counts every write-down so far, also on lines closed since (a written-down
    # line that recovers what was left is no longer open, but its loss stands).
    for (lender, borrower), loss in _written_off(result, step).items():
        if not graph.has_edge(lender, borrower):
            graph.add_edge(lender, borrower, channel=CREDIT, weight=0.0, lines=0, rate=0.0)
        graph.edges[lender, borrower]["loss"] = loss
    for _, _, data in graph.edges(data=True):
        if data["channel"] == CREDIT:
            data.setdefault("loss", 0.0)
    return graph


def _written_off(result: RunResult, step: int) -> dict[tuple[str, str], float]:
    """USD written off per (lender, borrower) pair up to ``step``, from the ledger history."""
    history = result.credit
    if history is None or len(history) == 0:
        return {}
    rows = history[(history["kind"] == "default") & (history["step"] <= step)]
    sums = rows.groupby(["lender", "borrower"], sort=True)["amount_usd"].sum()
    return {(str(a), str(b)): float(v) for (a, b), v in sums.items()}


def debtrank_ready(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy of a contagion graph that :func:`debtrank` accepts in every state.

    A lender whose equity is gone (0 after clipping) but still holds claims would make
    ``debtrank`` refuse the graph; such a lender loses everything on any loss, so its
    equity is set to its smallest positive claim, which gives every claim impact 1.
    """
    ready = graph.copy()
    for node in ready.nodes:
        claims = [
            float(d.get("weight", 0.0))
            for _, _, d in ready.out_edges(node, data=True)
            if d.get("channel", CREDIT) == CREDIT and float(d.get("weight", 0.0)) > 0.0
        ]
        if claims and float(ready.nodes[node].get("equity", 0.0)) <= 0.0:
            ready.nodes[node]["equity"] = min(claims)
    return ready


def debtrank_by_protocol(
    graph: nx.DiGraph, shock: float = 1.0, protocols: list[Hashable] | None = None
) -> pd.DataFrame:
    """DebtRank of each protocol's distress, one at a time, on a contagion graph.

    Args:
        graph: A contagion graph (or any graph :func:`debtrank` accepts).
        shock: Initial distress of the shocked protocol (1.0 = default).
        protocols: Nodes to shock; default: every node of kind ``protocol``.

    Returns:
        One row per shocked protocol: ``protocol``, ``debtrank`` (R, initial shock
        excluded), ``rounds``, ``credit_out`` (USD it owes, i.e. exposure of others to
        it) and ``distress.<node>`` for every protocol node.
    """
    ready = debtrank_ready(graph)
    nodes = [n for n, d in ready.nodes(data=True) if d.get("kind", "protocol") == "protocol"]
    rows = []
    for node in nodes if protocols is None else protocols:
        outcome: DebtRankResult = debtrank(ready, {node: shock})
        owed = sum(
            float(d.get("weight", 0.0))
            for _, _, d in ready.in_edges(node, data=True)
            if d.get("channel", CREDIT) == CREDIT
        )
        row = {"protocol": node, "debtrank": outcome.total, "rounds": outcome.rounds}
        row["credit_out"] = owed
        row.update({f"distress.{n}": outcome.distress[n] for n in nodes})
        rows.append(row)
    return pd.DataFrame(rows)


def node_table(graph: nx.DiGraph) -> pd.DataFrame:
    """The nodes of a graph and their attributes, one row each (column ``node``)."""
    return pd.DataFrame([{"node": n, **d} for n, d in graph.nodes(data=True)])


def edge_table(graph: nx.DiGraph, extra: Mapping[str, object] | None = None) -> pd.DataFrame:
    """The edges of a graph and their attributes (columns ``source``, ``target``, ...)."""
    rows = [{"source": u, "target": v, **d, **(extra or {})} for u, v, d in graph.edges(data=True)]
    return pd.DataFrame(rows)


def peak_credit_debtrank(result: RunResult) -> float:
    """The largest DebtRank of one protocol's default on the credit network at its peak.

    The network is taken at the step when the most credit is outstanding (the sum of
    every protocol's ``credit_lent``); 0.0 when no line was ever open (no credit
    network, no contagion through it).
    """
    ts = result.timeseries
    lent = ts[[f"{p}.credit_lent" for p in protocol_ids(result)]].sum(axis=1)
    if not (lent > 0).any():
        return 0.0
    step = int(ts["step"].iloc[int(lent.to_numpy().argmax())])
    ranks = debtrank_by_protocol(contagion_graph(result, step))
    return float(ranks["debtrank"].max())
