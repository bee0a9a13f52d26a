"""Tests of the sweep report: what the sweep varies drives the figures and the runs table."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqnet.analysis.sweep import points_table, varied_parameters, write_sweep_report
from liqnet.scenarios.sweep import run_one
from liqnet.scenarios.sweep_schema import load_sweep, plan, table

SHOCK, POOL = "shocks.0.return", "market.assets.ETH.pool_usd"


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """shock_grid's first two axes, 2 x 2 values x 2 seeds, small books, 30 steps: the
    directory ``liqnet sweep`` writes (``sweep.json``, ``sweep.parquet``, ``runs/``),
    made in-process (the report reads files, however they were made)."""
    out = tmp_path_factory.mktemp("sweep")
    spec = load_sweep(
        {
            "name": "small_grid",
            "base": "baseline",
            "seeds": [0, 1],
            "steps": 30,
            "feedback_twin": True,
            "overrides": {f"protocols.{k}.params.positions": 300 for k in range(3)}
            | {"shocks": [{"step": 12, "asset": "ETH", "return": -0.3}]},
            "grid": {SHOCK: [-0.1, -0.4], POOL: [50e6, 800e6]},
        }
    )
    rows = [run_one(c, out / "runs" / c.run_id) for c in plan(spec)]
    (out / "sweep.json").write_text(spec.model_dump_json(by_alias=True), encoding="utf-8")
    table(rows, spec).to_parquet(out / "sweep.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def report(grid_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of :func:`grid_sweep`, written elsewhere so tests can copy the sweep."""
    return write_sweep_report(grid_sweep, tmp_path_factory.mktemp("report")).parent


def _headings(html: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", html)


def test_first_figure_is_bad_debt_against_the_first_axis_by_the_second(
    grid_sweep: Path, report: Path
) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    first = _headings(html)[0]
    assert (
        first == "Bad debt and other outcomes against shock size (return), by ETH pool depth (USD)"
    )
    figures = re.findall(r"\(file: figures/([\w.]+)\)", html)
    assert figures[0] == "outcomes_0.png"
    # The data behind the figure: its first outcome is bad debt, one line per pool depth,
    # the mean over seeds (each seed averaged over the other parameters first).
    data = pd.read_csv(report / "tables" / "outcomes_0.csv")
    assert data["outcome"].iloc[0] == "bad_debt_usd"
    bad = data[data["outcome"] == "bad_debt_usd"].set_index([SHOCK, POOL])
    runs = pd.read_parquet(grid_sweep / "sweep.parquet")
    expected = runs.groupby([SHOCK, POOL])["bad_debt_usd"].mean()
    assert len(bad) == 4 and (bad["seeds"] == 2).all()
    for key, value in expected.items():
        assert bad.loc[key, "mean"] == pytest.approx(value)
    assert bad.loc[(-0.4, 50e6), "mean"] > bad.loc[(-0.1, 50e6), "mean"]  # a real crash


def test_runs_table_is_keyed_by_the_varied_parameters(grid_sweep: Path, report: Path) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    runs = pd.read_parquet(grid_sweep / "sweep.parquet")
    section = html[html.index("<h2>Runs by varied parameter</h2>") :]
    header = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", section[: section.index("</thead>")])
    assert header[:3] == ["shock size (return)", "ETH pool depth (USD)", "seeds"]
    assert "bad debt (USD M)" in header and "run_id" not in header
    assert not any(run_id in html for run_id in runs["run_id"])  # no hash-only rows
    points = pd.read_csv(report / "tables" / "sweep_points.csv")
    assert len(points) == 4 and set(points["shock size (return)"]) == {"-10%", "-40%"}
    assert set(points["ETH pool depth (USD)"]) == {"$50M", "$800M"}
    every = pd.read_csv(report / "tables" / "sweep_runs.csv")
    assert list(every.columns[:3]) == [SHOCK, POOL, "seed"]
    assert set(every["run_id"]) == set(runs["run_id"])


def test_convergence_panel_only_when_the_index_varies(
    grid_sweep: Path, report: Path, tmp_path: Path
) -> None:
    runs = pd.read_parquet(grid_sweep / "sweep.parquet")
    # Static levers: no agent's response varies, so the index is undefined in every run.
    assert runs["convergence_index"].isna().all()
    html = (report / "report.html").read_text(encoding="utf-8")
    assert not (report / "figures" / "sweep.png").exists()
    assert "sweep.png" not in html
    assert "The convergence index is undefined in every run" in html
    constant = tmp_path / "constant"
    shutil.copytree(grid_sweep, constant)
    half = [0.4 if k % 2 else np.nan for k in range(len(runs))]
    runs.assign(convergence_index=half).to_parquet(constant / "sweep.parquet", index=False)
    html = write_sweep_report(constant).read_text(encoding="utf-8")
    assert f"is 0.40 in all {len(runs) // 2} runs with a defined index" in html
    assert f"In {len(runs) - len(runs) // 2} runs it is undefined" in html
    varied = tmp_path / "varied"
    shutil.copytree(grid_sweep, varied)
    spread = runs.assign(convergence_index=[0.1 * k for k in range(len(runs))])
    spread.to_parquet(varied / "sweep.parquet", index=False)
    html = write_sweep_report(varied).read_text(encoding="utf-8")
    assert "Amplification against convergence" in _headings(html)
    assert (varied / "figures" / "sweep.png").is_file() and "sweep.png" in html


def test_two_axes_give_a_heat_map_and_one_axis_none(
    grid_sweep: Path, report: Path, tmp_path: Path
) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "Heat maps: ETH pool depth (USD) x shock size (return)" in _headings(html)
    assert (report / "figures" / "heatmaps.png").stat().st_size > 10_000
    one = tmp_path / "one_axis"
    shutil.copytree(grid_sweep, one)
    runs = pd.read_parquet(grid_sweep / "sweep.parquet")
    runs[runs[POOL] == 50e6].drop(columns=[POOL]).to_parquet(one / "sweep.parquet", index=False)
    spec = json.loads((one / "sweep.json").read_text())
    del spec["grid"][POOL]
    (one / "sweep.json").write_text(json.dumps(spec))
    html = write_sweep_report(one).read_text(encoding="utf-8")
    assert not any(h.startswith("Heat maps") for h in _headings(html))
    assert _headings(html)[0] == "Bad debt and other outcomes against shock size (return)"


def test_varied_parameters_reads_the_spec_and_policy_mixes(tmp_path: Path) -> None:
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "seed": [0, 1, 0, 1],
            "policy_mix": ["static", "static", "mappo", "mappo"],
            "market.assets.ETH.pool_usd": [1e6, 1e6, 1e6, 1e6],
            "status": ["done"] * 4,
            "bad_debt_usd": [1.0, 3.0, 5.0, 7.0],
        }
    )
    # Without sweep.json: the columns between policy_mix and status, then the mixes.
    assert varied_parameters(tmp_path, runs) == ["market.assets.ETH.pool_usd", "policy_mix"]
    spec = {"grid": {}, "random": {"samples": 2, "params": {"market.assets.ETH.pool_usd": {}}}}
    (tmp_path / "sweep.json").write_text(json.dumps(spec))
    assert varied_parameters(tmp_path, runs) == ["market.assets.ETH.pool_usd", "policy_mix"]
    points = points_table(runs, ["policy_mix"]).set_index("policy mix")
    assert points.loc["mappo", "bad debt (USD M)"] == pytest.approx(6e-6)
    assert points.loc["static", "seeds"] == 2
    assert list(points_table(runs, [])["seed"]) == [0, 1]  # nothing varied: a row per seed


def test_failed_runs_are_counted_and_say_why(grid_sweep: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(grid_sweep, broken)
    runs = pd.read_parquet(grid_sweep / "sweep.parquet")
    runs.loc[:1, "status"] = "failed"
    runs.loc[:1, "error"] = "checkpoint config runs/mappo/config.json: file not found"
    runs.to_parquet(broken / "sweep.parquet", index=False)
    html = write_sweep_report(broken).read_text(encoding="utf-8")
    assert f"{len(runs) - 2} finished runs (2 failed, left out)" in html
    failed = html[html.index("<h2>Failed runs</h2>") :]
    assert "runs/mappo/config.json: file not found" in failed
    table = pd.read_csv(broken / "tables" / "failed_runs.csv")
    assert list(table["runs"]) == [2]
