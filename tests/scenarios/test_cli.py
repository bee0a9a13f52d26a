"""Tests of the ``liqnet`` command line (:mod:`liqnet.scenarios.cli`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from liqnet.scenarios import builtin_names
from liqnet.scenarios.cli import main, parse_assignments
from liqnet.scenarios.loader import ScenarioError

SMALL_SETS = [f"--set=protocols.{i}.params.positions=500" for i in range(3)]
"""``--set`` options shrinking every built-in protocol to 500 positions."""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal, so rich never wraps the messages the tests look for."""
    monkeypatch.setenv("COLUMNS", "250")


def flat(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space."""
    return " ".join(text.split())


def test_run_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "crash"
    argv = ["run", "flash_crash", "--seed", "3", "--set", "steps=40", *SMALL_SETS]
    argv += ["--set", "protocols.aave.params.run_sensitivity=9.5"]
    code = main([*argv, "--out", str(out), "--no-figure"])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {
        "timeseries.parquet",
        "credit.parquet",
        "credit_lines.parquet",
        "events.parquet",
        "summary.json",
        "scenario.json",
    }
    payload = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (payload["scenario"], payload["seed"], payload["feedback"]) == ("flash_crash", 3, True)
    assert payload["summary"]["steps"] == 40
    scenario = json.loads((out / "scenario.json").read_text(encoding="utf-8"))
    assert scenario["steps"] == 40
    assert [p["params"]["positions"] for p in scenario["protocols"]] == [500, 500, 500]
    assert scenario["protocols"][0]["params"]["run_sensitivity"] == 9.5
    assert len(pd.read_parquet(out / "timeseries.parquet")) == 41
    printed = flat(capsys.readouterr().out)
    assert "flash_crash (seed 3, feedback True)" in printed
    assert "wrote" in printed


def test_run_with_figure_and_no_feedback(tmp_path: Path) -> None:
    out = tmp_path / "twin"
    argv = ["run", "baseline", "--set", "steps=4", *SMALL_SETS, "--no-feedback"]
    code = main([*argv, "--out", str(out)])
    assert code == 0
    assert (out / "run.png").read_bytes()[:4] == b"\x89PNG"
    payload = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (payload["seed"], payload["feedback"]) == (7, False)


def test_run_default_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "baseline", "--set", "steps=2", *SMALL_SETS, "--no-figure"]) == 0
    assert (tmp_path / "runs" / "baseline-seed7" / "summary.json").is_file()


def test_scenarios_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    printed = capsys.readouterr().out
    for name in builtin_names():
        assert name in printed
    assert "168" in printed  # baseline's horizon


@pytest.mark.parametrize(
    ("assignment", "fragments"),
    [
        ("market.assets.ETH.volatility=-1", ["market.assets.ETH.volatility = -1"]),
        ("market.assets.ETH.volatilty=0.9", ["market.assets.ETH.volatilty = 0.9"]),
        ("protocols.9.params.positions=1", ["protocols.9", "'aave'"]),
        ("noequals", ["'noequals'", "KEY=VALUE"]),
        ("=3", ["'=3'", "KEY=VALUE"]),
    ],
)
def test_bad_set_exits_2_naming_the_field(
    assignment: str, fragments: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    code = main(["run", "baseline", "--set", assignment, "--out", str(out), "--no-figure"])
    assert code == 2
    captured = capsys.readouterr()
    printed = flat(captured.out + captured.err)
    assert "error" in printed
    for fragment in fragments:
        assert fragment in printed
    assert not out.exists()  # nothing half-written


def test_horizon_before_a_scripted_shock_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """flash_crash shocks run to step 35: ``steps=30`` is rejected, not silently truncated."""
    out = tmp_path / "never"
    assert main(["run", "flash_crash", "--set", "steps=30", "--out", str(out)]) == 2
    assert "must be <= steps (30)" in flat(capsys.readouterr().out)
    assert not out.exists()


def test_unknown_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_scenario", "--no-figure"]) == 2
    assert "no_such_scenario" in capsys.readouterr().out


def test_missing_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_parse_assignments_parses_values_as_toml() -> None:
    assert parse_assignments(["a.b=1", " c = x ", "d=[1, 2]", "e=true", "f=a=b"]) == {
        "a.b": 1,
        "c": "x",
        "d": [1, 2],
        "e": True,
        "f": "a=b",
    }
    with pytest.raises(ScenarioError, match="KEY=VALUE"):
        parse_assignments(["steps"])


def test_collateral_not_in_market_exits_2(tmp_path: Path) -> None:
    argv = ["run", "baseline", "--set", "protocols.aave.params.collateral.SOL.share=0.5"]
    code = main([*argv, "--out", str(tmp_path / "x"), "--no-figure"])
    assert code == 2


def test_error_shows_bracketed_value(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "baseline", "--set", "protocols.aave.params.collateral=[eth]"])
    assert code == 2
    assert "collateral = '[eth]'" in flat(capsys.readouterr().out)


def test_console_script(tmp_path: Path) -> None:
    """The installed ``liqnet`` script runs flash_crash (its last shock is at step 35)."""
    script = Path(sys.executable).with_name("liqnet")
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    out = tmp_path / "cli"
    completed = subprocess.run(
        [str(script), "run", "flash_crash", "--out", str(out), "--no-figure", "--set", "steps=40"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    payload = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (payload["scenario"], payload["summary"]["steps"]) == ("flash_crash", 40)
    assert (out / "timeseries.parquet").is_file()
