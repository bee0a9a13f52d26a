"""Tests of policy evaluation: assignments, metrics, the ``liqnet evaluate`` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from liqnet.scenarios import ScenarioError, run
from liqnet.scenarios.cli import main
from liqnet.scenarios.evaluate import METRICS, evaluate, parse_assignment, run_metrics
from tests.helpers.worlds import Small

SMALL_SET = [f"--set=protocols.{k}.params.positions=200" for k in range(3)]


def test_parse_assignment_whole_or_per_protocol(small: Small) -> None:
    scenario = small("baseline", 100)
    assert parse_assignment("bayesian", scenario) == dict.fromkeys(
        ["aave", "compound", "dydx"], "bayesian"
    )
    assert parse_assignment("aave=bayesian, dydx=vol_target:0.5", scenario) == {
        "aave": "bayesian",
        "dydx": "vol_target:0.5",
    }
    # An '=' inside a spec argument is part of the spec.
    assert parse_assignment("forecaster:runs/a=b", scenario)["compound"] == "forecaster:runs/a=b"
    with pytest.raises(ScenarioError, match=r"unknown protocol 'maker'; protocols: \['aave'"):
        parse_assignment("maker=bayesian", scenario)


def test_metrics_follow_their_definitions(small: Small) -> None:
    result = run(small("credit_crunch", 200), seed=0)
    metrics = run_metrics(result)
    s = result.summary
    credit = sum(s["credit_losses_usd"].values())
    negative_equity = sum(max(0.0, -d["equity_usd"]) for d in result.defaults)
    assert result.defaults and credit > 0.0  # the scenario's contagion happened
    assert metrics["default_losses_usd"] == pytest.approx(credit + negative_equity)
    assert metrics["losses_usd"] == pytest.approx(s["bad_debt_usd"] + credit + negative_equity)
    assert metrics["revenue_usd"] == pytest.approx(sum(s["revenue_usd"].values()))
    assert metrics["revenue_usd"] > 0  # interest margin and fees over the run
    assert metrics["defaults"] == len(result.defaults)


def test_evaluate_summarises_mean_and_spread_over_seeds(small: Small) -> None:
    scenario = small("flash_crash", 200)
    result = evaluate(scenario, ["static", "vol_target", "static"], seeds=[0, 1], steps=30)
    assert list(result.summary["policies"]) == ["static", "vol_target"]
    assert len(result.runs) == 4
    static_runs = result.runs[result.runs["policies"] == "static"]
    for metric in METRICS:
        row = result.summary.iloc[0]
        assert row[f"{metric}_mean"] == pytest.approx(static_runs[metric].mean())
        assert row[f"{metric}_std"] == pytest.approx(
            static_runs[metric].std(ddof=1), rel=1e-12, abs=1e-9
        )
    # The static rows are exactly the plain runs of those seeds.
    plain = run_metrics(run(scenario, seed=1, steps=30))
    assert static_runs.iloc[1][list(METRICS)].to_dict() == pytest.approx(plain)


def test_evaluate_command_prints_and_writes_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    argv = ["evaluate", "flash_crash", "--policies", "static", "aave=bayesian,dydx=vol_target"]
    code = main([*argv, "--seeds", "0", "1", "--steps", "30", *SMALL_SET, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "flash_crash: mean ± std over 2 seeds" in printed and "aave=bayesian" in printed
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "runs.parquet",
        "summary.csv",
        "summary.parquet",
    }
    summary = pd.read_parquet(out / "summary.parquet")
    assert list(summary["policies"]) == ["static", "aave=bayesian,dydx=vol_target"]
    assert pd.read_csv(out / "summary.csv").shape == summary.shape
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and set(METRICS) <= set(runs.columns)


def test_evaluate_command_rejects_an_unknown_policy_naming_the_allowed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    code = main(["evaluate", "baseline", "--policies", "static", "clairvoyant", "--out", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 2
    assert "unknown policy 'clairvoyant'" in printed
    for name in ("bayesian", "forecaster", "static", "vol_target"):
        assert name in printed
    assert not out.exists()  # checked before anything ran or was written


@pytest.mark.parametrize("name", ["flash_crash", "bank_run", "credit_crunch"])
def test_the_readme_checkpoints_fit_todays_observation_layout(name: str, small: Small) -> None:
    # The README evaluates these; a changed observation must come with retrained ones
    # (benchmarks/train_throughput.py writes them).
    path = Path(__file__).parents[2] / "benchmarks" / "results" / "mappo" / name
    result = evaluate(small(name), [f"mappo:{path}"], seeds=[0], steps=2)
    assert len(result.runs) == 1


def test_a_stale_checkpoint_is_a_clear_error_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Path(__file__).parents[2] / "benchmarks" / "results" / "mappo" / "bank_run"
    stale = tmp_path / "stale"
    shutil.copytree(source, stale)
    config = json.loads((stale / "config.json").read_text())
    config["observation_names"] = [*config["observation_names"][:-1], "type.retired"]
    (stale / "config.json").write_text(json.dumps(config))
    code = main(["evaluate", "bank_run", "--policies", f"mappo:{stale}", "--seeds", "0"])
    out = capsys.readouterr().out
    assert code == 2
    assert "observation_names" in out and "type.retired" in out and "liqnet train" in out
