"""Tests of :mod:`liqnet.scenarios.run`: ``run()``, its determinism, the feedback twin, saving.

Worlds are kept small (500 positions per protocol) and horizons short.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from liqnet.protocols import LEVER_NAMES
from liqnet.scenarios import RunResult, Scenario, load, run
from liqnet.scenarios.loader import validate

SMALL: dict[str, Any] = {f"protocols.{i}.params.positions": 500 for i in range(3)}
"""Overrides shrinking every protocol of the built-ins to 500 positions."""

SAVED_FILES = {
    "timeseries.parquet",
    "events.parquet",
    "credit.parquet",
    "credit_lines.parquet",
    "summary.json",
    "scenario.json",
    "run.png",
}
SUMMARY_KEYS = {
    "steps",
    "liquidations_by_protocol",
    "zero_bid_collateral_usd",
    "auctioned_collateral_usd",
    "auctions",
    "bad_debt_usd",
    "realised_bad_debt_usd",
    "unrealised_bad_debt_usd",
    "liquidated_usd",
    "liquidated_notional_usd",
    "liquidations",
    "hedge_trades",
    "hedged_usd",
    "max_cascade_rounds",
    "cascade_steps",
    "max_drawdown",
    "max_drawdown_by_asset",
    "defaults",
    "liquidity_shortfall_usd",
    "equity_change_usd",
    "min_equity_usd",
    "oracle_updates",
    "credit_opened_usd",
    "credit_losses_usd",
    "credit_losses_total_usd",
    "revenue_usd",
    "adl_usd",
    "haircut_usd",
    "haircut_total_usd",
}
CRASH_STEPS = 40  # past the crash (steps 20-23) and into the recovery


def small(name: str, **overrides: Any) -> Scenario:
    """A built-in scenario with 500 positions per protocol and extra overrides."""
    return load(name, {**SMALL, **overrides})


def expected_columns(scenario: Scenario) -> set[str]:
    """The timeseries columns a run of ``scenario`` must have."""
    columns = {"step", "regime", "gas_multiplier", "cascade_rounds", "liquidations"}
    for asset in scenario.market.assets:
        columns |= {f"{asset}.reference", f"{asset}.pool", f"{asset}.oracle"}
    for spec in scenario.protocols:
        columns |= {f"{spec.id}.{k}" for k in ("equity", "cash", "bad_debt", "liquidated")}
        columns |= {f"{spec.id}.{k}" for k in ("shortfall", "credit_lent", "credit_borrowed")}
        columns |= {f"{spec.id}.credit_losses", f"{spec.id}.revenue"}
        columns |= {f"{spec.id}.exposure.{asset}" for asset in scenario.market.assets}
        columns |= {f"{spec.id}.lever.{lever}" for lever in LEVER_NAMES}
    return columns


def reference_columns(frame: pd.DataFrame) -> list[str]:
    """The reference-price columns of a timeseries."""
    return [c for c in frame.columns if c.endswith(".reference")]


@pytest.fixture(scope="module")
def crash() -> RunResult:
    """flash_crash (small world) run through the crash, with feedback."""
    return run(small("flash_crash"), steps=CRASH_STEPS)


@pytest.fixture(scope="module")
def crash_twin() -> RunResult:
    """The ``feedback=False`` counterfactual twin of :func:`crash`."""
    return run(small("flash_crash"), steps=CRASH_STEPS, feedback=False)


# -- shape ---------------------------------------------------------------------------------


def test_run_returns_steps_plus_one_rows_and_expected_columns() -> None:
    scenario = small("baseline")
    result = run(scenario, steps=12)
    assert isinstance(result, RunResult)
    assert result.scenario == scenario
    assert (result.seed, result.feedback) == (scenario.seed, scenario.feedback)
    ts = result.timeseries
    assert len(ts) == 13
    assert ts["step"].tolist() == list(range(13))
    assert set(ts.columns) == expected_columns(scenario)
    assert list(ts.index) == list(range(13))
    assert result.summary["steps"] == 12
    # The first row is the initial state.
    for asset, spec in scenario.market.assets.items():
        assert ts[f"{asset}.reference"].iloc[0] == pytest.approx(spec.price)


def test_run_defaults_to_the_scenario_horizon() -> None:
    result = run(small("baseline", steps=6))
    assert len(result.timeseries) == 7
    assert result.summary["steps"] == 6


def test_run_accepts_a_builtin_name() -> None:
    result = run("flash_crash", steps=3)
    assert result.scenario == load("flash_crash")
    assert len(result.timeseries) == 4


def test_events_columns_and_steps(crash: RunResult) -> None:
    events = crash.events
    assert len(events) > 0
    assert {"step", "round", "kind", "protocol", "asset", "repaid_usd"} <= set(events.columns)
    assert events["step"].between(1, CRASH_STEPS).all()
    assert events["step"].is_monotonic_increasing
    assert set(events["protocol"]) <= {"aave", "compound", "dydx"}
    assert (events["round"] < crash.scenario.market.max_cascade_rounds).all()
    # The per-step count in the timeseries agrees with the event log.
    assert crash.timeseries["liquidations"].sum() == len(events)
    per_step = events.groupby("step").size()
    ts = crash.timeseries.set_index("step")
    assert (ts.loc[per_step.index, "liquidations"] == per_step).all()


# -- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_identical_results() -> None:
    first = run(small("flash_crash"), seed=11, steps=CRASH_STEPS)
    second = run(small("flash_crash"), seed=11, steps=CRASH_STEPS)
    assert len(first.events) > 0
    assert_frame_equal(first.timeseries, second.timeseries)
    assert_frame_equal(first.events, second.events)
    assert first.summary == second.summary
    assert first.defaults == second.defaults


def test_seed_argument_equals_seed_in_the_scenario() -> None:
    by_argument = run(small("baseline"), seed=11, steps=10)
    by_scenario = run(small("baseline", seed=11), steps=10)
    assert by_argument.seed == by_scenario.seed == 11
    assert_frame_equal(by_argument.timeseries, by_scenario.timeseries)


def test_different_seed_gives_different_paths() -> None:
    first = run(small("baseline"), seed=1, steps=10)
    second = run(small("baseline"), seed=2, steps=10)
    assert (first.seed, second.seed) == (1, 2)
    for column in reference_columns(first.timeseries):
        assert not np.array_equal(first.timeseries[column], second.timeseries[column])


# -- the feedback=False twin ---------------------------------------------------------------


def test_twin_has_the_same_exogenous_path_before_the_first_liquidation(
    crash: RunResult, crash_twin: RunResult
) -> None:
    assert (crash.feedback, crash_twin.feedback) == (True, False)
    liquidating = pd.concat([crash.timeseries, crash_twin.timeseries]).query("liquidations > 0")
    first = int(liquidating["step"].min())
    assert first >= 20  # no liquidation before the scripted crash (steps 20-23)
    columns = reference_columns(crash.timeseries)
    before = crash.timeseries["step"] < first
    assert_frame_equal(
        crash.timeseries.loc[before, columns], crash_twin.timeseries.loc[before, columns]
    )
    # The feedback is what separates them afterwards: forced sales push ETH lower.
    eth, eth_twin = crash.timeseries["ETH.reference"], crash_twin.timeseries["ETH.reference"]
    assert not np.array_equal(eth, eth_twin)
    assert eth.min() < eth_twin.min()


def test_twin_reference_path_does_not_depend_on_the_protocols(crash_twin: RunResult) -> None:
    """Without feedback the reference prices are purely exogenous: world size is irrelevant."""
    bigger = run(
        load("flash_crash", {"protocols.0.params.positions": 3000}),
        steps=CRASH_STEPS,
        feedback=False,
    )
    assert len(bigger.events) != len(crash_twin.events)
    columns = reference_columns(crash_twin.timeseries)
    assert_frame_equal(bigger.timeseries[columns], crash_twin.timeseries[columns])


# -- summary -------------------------------------------------------------------------------


def test_summary_keys_and_consistency(crash: RunResult) -> None:
    summary, events, ts = crash.summary, crash.events, crash.timeseries
    assert set(summary) == SUMMARY_KEYS
    assert summary["steps"] == CRASH_STEPS
    assert summary["liquidations"] == int((events["kind"] == "liquidation").sum())
    assert summary["hedge_trades"] == int((events["kind"] == "hedge").sum())
    assert summary["liquidated_usd"] == pytest.approx(events["repaid_usd"].sum())
    assert summary["bad_debt_usd"] == pytest.approx(
        summary["realised_bad_debt_usd"] + summary["unrealised_bad_debt_usd"]
    )
    assert summary["realised_bad_debt_usd"] >= 0.0
    assert summary["unrealised_bad_debt_usd"] >= 0.0
    assert summary["defaults"] == len(crash.defaults)
    assert summary["max_cascade_rounds"] == ts["cascade_rounds"].max()
    assert summary["cascade_steps"] == int((ts["cascade_rounds"] >= 2).sum())
    by_asset = summary["max_drawdown_by_asset"]
    assert set(by_asset) == set(crash.scenario.market.assets)
    assert summary["max_drawdown"] == max(by_asset.values())
    assert by_asset["ETH"] > 0.3  # the scripted fall is 35%
    ids = {p.id for p in crash.scenario.protocols}
    assert set(summary["equity_change_usd"]) == set(summary["min_equity_usd"]) == ids
    for pid in ids:
        assert summary["min_equity_usd"][pid] == pytest.approx(ts[f"{pid}.equity"].min())
    assert summary["credit_losses_total_usd"] == pytest.approx(
        sum(summary["credit_losses_usd"].values())
    )
    assert summary["haircut_total_usd"] == pytest.approx(sum(summary["haircut_usd"].values()))


def test_summary_of_a_quiet_run_has_no_liquidations() -> None:
    result = run(small("baseline"), steps=3)
    assert len(result.events) == 0
    assert result.summary["liquidations"] == 0
    assert result.summary["liquidated_usd"] == 0.0
    assert result.summary["max_cascade_rounds"] == 0


# -- saving --------------------------------------------------------------------------------


def test_save_writes_all_files_and_no_temporaries(crash: RunResult, tmp_path: Path) -> None:
    out = crash.save(tmp_path / "nested" / "out")
    assert out == tmp_path / "nested" / "out"
    names = {p.name for p in out.iterdir()}
    assert names == SAVED_FILES
    assert not [n for n in names if n.startswith(".")]
    assert (out / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_non_finite_summary_is_refused_before_anything_is_written(
    crash: RunResult, tmp_path: Path
) -> None:
    # Issue 19: 1e308 deposits wrote NaN/Infinity into summary.json (invalid JSON).
    import dataclasses

    broken = dataclasses.replace(crash, summary={**crash.summary, "aave": {"equity": np.inf}})
    with pytest.raises(ValueError, match=r"non-finite values at \['summary.aave.equity'\]"):
        broken.save(tmp_path / "out", figure=False)
    assert not (tmp_path / "out").exists()


def test_saved_parquet_round_trips(crash: RunResult, tmp_path: Path) -> None:
    out = crash.save(tmp_path, figure=False)
    assert_frame_equal(pd.read_parquet(out / "timeseries.parquet"), crash.timeseries)
    assert_frame_equal(pd.read_parquet(out / "events.parquet"), crash.events)


def test_saved_json_matches_the_result(crash: RunResult, tmp_path: Path) -> None:
    out = crash.save(tmp_path, figure=False)
    payload = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert payload["scenario"] == "flash_crash"
    assert (payload["seed"], payload["feedback"]) == (crash.seed, crash.feedback)
    assert payload["summary"] == json.loads(json.dumps(crash.summary))
    assert payload["defaults"] == json.loads(json.dumps(crash.defaults, default=float))
    # scenario.json is the validated scenario again (JSON turns tuples into lists).
    saved = json.loads((out / "scenario.json").read_text(encoding="utf-8"))
    assert validate(saved) == crash.scenario


def test_save_without_figure(crash_twin: RunResult, tmp_path: Path) -> None:
    crash_twin.save(tmp_path, figure=False)
    assert {p.name for p in tmp_path.iterdir()} == SAVED_FILES - {"run.png"}


def test_save_with_no_events_round_trips(tmp_path: Path) -> None:
    result = run(small("baseline"), steps=2)
    result.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == SAVED_FILES
    events = pd.read_parquet(tmp_path / "events.parquet")
    assert len(events) == 0
    assert list(events.columns) == list(result.events.columns)


def test_failed_figure_leaves_no_temporary_file(
    crash_twin: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import liqnet.core.figures as figures

    def broken(result: RunResult, path: str | Path) -> None:
        Path(path).write_bytes(b"half a png")
        raise RuntimeError("plot failed")

    monkeypatch.setattr(figures, "plot_run", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        crash_twin.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert "run.png" not in names
    assert not [n for n in names if n.startswith(".")]


# -- known bugs ----------------------------------------------------------------------------


def test_empty_events_keep_string_columns() -> None:
    empty = run(small("baseline"), steps=2).events
    assert len(empty) == 0
    for column in ("kind", "protocol", "book", "asset"):
        assert pd.api.types.is_string_dtype(empty[column]), (column, empty[column].dtype)


def test_saved_files_share_the_same_permissions(crash_twin: RunResult, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        crash_twin.save(tmp_path)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert len(set(modes.values())) == 1, modes


def test_shock_and_gas_spike_with_the_same_step_coincide() -> None:
    scenario = small(
        "baseline",
        shocks=[{"step": 5, "asset": "ETH", "return": -0.5}],
        gas_spikes=[{"step": 5, "duration_steps": 1, "multiplier": 50.0}],
    )
    ts = run(scenario, steps=8, feedback=False).timeseries
    spike_step = int(ts.loc[ts["gas_multiplier"] == 50.0, "step"].iloc[0])
    log_moves = np.log(ts["ETH.reference"]).diff()
    shock_step = int(ts.loc[log_moves.idxmin(), "step"])
    assert shock_step == spike_step
