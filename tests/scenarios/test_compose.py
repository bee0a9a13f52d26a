"""Tests of :mod:`liqnet.scenarios.compose`: removing, replacing and merging what a base
scenario defines (``[remove]``, ``[protocols.ID]``, ``replace = true``).

Bad compose input (one ScenarioError naming the field) is in ``test_compose_errors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols.registry import get_protocol_class
from liqnet.scenarios import builtin_names, load
from liqnet.scenarios.compose import deep_merge
from liqnet.scenarios.loader import read_raw, resolve_raw, validate
from tests.helpers.scenario_files import MINIMAL_TOML, write_toml

ETH_ONLY = """\
base = "baseline"
name = "eth_only"

[remove]
assets = ["BTC"]

[protocols.aave]
replace = true
type = "lending"
[protocols.aave.params]
deposits_usd = 200e6
utilization = 0.70
positions = 300
[protocols.aave.params.collateral.ETH]
share = 1.0

[protocols.compound.params]
positions = 300

[protocols.dydx]
replace = true
type = "perp"
[protocols.dydx.params]
vault_usd = 100e6
open_interest_usd = 150e6
positions = 300
[protocols.dydx.params.markets.ETH]
share = 1.0
"""
"""Baseline without BTC: the two protocols using BTC replaced, compound merged."""


def merged_the_old_way(name: str) -> dict[str, Any]:
    """A built-in's raw table as the loader composed it before compose forms existed:
    the ``base`` chain deep-merged (tables key by key, arrays replaced)."""
    raw, _ = read_raw(name)
    base = raw.pop("base", None)
    return raw if base is None else deep_merge(merged_the_old_way(base), raw)


def uses_compose_forms(raw: dict[str, Any]) -> bool:
    """Whether a file uses ``[remove]``, keyed protocol tables or ``replace`` flags."""
    assets = raw.get("market", {}).get("assets", {})
    return (
        "remove" in raw
        or isinstance(raw.get("protocols"), dict)
        or any(isinstance(a, dict) and "replace" in a for a in assets.values())
    )


# -- built-ins are composed exactly as before ------------------------------------------------


@pytest.mark.parametrize(
    "name", [n for n in builtin_names() if not uses_compose_forms(read_raw(n)[0])]
)
def test_builtins_resolve_exactly_as_before(name: str) -> None:
    old = merged_the_old_way(name)
    raw, origin = resolve_raw(name)
    assert raw == old
    assert load(name) == validate(old, origin)


# -- removing an asset ------------------------------------------------------------------------


def test_a_btc_free_world_loads_and_runs(tmp_path: Path) -> None:
    scenario = load(write_toml(tmp_path, "eth_only.toml", ETH_ONLY), {"steps": 4})
    baseline = load("baseline")
    assert list(scenario.market.assets) == ["ETH"]
    assert scenario.market.assets["ETH"] == baseline.market.assets["ETH"]
    # The base's ETH/BTC correlation went with BTC.
    assert scenario.market.correlations == {}
    assert [p.id for p in scenario.protocols] == ["aave", "compound", "dydx"]
    by_id = {p.id: p for p in scenario.protocols}
    assert set(by_id["aave"].params["collateral"]) == {"ETH"}
    assert set(by_id["dydx"].params["markets"]) == {"ETH"}
    # compound was merged: its baseline params stay, only positions changed.
    base_compound = next(p for p in baseline.protocols if p.id == "compound")
    assert by_id["compound"].params == {**base_compound.params, "positions": 300}
    model = MarketModel(scenario, seed=3)
    cash, units = model.total_cash(), model.total_units()
    for _ in range(4):
        model.step()
    assert model.step_index == 4
    assert set(model.oracle_prices) == {"ETH"}
    assert np.isfinite(model.oracle_prices["ETH"])
    assert model.total_cash() == pytest.approx(cash, abs=1e-3)  # USD; balances ~1e8
    assert model.total_units() == pytest.approx(units, abs=1e-9)


def test_removing_an_asset_drops_the_base_shocks_on_it(tmp_path: Path) -> None:
    parent = write_toml(
        tmp_path,
        "parent.toml",
        'base = "baseline"\nname = "p"\n'
        '[[shocks]]\nstep = 2\nasset = "BTC"\nreturn = -0.1\n'
        '[[shocks]]\nstep = 3\nasset = "ETH"\nreturn = -0.2\n',
    )
    child = ETH_ONLY.replace('base = "baseline"', f'base = "{parent.name}"')
    scenario = load(write_toml(tmp_path, "child.toml", child))
    assert [(s.step, s.asset) for s in scenario.shocks] == [(3, "ETH")]


def test_a_removed_asset_can_be_defined_again_from_scratch(tmp_path: Path) -> None:
    text = (
        'base = "baseline"\nname = "new_btc"\n[remove]\nassets = ["BTC"]\n'
        "[market.assets.BTC]\nprice = 50000.0\nvolatility = 0.5\n"
    )
    scenario = load(write_toml(tmp_path, "s.toml", text))
    btc = scenario.market.assets["BTC"]
    assert (btc.price, btc.jump_intensity, btc.pool_usd) == (50000.0, 0.0, 100e6)
    assert scenario.market.correlations == {}  # removed with the old BTC
    assert scenario.protocols == load("baseline").protocols  # their BTC references hold


def test_replace_true_replaces_an_asset_and_keeps_its_correlations(tmp_path: Path) -> None:
    text = (
        'base = "baseline"\nname = "s"\n'
        "[market.assets.BTC]\nreplace = true\nprice = 50000.0\nvolatility = 0.5\n"
    )
    scenario, baseline = load(write_toml(tmp_path, "s.toml", text)), load("baseline")
    assert scenario.market.assets["BTC"].jump_intensity == 0.0  # not merged from baseline
    assert scenario.market.assets["ETH"] == baseline.market.assets["ETH"]
    assert scenario.market.correlations == baseline.market.correlations


# -- protocols by id ------------------------------------------------------------------------


def test_a_keyed_protocol_table_merges_into_that_protocol_only(tmp_path: Path) -> None:
    text = 'base = "baseline"\nname = "s"\n[protocols.aave.params]\nutilization = 0.9\n'
    scenario, baseline = load(write_toml(tmp_path, "s.toml", text)), load("baseline")
    assert [p.id for p in scenario.protocols] == ["aave", "compound", "dydx"]
    assert scenario.protocols[0].params == {**baseline.protocols[0].params, "utilization": 0.9}
    assert scenario.protocols[1:] == baseline.protocols[1:]


def test_replace_true_replaces_one_protocol_wholesale(tmp_path: Path) -> None:
    text = (
        'base = "baseline"\nname = "s"\n[protocols.dydx]\nreplace = true\ntype = "perp"\n'
        "[protocols.dydx.params]\npositions = 100\n"
    )
    scenario, baseline = load(write_toml(tmp_path, "s.toml", text)), load("baseline")
    dydx = scenario.protocols[2]
    # Nothing of baseline's dydx is merged in: its params are the perp type's defaults.
    defaults = get_protocol_class("perp").Params.model_validate({"positions": 100})
    assert (dydx.id, dydx.params) == ("dydx", defaults.model_dump(mode="json"))
    assert baseline.protocols[2].params != dydx.params
    assert scenario.protocols[:2] == baseline.protocols[:2]


def test_a_new_id_is_appended(tmp_path: Path) -> None:
    text = (
        'base = "baseline"\nname = "s"\n[protocols.spark]\ntype = "lending"\n'
        "levers = { lend = 0.5 }\n[protocols.spark.params]\npositions = 100\n"
    )
    scenario, baseline = load(write_toml(tmp_path, "s.toml", text)), load("baseline")
    assert [p.id for p in scenario.protocols] == ["aave", "compound", "dydx", "spark"]
    assert scenario.protocols[:3] == baseline.protocols
    assert scenario.protocols[3].levers == {"lend": 0.5}


def test_removing_a_protocol_keeps_the_others_in_order(tmp_path: Path) -> None:
    text = 'base = "baseline"\nname = "s"\n[remove]\nprotocols = ["compound"]\n'
    scenario, baseline = load(write_toml(tmp_path, "s.toml", text)), load("baseline")
    assert scenario.protocols == [baseline.protocols[0], baseline.protocols[2]]
    assert scenario.market == baseline.market


def test_a_protocols_array_still_replaces_the_whole_list(tmp_path: Path) -> None:
    text = 'base = "baseline"\nname = "s"\n[[protocols]]\nid = "only"\ntype = "lending"\n'
    assert [p.id for p in load(write_toml(tmp_path, "s.toml", text)).protocols] == ["only"]


def test_keyed_protocols_work_without_a_base(tmp_path: Path) -> None:
    text = MINIMAL_TOML.replace('[[protocols]]\nid = "pool"\n', "[protocols.pool]\n").replace(
        "[protocols.params]", "[protocols.pool.params]"
    )
    assert load(write_toml(tmp_path, "s.toml", text)) == load(
        write_toml(tmp_path, "m.toml", MINIMAL_TOML)
    )


def test_compose_forms_chain_through_bases(tmp_path: Path) -> None:
    write_toml(tmp_path, "eth_only.toml", ETH_ONLY)
    text = 'base = "eth_only.toml"\nname = "s"\n[remove]\nprotocols = ["dydx"]\n'
    scenario = load(write_toml(tmp_path, "s.toml", text))
    assert [p.id for p in scenario.protocols] == ["aave", "compound"]
    assert list(scenario.market.assets) == ["ETH"]


def test_overrides_apply_after_composition(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "eth_only.toml", ETH_ONLY)
    scenario = load(
        path,
        {"protocols.dydx.params.markets.ETH.share": 0.5, "protocols.1.params.positions": 50},
    )
    assert scenario.protocols[2].params["markets"]["ETH"]["share"] == 0.5
    assert scenario.protocols[1].params["positions"] == 50
