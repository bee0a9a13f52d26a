"""Sweep reports: cascade amplification against the convergence index across runs.

Contract with ``liqnet sweep``: a sweep directory holds ``sweep.parquet`` (one row per
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

from liqnet.analysis.amplification import METRICS, twin_amplification
from liqnet.analysis.convergence import convergence_index
from liqnet.analysis.htmlpage import page, section, write_table
from liqnet.analysis.results import load_result
from liqnet.core.result import Runner

__all__ = [
    "SWEEP_FILE",
    "plot_sweep",
    "sweep_table",
    "trend_fits",
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


def write_sweep_report(
    sweep_dir: str | Path, out_dir: str | Path | None = None, *, runner: Runner | None = None
) -> Path:
    """Amplification against convergence index across a sweep's runs, with trend lines.

    Args:
        sweep_dir: Directory with ``sweep.parquet`` and ``runs/<run_id>/``.
        out_dir: Where to write (default: ``sweep_dir``).
        runner: Runs twins for runs whose amplification is not in ``sweep.parquet``.

    Returns:
        The path of ``report.html`` (in ``out_dir``, default ``sweep_dir``).
    """
    table = sweep_table(sweep_dir, runner=runner)
    out = Path(sweep_dir if out_dir is None else out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fits = trend_fits(table)
    keep = [c for c in ("run_id", "seed", "status") if c in table]
    keep += ["convergence_index", *(f"amplification_{m}" for m in METRICS)]
    keep += [c for c in ("bad_debt_usd", "liquidated_usd", "max_drawdown") if c in table]
    write_table(table[keep], out / "tables", "sweep_runs")
    write_table(fits, out / "tables", "trend_fits")
    (out / "metrics.json").write_text(json.dumps({"trend": fits.to_dict("records")}, indent=2))
    figure = plot_sweep(table, fits, out / "figures" / "sweep.png")
    caption = (
        "Each point is one run: its cascade amplification (feedback / no-feedback twin) "
        "against its convergence index (how alike the agents' actions were). Red: "
        "least-squares trend (numpy.polyfit, degree 1); dotted: no amplification."
    )
    sections = [
        section("Amplification against convergence", figure, caption, [fits]),
        section("Runs", None, "", [table[keep]]),
    ]
    subtitle = f"{len(table)} finished runs from {sweep_dir}"
    return page(out, "liqnet sweep report", subtitle, sections)


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
                label=f"trend: {fit.slope:+.2f} per unit (r = {fit.r:.2f})",
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
