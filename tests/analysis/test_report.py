"""Tests of saved-run loading, reports and ``liqnet analyze``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqnet.analysis import convergence_index, load_result
from liqnet.analysis.report import write_run_report
from liqnet.analysis.sweep import trend_fits
from liqnet.scenarios import Scenario, amplification, run
from liqnet.scenarios.cli import main
from tests.helpers.worlds import Small

TABLES = ["contagion_nodes", "contagion_edges", "debtrank", "cascade_rounds", "cascade_width"]
TABLES += ["prices", "synchrony", "amplification", "summary"]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide terminal, so rich never wraps the messages the tests look for."""
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, small: Small) -> Path:
    """A small credit_crunch run through its defaults, saved without a figure."""
    out = tmp_path_factory.mktemp("run")
    run(thin_book(small), steps=45).save(out, figure=False)
    return out


def thin_book(small: Small) -> Scenario:
    """credit_crunch with $5M of ETH bids within 2%: forced sales sweep the book, so
    liquidations cascade over several rounds of a step (the report's cascade tree has
    generations to show; with the built-in $180M the cascade stays in one round)."""
    return small("credit_crunch", market__assets__ETH__cex_depth_2pct_usd=5e6)


def test_load_result_round_trips(saved: Path, tmp_path: Path, small: Small) -> None:
    original = run(thin_book(small), steps=45)
    loaded = load_result(saved)
    assert loaded.scenario == original.scenario
    assert (loaded.seed, loaded.feedback) == (original.seed, original.feedback)
    pd.testing.assert_frame_equal(loaded.timeseries, original.timeseries)
    pd.testing.assert_frame_equal(loaded.events, original.events)
    pd.testing.assert_frame_equal(loaded.credit, original.credit)
    assert loaded.defaults == original.defaults
    assert loaded.protocol_types == original.protocol_types
    assert loaded.summary["bad_debt_usd"] == original.summary["bad_debt_usd"]
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("timeseries.parquet", "summary.json"):
        (partial / name).write_bytes((saved / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no scenario\.json"):
        load_result(partial)


def test_liqnet_analyze_writes_report_and_tables(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert main(["analyze", str(saved), "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    html = (out / "report.html").read_text(encoding="utf-8")
    for title in ("Contagion graph", "DebtRank per protocol", "Action synchrony"):
        assert title in html
    assert "Prices and liquidations by cascade round" in html and "Amplification" in html
    assert html.count("data:image/png;base64,") == 5
    for name in TABLES:
        assert (out / "tables" / f"{name}.csv").is_file(), name
        assert (out / "tables" / f"{name}.parquet").is_file(), name
    for name in ("contagion", "debtrank", "cascade", "synchrony", "amplification"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    for name in ("contagion_snapshot", "contagion_end", "cascade_tree", "synchrony"):
        assert (out / "graphs" / f"{name}.graphml").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["amplification_bad_debt"] > 1.0
    assert metrics["cascade_depth"] >= 2
    edges = pd.read_csv(out / "tables" / "contagion_edges.csv")
    credit = edges[edges["channel"] == "credit"]
    assert set(zip(credit["source"], credit["target"], strict=True)) == {("aave", "dydx")}


def test_analyze_without_twin_and_bad_directory(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(saved), "--out", str(tmp_path / "r"), "--no-twin"]) == 0
    assert not (tmp_path / "r" / "tables" / "amplification.csv").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # checked by the argument's type
        main(["analyze", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_sweep_report_fits_amplification_against_convergence(tmp_path: Path, small: Small) -> None:
    scenario = small("flash_crash")
    for k in range(3):
        run(scenario, seed=k, steps=30).save(tmp_path / "runs" / f"r{k}", figure=False)
    nan = math.nan
    table = pd.DataFrame(
        {
            "run_id": ["r0", "r1", "r2", "r3"],
            "seed": [0, 1, 2, 3],
            "status": ["done", "done", "done", "failed"],
            "bad_debt_usd": [1.0, 2.0, 3.0, nan],
            "amplification_bad_debt": [1.5, 2.5, nan, nan],
            "amplification_liquidated": [1.2, math.inf, nan, nan],
            "amplification_drawdown": [1.1, 1.3, nan, nan],
            "convergence_index": [0.2, 0.6, nan, nan],
        }
    )
    table.to_parquet(tmp_path / "sweep.parquet")
    assert main(["analyze", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "figures" / "sweep.png").is_file()
    runs = pd.read_csv(tmp_path / "tables" / "sweep_runs.csv")
    assert list(runs["run_id"]) == ["r0", "r1", "r2"]  # the failed run is left out
    r2 = load_result(tmp_path / "runs" / "r2")
    row = runs.set_index("run_id").loc["r2"]
    # Filled in from the run: static levers, so undefined (NaN), not "converged".
    assert math.isnan(convergence_index(r2)) and math.isnan(row["convergence_index"])
    expected = amplification(r2.scenario, result=r2).as_row()
    for column, value in expected.items():
        if column.startswith("amplification_"):  # the columns this table had, filled in
            assert row[column] == pytest.approx(value)
    fits = pd.read_csv(tmp_path / "tables" / "trend_fits.csv").set_index("metric")
    defined = runs[np.isfinite(runs["convergence_index"])]  # r2's undefined index is left out
    x = defined["convergence_index"].to_numpy()
    slope, intercept = np.polyfit(x, defined["amplification_bad_debt"].to_numpy(), 1)
    assert fits.loc["bad_debt", "slope"] == pytest.approx(slope)
    assert fits.loc["bad_debt", "intercept"] == pytest.approx(intercept)
    assert fits.loc["liquidated", "infinite"] == 1  # inf is left out of the fit, and said so
    assert fits.loc["liquidated", "runs"] == 1  # r1 infinite, r2's index undefined


def test_trend_needs_two_distinct_convergence_values() -> None:
    table = pd.DataFrame(
        {"convergence_index": [0.5, 0.5]}
        | {f"amplification_{m}": [1.0, 2.0] for m in ("bad_debt", "liquidated", "drawdown")}
    )
    assert trend_fits(table)["slope"].isna().all()


def test_run_without_credit_lines_says_why_debtrank_is_zero(tmp_path: Path, small: Small) -> None:
    result = run(small("flash_crash"), steps=30)
    assert result.credit is None or len(result.credit) == 0  # no credit lines in flash_crash
    html = (write_run_report(result, tmp_path)).read_text(encoding="utf-8")
    assert "largest credit exposure" not in html
    assert "end of run; no credit lines between protocols" in html
    debtrank = html[html.index("<h2>DebtRank per protocol</h2>") :]
    debtrank = debtrank[: debtrank.index("<h2>", 5)]
    assert "DebtRank is 0 for every protocol: there are no credit lines" in debtrank
    assert "<img" not in debtrank  # no chart of zero bars
    assert (pd.read_csv(tmp_path / "tables" / "debtrank.csv")["debtrank"] == 0).all()
