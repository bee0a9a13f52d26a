"""Tests of :mod:`liqnet.scenarios.loader`: built-ins, ``base`` inheritance, overrides.

Bad input (one :class:`ScenarioError` naming the field) is in ``test_scenarios_loader_errors``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from liqnet.scenarios import Scenario, builtin_names, load
from liqnet.scenarios.loader import apply_overrides, parse_override_value, resolve_raw
from tests.helpers.scenario_files import MINIMAL_TOML, write_toml

BUILTINS = [
    "bank_run",
    "baseline",
    "black_thursday",
    "credit_crunch",
    "ecosystem",
    "flash_crash",
    "vol_crush",
    "vol_regime",
]


# -- built-ins ---------------------------------------------------------------------------


def test_builtin_names_lists_the_shipped_scenarios() -> None:
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_loads_and_validates(name: str) -> None:
    scenario = load(name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == name
    assert scenario.steps >= 1
    assert scenario.description
    ids = [p.id for p in scenario.protocols]
    assert len(ids) == len(set(ids)) >= 1
    assert {p.type for p in scenario.protocols} <= {"lending", "comet", "perp", "options", "cdp"}
    # Protocol params are validated by the protocol's own model: defaults are filled in.
    for spec in scenario.protocols:
        if spec.type == "cdp":  # vaults, not positions; no depositors to run
            assert "vaults" in spec.params and "asleep_share" in spec.params
            continue
        assert "positions" in spec.params
        assert "risk_memory_days" in spec.params
    for shock in scenario.shocks:
        assert shock.asset in scenario.market.assets
        assert 0 <= shock.step < scenario.steps


def test_loading_twice_gives_equal_scenarios() -> None:
    assert load("flash_crash") == load("flash_crash")


# -- base inheritance ----------------------------------------------------------------------


def test_flash_crash_inherits_baseline_protocols_and_market() -> None:
    baseline, crash = load("baseline"), load("flash_crash")
    assert crash.protocols == baseline.protocols
    assert crash.market == baseline.market
    assert crash.liquidators == baseline.liquidators
    assert crash.arbitrageurs == baseline.arbitrageurs
    assert crash.seed == baseline.seed
    # ... and overrides its own fields.
    assert (crash.steps, crash.dt_hours) == (96, 0.25)
    assert baseline.shocks == []
    assert len(crash.shocks) == 12
    assert crash.shocks[0].step == 20
    assert crash.shocks[0].return_ == pytest.approx(-0.10)


def test_resolved_raw_table_has_no_base_key() -> None:
    raw, origin = resolve_raw("flash_crash")
    assert "base" not in raw
    assert "flash_crash" in origin
    assert [p["id"] for p in raw["protocols"]] == ["aave", "compound", "dydx"]


def test_base_merges_tables_key_by_key() -> None:
    regime, baseline = load("vol_regime"), load("baseline")
    eth, base_eth = regime.market.assets["ETH"], baseline.market.assets["ETH"]
    assert eth.jump_intensity == 30.0
    assert (eth.price, eth.volatility, eth.pool_usd) == (
        base_eth.price,
        base_eth.volatility,
        base_eth.pool_usd,
    )
    assert regime.market.regimes.initial == 1
    assert regime.market.correlations == baseline.market.correlations


def test_base_replaces_arrays_whole() -> None:
    bank = load("bank_run")
    aave = next(p for p in bank.protocols if p.id == "aave")
    # bank_run's own [[protocols]] replace baseline's: no BTC collateral is merged in.
    assert set(aave.params["collateral"]) == {"ETH"}
    assert aave.params["utilization"] == pytest.approx(0.85)
    assert aave.params["run_sensitivity"] == pytest.approx(12.0)


def test_file_can_extend_a_builtin(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "mine.toml", 'base = "baseline"\nname = "mine"\nsteps = 24\n')
    scenario = load(path)
    assert (scenario.name, scenario.steps) == ("mine", 24)
    assert scenario.protocols == load("baseline").protocols


def test_relative_base_path_is_resolved_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "scenarios"
    write_toml(folder, "parent.toml", MINIMAL_TOML)
    child = write_toml(folder, "child.toml", 'base = "parent.toml"\nname = "child"\n')
    monkeypatch.chdir(tmp_path)  # parent.toml is not in the working directory
    scenario = load(child)
    assert (scenario.name, scenario.steps) == ("child", 10)
    assert [p.id for p in scenario.protocols] == ["pool"]


# -- overrides -----------------------------------------------------------------------------


def test_dotted_override_changes_a_nested_value() -> None:
    scenario = load("baseline", {"market.assets.ETH.volatility": 0.9})
    assert scenario.market.assets["ETH"].volatility == 0.9
    assert load("baseline").market.assets["ETH"].volatility == pytest.approx(0.70)


def test_override_selects_list_element_by_index() -> None:
    scenario = load("baseline", {"protocols.1.params.positions": 500})
    assert [p.params["positions"] for p in scenario.protocols] == [10_000, 500, 10_000]


def test_override_selects_list_element_by_id() -> None:
    scenario = load("baseline", {"protocols.aave.params.run_sensitivity": 9.5})
    by_id = {p.id: p.params for p in scenario.protocols}
    assert by_id["aave"]["run_sensitivity"] == 9.5
    assert by_id["compound"]["run_sensitivity"] == pytest.approx(3.0)


def test_override_by_id_in_an_inherited_list() -> None:
    scenario = load("flash_crash", {"protocols.dydx.params.lp_run_sensitivity": 7.0})
    assert scenario.protocols[2].params["lp_run_sensitivity"] == 7.0


def test_override_replaces_a_whole_list_and_adds_tables() -> None:
    scenario = load(
        "flash_crash",
        {
            "shocks": [{"step": 1, "asset": "BTC", "return": -0.2}],
            "protocols.compound.params.collateral.BTC": {"share": 0.5},
        },
    )
    assert len(scenario.shocks) == 1
    assert (scenario.shocks[0].asset, scenario.shocks[0].return_) == ("BTC", -0.2)
    assert set(scenario.protocols[1].params["collateral"]) == {"ETH", "BTC"}


def test_apply_overrides_does_not_mutate_its_input() -> None:
    raw, _ = resolve_raw("baseline")
    before = copy.deepcopy(raw)
    changed = apply_overrides(raw, {"protocols.0.params.positions": 1, "steps": 3})
    assert raw == before
    assert changed["steps"] == 3
    assert changed["protocols"][0]["params"]["positions"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.9", 0.9),
        ("7", 7),
        ("-1", -1),
        ("true", True),
        ("false", False),
        ("[1,2]", [1, 2]),
        ("[0.5, 0.5]", [0.5, 0.5]),
        ('"quoted"', "quoted"),
        ("{ share = 0.5 }", {"share": 0.5}),
        ("abc", "abc"),
        ("ETH/BTC", "ETH/BTC"),
        ("hello world", "hello world"),
    ],
)
def test_parse_override_value(text: str, expected: object) -> None:
    value = parse_override_value(text)
    assert value == expected
    assert type(value) is type(expected)
