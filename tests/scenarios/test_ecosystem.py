"""The ``ecosystem`` built-in: sixteen protocols sized from one DefiLlama snapshot (and,
for Maker's ETH book, one article of the same week), sharing assets, whose run has a
contagion graph with credit lines between them and Dutch auctions in the CDP."""

from __future__ import annotations

import pytest

from liqnet.analysis.graphs import contagion_graph
from liqnet.core.result import RunResult
from liqnet.protocols.registry import get_protocol_class
from liqnet.scenarios import Scenario, load, run

# DefiLlama /protocols of 27 June 2023 (johngriffin/web3-protocol-diversity,
# defillamaprotocols.json at 846c532292fdfb58da87f7fa9a8f56f20cf8e7b7), $M:
# (chainTvls[chain], chainTvls[chain-borrowed]) for lending markets, TVL for the others.
LENDING_SNAPSHOT = {
    "aave_v2": (3504.8, 1732.7),
    "aave_v3": (1226.5, 676.7),
    "aave_v3_arbitrum": (144.8, 102.0),
    "aave_v3_avalanche": (203.4, 86.2),
    "morpho_aave": (306.3, 362.9),
    "spark": (14.8, 6.0),
    "radiant_v2": (182.7, 212.1),
    "compound_v2": (1332.0, 512.1),
    "compound_v3": (482.6, 211.1),
}
PERP_TVL = {"gmx_arbitrum": 550.4, "gmx_avalanche": 76.8, "dydx": 357.1}
OPTIONS_TVL = {"ribbon": 24.4, "lyra": 17.7, "dopex": 22.8}
# The Defiant, late June 2023: collateral ~$8.4B, of which ETH 11.4% and stETH 9.8%.
MAKER_ETH_COLLATERAL_USD = (0.114 + 0.098) * 8.4e9


@pytest.fixture(scope="module")
def ecosystem() -> Scenario:
    return load("ecosystem")


@pytest.fixture(scope="module")
def short_run() -> RunResult:
    """50 steps (the crash is at 24-26, the first credit line about step 45) with 300
    positions per protocol instead of up to 5,000: the same world, a smaller book."""
    smaller = {f"protocols.{k}.params.positions": 300 for k in range(15)}
    scenario = load("ecosystem", {**smaller, "protocols.maker.params.vaults": 300})
    return run(scenario, steps=50)


def test_at_least_twelve_protocols_of_four_types_share_the_assets(ecosystem: Scenario) -> None:
    protocols = ecosystem.protocols
    assert len(protocols) == 16
    assert {p.type for p in protocols} == {"lending", "comet", "perp", "options", "cdp"}
    assert list(ecosystem.market.assets) == ["ETH", "BTC", "DAI"]
    uses = {
        p.id: get_protocol_class(p.type).Params.model_validate(p.params).referenced_assets()
        for p in protocols
    }
    users = {a: [p for p in protocols if a in uses[p.id]] for a in ("ETH", "BTC")}
    assert len(users["ETH"]) == 16  # every protocol is exposed to ETH
    assert len(users["BTC"]) == 10
    assert {p.type for p in users["BTC"]} >= {"lending", "perp"}


def test_sizes_are_the_snapshots_figures(ecosystem: Scenario) -> None:
    by_id = {p.id: p.params for p in ecosystem.protocols}
    assert set(by_id) == set(LENDING_SNAPSHOT) | set(PERP_TVL) | set(OPTIONS_TVL) | {"maker"}
    assert by_id["maker"]["collateral_usd"] == pytest.approx(MAKER_ETH_COLLATERAL_USD, rel=1e-4)
    for pid, (tvl, borrowed) in LENDING_SNAPSHOT.items():
        # DefiLlama's lending TVL is net of borrows: supplied = TVL + borrowed.
        assert by_id[pid]["deposits_usd"] == pytest.approx((tvl + borrowed) * 1e6, rel=1e-9)
        assert by_id[pid]["utilization"] == pytest.approx(borrowed / (tvl + borrowed), abs=1e-4)
    for pid, tvl in PERP_TVL.items():
        assert by_id[pid]["vault_usd"] == pytest.approx(tvl * 1e6, rel=1e-9)
    for pid, tvl in OPTIONS_TVL.items():
        assert by_id[pid]["capital_usd"] == pytest.approx(tvl * 1e6, rel=1e-9)
    # Binance daily opens of 27 June 2023.
    assert ecosystem.market.assets["ETH"].price == 1858.97
    assert ecosystem.market.assets["BTC"].price == 30267.99


def test_a_short_run_has_a_contagion_graph_with_credit_between_types(
    short_run: RunResult,
) -> None:
    graph = contagion_graph(short_run)
    protocols = [n for n, d in graph.nodes(data=True) if d["kind"] == "protocol"]
    assert len(protocols) == 16 and graph.number_of_nodes() == 19  # + ETH, BTC, DAI
    credit = [(u, v) for u, v, d in graph.edges(data=True) if d["channel"] == "credit"]
    collateral = [(u, v) for u, v, d in graph.edges(data=True) if d["channel"] == "collateral"]
    assert len(collateral) >= 15  # each protocol is exposed to at least one asset
    assert len(credit) >= 9  # each lending pool has lent to a venue in the run
    types = graph.nodes(data="type")
    assert {types[u] for u, _ in credit} <= {"lending", "comet"}
    assert {types[v] for _, v in credit} <= {"perp", "options"}
    assert sum(graph.edges[e]["weight"] for e in credit) > 0.0


def test_the_crash_liquidates_maker_vaults_in_dutch_auctions(short_run: RunResult) -> None:
    auctions = short_run.summary["auctions"]
    assert auctions["kicks"] > 0 and auctions["takes"] > 0  # keepers took the lots
    assert auctions["deals"] == 0  # clip.sol: no English deals
    assert short_run.summary["auctioned_collateral_usd"] > 0.0
    kicks = short_run.events[short_run.events["kind"] == "auction_kick"]
    assert (kicks["step"] >= 24).all()  # the -30% on day 2 did it, not the calm day
