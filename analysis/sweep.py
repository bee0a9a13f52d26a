"""Sweep reports: outcomes against the parameters a sweep varies, and cascade
amplification against the convergence index when that index varies.

Contract with ``liqnet sweep``: a sweep directory holds ``sweep.json`` (the spec: its
``grid`` and ``random.params`` keys are the varied columns) and ``sweep.parquet`` (one row per
run: ``run_id``, ``seed``, ``status`` "done"/"failed", summary metrics and, when known,
``amplification_bad_debt``, ``amplification_liquidated``, ``amplification_drawdown``,
``convergence_index``) and ``runs/<run_id>/``, each a ``RunResult.save()`` directory.
Values missing from the table are computed from the run directories.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from liqnet.analysis.ablation import paired_sections
from liqnet.analysis.amplification import METRICS, twin_amplification
from liqnet.analysis.convergence import convergence_index
from liqnet.analysis.htmlpage import page, section, write_table
from liqnet.analysis.results import load_result
from liqnet.analysis.sweep_plots import (
    MAX_GROUPS,
    OUTCOMES,
    format_value,
    label,
    ordered,
    plot_heatmaps,
    plot_outcomes,
    seed_spread,
)
from liqnet.core.result import Runner

__all__ = [
    "SPEC_FILE",
    "SWEEP_FILE",
    "failed_runs",
    "plot_sweep",
    "points_table",
    "sweep_table",
    "trend_fits",
    "varied_parameters",
    "write_sweep_report",
]

SWEEP_FILE = "sweep.parquet"


def sweep_table(sweep_dir: str | Path, *, runner: Runner | None = None) -> pd.DataFrame:
    """The finished runs of a sweep with amplification and convergence index columns.

    Missing ``convergence_index`` values are computed from ``runs/<run_id>/`` (levers
    recorded in the run); missing ``amplification_*`` values, given a ``runner``, by
    running each run's counterfactual twin (one run each). Runs without a directory keep
    NaN.

    Args:
        sweep_dir: Directory with ``sweep.parquet``.
        runner: Runs twins to fill missing amplification values (none run without it).

    Raises:
        FileNotFoundError: No ``sweep.parquet`` in ``sweep_dir``.
    """
    root = Path(sweep_dir)
    if not (root / SWEEP_FILE).is_file():
        raise FileNotFoundError(f"{str(root)!r} has no {SWEEP_FILE}: not a sweep directory")
    table = pd.read_parquet(root / SWEEP_FILE)
    if "status" in table:
        table = table[table["status"] == "done"]
    table = table.reset_index(drop=True)
    columns = ["convergence_index", *(f"amplification_{m}" for m in METRICS)]
    for column in columns:
        if column not in table:
            table[column] = np.nan
        table[column] = table[column].astype(float)
    if "run_id" not in table:
        return table
    for k, row in table.iterrows():
        missing = [c for c in columns if not pd.notna(row[c])]
        run_dir = root / "runs" / str(row["run_id"])
        if not missing or not (run_dir / "summary.json").is_file():
            continue
        result = load_result(run_dir)
        if "convergence_index" in missing and len(result.scenario.protocols) >= 2:
            table.loc[k, "convergence_index"] = convergence_index(result)
        if runner is not None and any(c.startswith("amplification_") for c in missing):
            for column, value in twin_amplification(result, runner).as_row().items():
                if column in missing:
                    table.loc[k, column] = value
    return table


def trend_fits(table: pd.DataFrame) -> pd.DataFrame:
    """Least-squares line (``numpy.polyfit``, degree 1) of each amplification metric
    against the convergence index, over runs where both are finite.

    Returns:
        One row per metric: ``metric, slope, intercept, r`` (Pearson), ``runs`` (used),
        ``infinite`` (runs left out for an infinite ratio). ``slope`` is NaN with fewer
        than two runs or a single convergence value.
    """
    rows = []
    for metric in METRICS:
        x, y = table["convergence_index"].to_numpy(), table[f"amplification_{metric}"].to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        slope = intercept = r = math.nan
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            slope, intercept = (float(v) for v in np.polyfit(x[ok], y[ok], 1))
            r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if np.ptp(y[ok]) > 0 else 0.0
        infinite = int(np.isinf(y).sum())
        rows.append((metric, slope, intercept, r, int(ok.sum()), infinite))
    return pd.DataFrame(rows, columns=["metric", "slope", "intercept", "r", "runs", "infinite"])


SPEC_FILE = "sweep.json"
ID_COLUMNS = ("run_id", "seed", "policy_mix", "status", "error")


def varied_parameters(sweep_dir: str | Path, table: pd.DataFrame) -> list[str]:
    """The columns a sweep varies: its grid keys, then its random keys (``sweep.json``,
    written by ``liqnet sweep``), then ``policy_mix`` when it names several mixes.

    Read as JSON, not through the scenarios layer (analysis imports only ``liqnet.core``).
    Without ``sweep.json``, the columns the sweep table places between ``policy_mix``
    and ``status``. Only columns present in ``table`` are returned.
    """
    spec_file = Path(sweep_dir) / SPEC_FILE
    if spec_file.is_file():
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        keys = [*(spec.get("grid") or {}), *((spec.get("random") or {}).get("params") or {})]
    elif "policy_mix" in table and "status" in table:
        columns = list(table.columns)
        keys = columns[columns.index("policy_mix") + 1 : columns.index("status")]
    else:
        keys = []
    if "policy_mix" in table and table["policy_mix"].nunique() > 1:
        keys.append("policy_mix")
    return [k for k in keys if k in table]


def points_table(table: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """One row per point of the varied parameters (seeds averaged): the parameters as a
    reader writes them, the number of seeds and the mean outcomes. Without varied
    parameters, one row per seed."""
    keys = params or ["seed"]
    outcomes = [c for c in OUTCOMES if c in table and np.isfinite(table[c].astype(float)).any()]
    frame = table.assign(**{c: table[c].astype(float) for c in outcomes})
    frame = frame.replace([np.inf, -np.inf], np.nan)
    grouped = frame.groupby(keys, sort=True, dropna=False)
    points = grouped[outcomes].mean()
    points.insert(0, "seeds", grouped.size())
    points = points.reset_index()
    # Rows in the order of the figures' axes (a crash grows: -10%, -20%, ...).
    rank = {k: {v: i for i, v in enumerate(ordered(table[k]))} for k in keys}
    points = points.sort_values(keys, key=lambda col: col.map(rank[str(col.name)]))
    points = points.reset_index(drop=True)
    shown = {k: [format_value(k, v) for v in points[k]] for k in params}
    names = {k: label(k) for k in params} | {
        c: f"{OUTCOMES[c][0]} ({OUTCOMES[c][2]})" for c in outcomes
    }
    scaled = {c: points[c] * OUTCOMES[c][1] for c in outcomes}
    return points.assign(**shown, **scaled).rename(columns=names)


def write_sweep_report(
    sweep_dir: str | Path, out_dir: str | Path | None = None, *, runner: Runner | None = None
) -> Path:
    """The sweep's outcomes against what it varies, and amplification against convergence
    when the convergence index varies between runs.

    Sections: per varied parameter, bad debt, liquidations, drawdown, defaults and
    amplification against it (mean and spread over seeds, a line per value of the next
    varied parameter); heat maps over the first two parameters; for a True/False
    parameter, its paired effect over seeds with confidence intervals
    (:mod:`liqnet.analysis.ablation`); the runs table keyed by
    the varied parameters; the convergence panel when the index is not constant.

    Args:
        sweep_dir: Directory with ``sweep.parquet``, ``sweep.json`` and ``runs/<run_id>/``.
        out_dir: Where to write (default: ``sweep_dir``).
        runner: Runs twins for runs whose amplification is not in ``sweep.parquet``.

    Returns:
        The path of ``report.html`` (in ``out_dir``, default ``sweep_dir``).
    """
    root = Path(sweep_dir)
    table = sweep_table(root, runner=runner)
    failures = failed_runs(root)
    failed = int(failures["runs"].sum())
    out = Path(sweep_dir if out_dir is None else out_dir)
    figures, tables = out / "figures", out / "tables"
    figures.mkdir(parents=True, exist_ok=True)
    params = varied_parameters(root, table)
    shown = [p for p in params if table[p].nunique() > 1]
    outcomes = [c for c in OUTCOMES if c in table and np.isfinite(table[c].astype(float)).any()]
    sections = []
    for k, param in enumerate(shown):
        others = [p for p in shown if p != param and table[p].nunique() <= MAX_GROUPS]
        group = others[0] if others else None
        spread = pd.concat(
            [seed_spread(table, param, group, c).assign(outcome=c) for c in outcomes]
        )
        write_table(spread, tables, f"outcomes_{k}")
        by = f", by {label(group)}" if group else ""
        # The first outcome (bad debt) names the section: it is the first panel.
        title = f"{OUTCOMES[outcomes[0]][0]} and other outcomes" if outcomes else "Outcomes"
        title = f"{title} against {label(param)}{by}"
        sections.append(
            section(
                title[:1].upper() + title[1:],
                plot_outcomes(table, param, group, outcomes, figures / f"outcomes_{k}.png"),
                f"Each point: the mean over seeds of the runs at that {label(param)} "
                f"(`{param}`){by}, other varied parameters averaged; the band runs from "
                "the lowest to the highest seed. Amplification: the run against its "
                f"feedback=False twin. (table: tables/outcomes_{k}.csv)",
                [],
            )
        )
    if len(shown) >= 2:
        rows, cols = shown[1], shown[0]
        maps = [c for c in ("bad_debt_usd", "liquidated_usd", "defaults") if c in outcomes]
        sections.append(
            section(
                f"Heat maps: {label(rows)} x {label(cols)}",
                plot_heatmaps(table, rows, cols, maps, figures / "heatmaps.png"),
                "Mean over seeds and the other varied parameters at each grid point.",
                [],
            )
        )
    sections += paired_sections(table, params, tables)
    points = points_table(table, params)
    write_table(points, tables, "sweep_points")
    runs_keep = [*params, *(c for c in ("seed", "policy_mix") if c in table and c not in params)]
    runs_keep += [
        c for c in ("bad_debt_usd", "liquidated_usd", "max_drawdown", "defaults") if c in table
    ]
    runs_keep += ["convergence_index", *(f"amplification_{m}" for m in METRICS)]
    runs_keep += [c for c in ("run_id", "status") if c in table]
    write_table(table[runs_keep], tables, "sweep_runs")
    where = ", ".join(f"{label(p)} = `{p}`" for p in params)
    sections.append(
        section(
            "Runs by varied parameter",
            None,
            f"One row per point of the sweep ({where or 'nothing varied: a row per seed'}); "
            f"outcomes are means over its seeds. Every run, with its id and directory name "
            f"under runs/, is in tables/sweep_runs.csv.",
            [points],
        )
    )
    if failed:
        write_table(failures, tables, "failed_runs")
        sections.append(
            section(
                "Failed runs",
                None,
                f"{failed} runs failed and are left out of the figures and tables above; "
                "one row per distinct error.",
                [failures],
            )
        )
    fits = trend_fits(table)
    write_table(fits, tables, "trend_fits")
    (out / "metrics.json").write_text(
        json.dumps({"varied": params, "trend": fits.to_dict("records")}, indent=2)
    )
    raw = table["convergence_index"].to_numpy(dtype=float)
    index = raw[np.isfinite(raw)]
    if len(index) >= 2 and np.ptp(index) > 0:
        caption = (
            "Each point is one run: its cascade amplification (feedback / no-feedback twin) "
            "against its convergence index (how alike the agents' actions were). Red: "
            "least-squares trend (numpy.polyfit, degree 1); dotted: no amplification."
        )
        figure = plot_sweep(table, fits, figures / "sweep.png")
        sections.append(section("Amplification against convergence", figure, caption, [fits]))
    elif len(index):
        # A constant index has no trend to fit: say so in a line instead of a flat panel.
        sections.append(
            section(
                "Amplification against convergence",
                None,
                f"The convergence index is {index[0]:.2f} in all {len(index)} runs with a "
                "defined index (the agents' levers move alike in every run), so there is no "
                "trend of amplification against it to show." + _undefined(raw),
                [],
            )
        )
    elif len(raw):
        sections.append(
            section(
                "Amplification against convergence",
                None,
                "The convergence index is undefined in every run: in none of them do two "
                "agents' levers move (static policies are alike by construction, not "
                "converged), so there is no trend to show.",
                [],
            )
        )
    subtitle = f"{len(table)} finished runs"
    subtitle += f" ({failed} failed, left out)" if failed else ""
    subtitle += f" from {sweep_dir}"
    varied = ", ".join(label(p) for p in params)
    subtitle += f"; varied: {varied}." if varied else "."
    return page(out, f"liqnet sweep report: {_sweep_name(root)}", subtitle, sections)


def failed_runs(root: Path) -> pd.DataFrame:
    """The failed runs of a sweep, one row per distinct error: ``runs``, the policy mixes
    they used and the error (so a reader sees why runs are missing from the figures)."""
    runs = pd.read_parquet(root / SWEEP_FILE)
    if "status" not in runs:
        return pd.DataFrame(columns=["runs", "policy_mix", "error"])
    failed = runs[runs["status"] != "done"]
    failed = failed.assign(
        error=failed.get("error", ""),
        policy_mix=failed.get("policy_mix", ""),
    )
    grouped = failed.groupby("error", sort=False, dropna=False)
    return pd.DataFrame(
        {
            "runs": grouped.size(),
            "policy_mix": grouped["policy_mix"].agg(lambda v: ", ".join(map(str, pd.unique(v)))),
        }
    ).reset_index()[["runs", "policy_mix", "error"]]


def _sweep_name(root: Path) -> str:
    spec_file = root / SPEC_FILE
    if spec_file.is_file():
        return str(json.loads(spec_file.read_text(encoding="utf-8")).get("name", root.name))
    return root.name


def _undefined(index: np.ndarray) -> str:
    """A sentence counting the runs whose convergence index is undefined (NaN), if any."""
    missing = int(np.isnan(index).sum())
    return (
        f" In {missing} runs it is undefined (fewer than two agents' levers move)."
        if missing
        else ""
    )


def plot_sweep(table: pd.DataFrame, fits: pd.DataFrame, path: str | Path) -> Path:
    """Amplification against convergence index, one panel per metric, with trend lines."""
    metrics = list(fits["metric"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.4), squeeze=False)
    for ax, fit in zip(axes[0], fits.itertuples(index=False), strict=True):
        column = f"amplification_{fit.metric}"
        ok = table[np.isfinite(table[column]) & np.isfinite(table["convergence_index"])]
        ax.scatter(ok["convergence_index"], ok[column], s=30, alpha=0.8, color="#4C72B0")
        if np.isfinite(fit.slope):
            x = np.linspace(ok["convergence_index"].min(), ok["convergence_index"].max(), 50)
            ax.plot(
                x,
                fit.intercept + fit.slope * x,
                color="#C44E52",
                label=f"trend: {fit.slope:+.3g} per unit (r = {fit.r:.2f})",
            )
            ax.legend(fontsize=9)
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.set_xlabel("convergence index (0 = unrelated, 1 = identical agents)")
        ax.set_ylabel(f"amplification of {fit.metric.replace('_', ' ')}")
        dropped = f", {fit.infinite} infinite left out" if fit.infinite else ""
        title = f"{fit.metric.replace('_', ' ')} ({fit.runs} runs{dropped})"
        if not np.isfinite(fit.slope):
            title += "\nno trend: needs 2+ runs with different convergence indices"
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Sweep: cascade amplification against agent convergence", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
