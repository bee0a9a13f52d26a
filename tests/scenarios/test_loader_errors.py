"""Tests of :mod:`liqnet.scenarios.loader` on bad input and bad files.

Every bad input must give one :class:`ScenarioError` whose message names the field path and
the offending value or what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from liqnet.scenarios import load
from liqnet.scenarios.loader import ScenarioError, parse_override_value
from tests.helpers.scenario_files import MINIMAL_TOML, scenario_error, write_toml

BUILTINS = [
    "bank_run",
    "baseline",
    "black_thursday",
    "credit_crunch",
    "flash_crash",
    "vol_crush",
    "vol_regime",
]


# -- bad input: one ScenarioError naming the field and the value ---------------------------


@pytest.mark.parametrize(
    ("name", "overrides", "fragments"),
    [
        pytest.param("baseline", {"foo": 1}, ["foo = 1"], id="unknown-top-level-field"),
        pytest.param(
            "baseline",
            {"market.assets.ETH.volatilty": 0.9},
            ["market.assets.ETH.volatilty = 0.9"],
            id="unknown-nested-field",
        ),
        pytest.param(
            "baseline",
            {"protocols.aave.params.run_sensitivty": 1.0},
            ["protocols.0.params.run_sensitivty = 1.0"],
            id="unknown-protocol-param",
        ),
        pytest.param(
            "baseline",
            {"market.assets.ETH.volatility": -1},
            ["market.assets.ETH.volatility = -1", "greater than 0"],
            id="negative-volatility",
        ),
        pytest.param(
            "baseline",
            {"protocols.aave.params.collateral.ETH.liquidation_threshold": 1.5},
            ["protocols.0.params.collateral.ETH.liquidation_threshold = 1.5", "less than 1"],
            id="liquidation-threshold-above-1",
        ),
        pytest.param("baseline", {"steps": 0}, ["steps = 0", "greater than or equal to 1"]),
        pytest.param("baseline", {"steps": "many"}, ["steps = 'many'", "integer"], id="type"),
        pytest.param("baseline", {"market.assets": 5}, ["market.assets = 5", "dictionary"]),
        pytest.param("baseline", {"protocols": "aave"}, ["protocols = 'aave'", "list"]),
        pytest.param(
            "baseline",
            {"protocols.0.type": "amm"},
            ["protocols.0.type = 'amm'", "allowed", "'lending'", "'perp'"],
            id="unknown-protocol-type",
        ),
        pytest.param(
            "baseline",
            {"protocols.compound.id": "aave"},
            ["protocol ids must be unique", "'aave'"],
            id="duplicate-protocol-ids",
        ),
        pytest.param(
            "flash_crash",
            {"shocks.0.asset": "DOGE"},
            ["shocks[0].asset = 'DOGE'", "'ETH'", "'BTC'"],
            id="shock-unknown-asset",
        ),
        pytest.param(
            "flash_crash",
            {"steps": 20},
            ["shocks[1].step = 21", "steps (20)"],
            id="shock-step-beyond-horizon",
        ),
        pytest.param(
            "baseline",
            {"market.correlations": {"ETH-BTC": 0.5}},
            ["correlations key 'ETH-BTC'", "'ETH'", "'BTC'"],
            id="correlation-key-format",
        ),
        pytest.param(
            "baseline",
            {"market.correlations": {"ETH/DOGE": 0.5}},
            ["correlations key 'ETH/DOGE'"],
            id="correlation-key-unknown-asset",
        ),
        pytest.param(
            "baseline",
            {"market.correlations": {"ETH/ETH": 0.5}},
            ["correlations key 'ETH/ETH'", "two different assets"],
            id="correlation-key-same-asset",
        ),
        pytest.param(
            "baseline",
            {"market.correlations": {"ETH/BTC": 1.0}},
            ["correlations['ETH/BTC'] = 1.0", "(-1, 1)"],
            id="correlation-out-of-range",
        ),
        pytest.param(
            "baseline",
            {
                "market.assets.SOL": {"price": 150.0, "volatility": 0.9},
                "market.correlations": {"ETH/BTC": 0.9, "ETH/SOL": 0.9, "BTC/SOL": -0.9},
            },
            ["market", "positive-definite"],
            id="correlation-not-positive-definite",
        ),
        pytest.param(
            "baseline",
            {"market.regimes.transitions": [[0.9, 0.2], [0.1, 0.9]]},
            ["market.regimes", "transitions", "sum to 1"],
            id="regime-rows-not-summing-to-1",
        ),
        pytest.param(
            "baseline",
            {"market.regimes.transitions": [[1.0]]},
            ["market.regimes", "2x2"],
            id="regime-matrix-shape",
        ),
        pytest.param(
            "baseline",
            {"protocols.aave.params.collateral.ETH.ltv": 0.85},
            ["protocols.0.params.collateral.ETH", "ltv must be below liquidation_threshold"],
            id="ltv-not-below-threshold",
        ),
        pytest.param(
            "baseline",
            {"protocols.5.params.positions": 1},
            ["protocols.5", "0..2", "'aave'", "'compound'", "'dydx'"],
            id="list-index-out-of-range",
        ),
        pytest.param(
            "baseline",
            {"protocols.nope.params.positions": 1},
            ["protocols.nope", "'aave'"],
            id="list-id-unknown",
        ),
        pytest.param(
            "baseline", {"steps.x": 1}, ["'steps'", "is a value (168)"], id="into-a-scalar"
        ),
        pytest.param("baseline", {"market..price": 1}, ["empty key segment"], id="empty-key"),
    ],
)
def test_bad_input_names_field_and_value(
    name: str, overrides: dict[str, Any], fragments: list[str]
) -> None:
    message = scenario_error(name, overrides)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_error_names_every_bad_field() -> None:
    message = scenario_error(
        "baseline", {"steps": 0, "market.assets.BTC.volatility": -2.0, "bogus": True}
    )
    assert "steps = 0" in message
    assert "market.assets.BTC.volatility = -2.0" in message
    assert "bogus = True" in message


def test_error_names_the_origin_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "s.toml", MINIMAL_TOML.replace("steps = 10", "steps = -3"))
    message = scenario_error(path)
    assert str(path) in message
    assert "steps = -3" in message


def test_error_names_bad_params_of_every_protocol() -> None:
    message = scenario_error(
        "baseline", {"protocols.0.params.positions": 0, "protocols.2.params.positions": 0}
    )
    assert "protocols.0.params.positions = 0" in message
    assert "protocols.2.params.positions = 0" in message


def test_override_through_a_scalar_list_element_is_a_scenario_error() -> None:
    message = scenario_error("baseline", {"market.regimes.multipliers.0.x": 1})
    assert "market.regimes.multipliers.0" in message


@pytest.mark.parametrize(
    "key",
    ["market.assets.ETH.price", "protocols.aave.params.deposits_usd", "liquidators.0.capital_usd"],
)
def test_infinite_amount_is_rejected(key: str) -> None:
    message = scenario_error("baseline", {key: float("inf")})
    assert "inf" in message


def test_boolean_for_a_float_field_is_rejected() -> None:
    message = scenario_error("baseline", {"market.assets.ETH.volatility": True})
    assert "market.assets.ETH" in message
    assert "volatility = True: must be a number, not a boolean" in message


# -- files ---------------------------------------------------------------------------------


def test_minimal_file_loads(tmp_path: Path) -> None:
    scenario = load(write_toml(tmp_path, "tiny.toml", MINIMAL_TOML))
    assert scenario.name == "tiny"
    assert list(scenario.market.assets) == ["ETH"]
    assert scenario.protocols[0].params["positions"] == 50


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    message = scenario_error(path)
    assert str(path) in message
    assert "does not exist" in message


def test_unknown_builtin_name_lists_the_builtins() -> None:
    message = scenario_error("no_such_scenario")
    assert "'no_such_scenario'" in message
    for name in BUILTINS:
        assert name in message


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "broken.toml", 'name = "x"\nsteps = \n[[protocols\n')
    message = scenario_error(path)
    assert str(path) in message
    assert "not valid TOML" in message


def test_circular_base(tmp_path: Path) -> None:
    a = write_toml(tmp_path, "a.toml", 'base = "b.toml"\nname = "a"\n')
    write_toml(tmp_path, "b.toml", 'base = "a.toml"\nname = "b"\n')
    message = scenario_error(a)
    assert "circular" in message
    assert "a.toml" in message


def test_self_referencing_base(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "self.toml", 'base = "self.toml"\nname = "s"\n')
    assert "circular" in scenario_error(path)


def test_base_must_be_a_string(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "b.toml", "base = 3\n" + MINIMAL_TOML)
    assert "base = 3" in scenario_error(path)


def test_base_on_missing_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "c.toml", 'base = "gone.toml"\nname = "c"\n')
    message = scenario_error(path)
    assert "gone.toml" in message
    assert "does not exist" in message


def test_loading_never_executes_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    text = MINIMAL_TOML.replace('name = "tiny"', f'name = "tiny"\ndescription = "{payload}"')
    path = write_toml(tmp_path, "evil.toml", text)
    scenario = load(path, {"description": parse_override_value(payload)})
    assert scenario.description == payload
    # A name becomes a folder name, so code-shaped text there is refused, and not run.
    with pytest.raises(ScenarioError, match="name = "):
        load(path, {"name": parse_override_value(payload)})
    assert not marker.exists()


# -- checks made when the world is built ---------------------------------------------------


def test_collateral_asset_not_in_market_is_rejected_at_load() -> None:
    message = scenario_error("baseline", {"protocols.aave.params.collateral.SOL.share": 0.5})
    assert "protocols.0.params" in message
    assert "['SOL']" in message
    assert "'ETH'" in message


def test_perp_market_not_in_market_is_rejected_at_load() -> None:
    message = scenario_error("baseline", {"protocols.dydx.params.markets.SOL": {}})
    assert "protocols.2.params" in message
    assert "['SOL']" in message


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("market.assets.ETH.cex_depth_2pct_usd", 0.0, "greater than or equal to 10000"),
        ("market.assets.BTC.cex_depth_2pct_usd", -1e6, "greater than or equal to 10000"),
        ("market.assets.ETH.daily_volume_usd", 0.0, "greater than or equal to 10000"),
        ("market.impact_y", 11.0, "less than or equal to 10"),
        ("market.impact_y", -0.5, "greater than or equal to 0"),
        ("market.impact_memory_hours", 0.0, "greater than 0"),
        ("market.permanent_impact", 1.5, "less than or equal to 1"),
    ],
)
def test_market_depth_and_impact_bounds_name_the_field(key: str, value: float, shown: str) -> None:
    message = scenario_error("baseline", {key: value})
    assert f"{key} = {value!r}: Input should be {shown}" in message


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        pytest.param(
            {"knots": [[1, 3000.0], [7, 2000.0], [5, 2500.0]]},
            ["market.assets.ETH.replay", "knots[2] = (5, 2500.0): step 5 is not after step 7"],
            id="steps-not-increasing",
        ),
        pytest.param(
            {"knots": [[0, 3000.0]]},
            ["market.assets.ETH.replay", "knots[0] = (0, 3000.0): step 0 is not >= 1"],
            id="step-zero",
        ),
        pytest.param(
            {"knots": [[200, 3000.0]]},
            ["market.assets.ETH.replay.knots[0] = (200, 3000.0)", "<= steps (168)"],
            id="step-beyond-horizon",
        ),
        pytest.param(
            {"knots": []}, ["market.assets.ETH.replay", "give knots", "or csv"], id="no-knots"
        ),
        pytest.param({"mode": "add"}, ["market.assets.ETH.replay", "give knots"], id="only-mode"),
        pytest.param(
            {"knots": [[1, 2e8]]},
            ["market.assets.ETH", "replay.knots[0] = (1, 200000000.0)", "[1e-08, 1e+08]"],
            id="price-above-bound",
        ),
        pytest.param(
            {"knots": [[1, 1e-4]]},
            ["replay.knots[0] = (1, 0.0001)", "(1e-06, 10000.0) times the initial price 3000"],
            id="price-outside-band",
        ),
        pytest.param(
            {"knots": [[1.5, 3000.0]]},
            ["market.assets.ETH.replay.knots.0.0 = 1.5", "integer"],
            id="fractional-step",
        ),
        pytest.param(
            {"knots": [[1, "3000"]]},
            ["market.assets.ETH.replay.knots.0.1 = '3000'", "number"],
            id="string-price",
        ),
        pytest.param(
            {"knots": [[1, 3000.0, 2.0]]},
            ["market.assets.ETH.replay.knots.0", "at most 2 items"],
            id="three-numbers",
        ),
        pytest.param(
            {"knots": [[1, 3000.0]], "mode": "noise"},
            ["market.assets.ETH.replay.mode = 'noise'", "'replace' or 'add'"],
            id="unknown-mode",
        ),
        pytest.param(
            {"knots": [[1, 3000.0]], "volatility": 0.5},
            ["market.assets.ETH.replay.volatility = 0.5", "Extra inputs"],
            id="unknown-field",
        ),
    ],
)
def test_bad_replay_names_the_field(value: dict[str, Any], fragments: list[str]) -> None:
    message = scenario_error("baseline", {"market.assets.ETH.replay": value})
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"
