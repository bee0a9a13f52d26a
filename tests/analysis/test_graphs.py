"""Tests of contagion graphs (:mod:`liqnet.analysis.graphs`) and ledger reconstruction."""

from __future__ import annotations

import pytest

from liqnet.analysis import contagion_graph, credit_exposures, debtrank, debtrank_by_protocol
from liqnet.analysis.graphs import asset_node
from liqnet.analysis.results import first_default_step, snapshot_step
from liqnet.market import MarketModel
from liqnet.scenarios import run
from tests.helpers.worlds import Small


@pytest.fixture(scope="module")
def crunch(small: Small):
    """credit_crunch in a small world: aave lends to dydx, dydx defaults, aave follows."""
    return run(small("credit_crunch"), steps=60)


def test_credit_edge_before_default_equals_ledger_exposure(crunch, small: Small) -> None:
    first = first_default_step(crunch)
    assert first is not None and any(d["protocol"] == "dydx" for d in crunch.defaults)
    step = first - 1
    assert snapshot_step(crunch) == step
    graph = contagion_graph(crunch, step)
    edge = graph.edges["aave", "dydx"]
    assert edge["channel"] == "credit"
    assert edge["loss"] == 0.0 and edge["lines"] >= 1
    # The same world stepped by hand to that step: the ledger's own number.
    model = MarketModel(small("credit_crunch"))
    for _ in range(step):
        model.step()
    ids = list(model.protocols)
    owed = model.ledger.liabilities()[ids.index("dydx"), ids.index("aave")]
    assert owed > 0.0
    assert edge["weight"] == pytest.approx(owed, rel=1e-12)
    ts = crunch.timeseries.set_index("step")
    assert edge["weight"] == pytest.approx(ts.at[step, "aave.credit_lent"], rel=1e-12)
    assert not graph.nodes["dydx"]["defaulted"]


def test_after_default_edge_carries_written_off_loss(crunch) -> None:
    graph = contagion_graph(crunch)  # last step
    edge = graph.edges["aave", "dydx"]
    written_off = crunch.credit.loc[crunch.credit["kind"] == "default", "amount_usd"].sum()
    assert edge["loss"] == pytest.approx(written_off)
    assert graph.nodes["dydx"]["defaulted"]
    dydx_default = next(d["step"] for d in crunch.defaults if d["protocol"] == "dydx")
    assert graph.nodes["dydx"]["default_step"] == dydx_default
    assert graph.nodes["aave"]["loss"] > 0.0
    assert graph.graph["step"] == int(crunch.timeseries["step"].iloc[-1])


def test_reconstruction_matches_ledger_with_repayments_and_rollovers(small: Small) -> None:
    # Short maturities make lines repay or roll over within the run.
    result = run(small("credit_crunch", negotiation__maturity_steps=3), steps=45)
    kinds = set(result.credit["kind"])
    assert {"open", "repay"} <= kinds or {"open", "rollover"} <= kinds
    ts = result.timeseries.set_index("step")
    for step in ts.index:
        lines = credit_exposures(result, int(step))
        lent = lines.groupby("lender")["owed"].sum() if len(lines) else {}
        for pid in ("aave", "compound", "dydx"):
            expected = ts.at[step, f"{pid}.credit_lent"]
            assert float(lent.get(pid, 0.0)) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_collateral_edges_and_node_attributes(crunch) -> None:
    step = 20
    graph = contagion_graph(crunch, step)
    row = crunch.timeseries.set_index("step").loc[step]
    for pid in ("aave", "compound", "dydx"):
        node = graph.nodes[pid]
        assert node["kind"] == "protocol"
        assert node["type"] == crunch.protocol_types[pid]
        assert node["equity_usd"] == pytest.approx(row[f"{pid}.equity"])
        assert node["equity"] == max(0.0, node["equity_usd"])
        exposure = row[f"{pid}.exposure.ETH"]
        if exposure > 0:
            assert graph.edges[pid, asset_node("ETH")]["weight"] == pytest.approx(exposure)
            assert graph.edges[pid, asset_node("ETH")]["channel"] == "collateral"
    assert graph.nodes[asset_node("ETH")]["kind"] == "asset"
    with pytest.raises(ValueError, match="not recorded"):
        contagion_graph(crunch, 10_000)


def test_debtrank_runs_on_contagion_graphs(crunch) -> None:
    step = snapshot_step(crunch)
    graph = contagion_graph(crunch, step)
    outcome = debtrank(graph, {"dydx": 1.0})  # the graph is DebtRank-ready as built
    impact = min(1.0, graph.edges["aave", "dydx"]["weight"] / graph.nodes["aave"]["equity"])
    values = {n: d["value"] for n, d in graph.nodes(data=True)}
    assert outcome.distress["aave"] == pytest.approx(impact)
    assert outcome.total == pytest.approx(values["aave"] / sum(values.values()) * impact)
    table = debtrank_by_protocol(graph).set_index("protocol")
    assert table.loc["dydx", "debtrank"] == pytest.approx(outcome.total)
    assert table.loc["aave", "debtrank"] == 0.0  # nobody lends to aave
    # Every state of the run is accepted, defaulted lenders included.
    for s in (0, step + 1, int(crunch.timeseries["step"].iloc[-1])):
        assert len(debtrank_by_protocol(contagion_graph(crunch, s))) == 3


def test_debtrank_ready_gives_an_insolvent_lender_full_impact() -> None:
    import networkx as nx

    from liqnet.analysis.graphs import debtrank_ready

    graph = nx.DiGraph()
    graph.add_node("lender", equity=0.0, value=1.0)  # book equity already negative, clipped
    graph.add_node("borrower", equity=5.0, value=1.0)
    graph.add_edge("lender", "borrower", channel="credit", weight=3.0)
    with pytest.raises(ValueError, match="equity must be > 0"):
        debtrank(graph, {"borrower": 1.0})
    outcome = debtrank(debtrank_ready(graph), {"borrower": 0.4})
    assert outcome.distress["lender"] == pytest.approx(0.4)  # impact 1: loses what it is owed
    assert graph.nodes["lender"]["equity"] == 0.0  # the input is left alone
