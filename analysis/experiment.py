"""Statistics and report of the convergence experiment (``liqnet experiment convergence``).

Input: one row per (similarity level, held-out crash, seed) with the run's outcomes and
the level's measured similarity (``similarity_behaviour``, ``similarity_cka``,
``similarity_structure``). Output:

* per level and crash: the mean of each outcome with a percentile bootstrap 95% CI over
  seeds (Efron & Tibshirani 1993);
* the **effect**, per training reward (``family``): ordinary least squares of each
  outcome on behavioural similarity over the trained levels, with one intercept per
  crash size (crash fixed effects, so the slope compares levels at matched shocks), its
  95% CI from a bootstrap that resamples runs within each crash. A positive slope whose
  CI excludes 0 says that more alike policies lose more; a CI that spans 0 says the data
  show no effect either way. The controls (family ``control``: static levers, whose
  similarity is undefined, and the untrained actor) are in the tables beside them, not
  in the fit;
* the mechanism trace: synchronised tightening, simultaneous liquidations, fire-sale
  volume by level.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from liqnet.analysis.htmlpage import page, section, write_table

__all__ = [
    "OUTCOMES",
    "TRACE",
    "bootstrap_ci",
    "effect_table",
    "generalisation_table",
    "level_table",
    "write_experiment_report",
]

OUTCOMES: dict[str, str] = {
    "losses_usd": "losses (bad debt + default losses), USD",
    "liquidated_usd": "liquidated debt, USD",
    "drawdown": "max drawdown of system equity",
    "debtrank": "mean DebtRank of the credit network",
}
"""Outcome columns and their labels."""

TRACE: dict[str, str] = {
    "tightening_sync": "share of protocols tightening together",
    "simultaneous_liquidations": "steps with >= 2 protocols liquidating",
    "fire_sale_usd": "liquidators' sale proceeds after the crash, USD",
}
"""Mechanism-trace columns and their labels."""


def bootstrap_ci(
    values: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap 95% interval of ``values`` (NaN for no values)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(x.mean()), float(low), float(high)


def level_table(runs: pd.DataFrame, resamples: int, seed: int = 0) -> pd.DataFrame:
    """Per level and crash: mean and bootstrap CI of every outcome and trace column."""
    rng = np.random.default_rng(seed)
    rows = []
    for (level, shock), group in runs.groupby(["level", "shock"], sort=True):
        row: dict[str, Any] = {"level": level, "shock": shock, "seeds": len(group)}
        row["family"] = str(group["family"].iloc[0])
        for column in (*OUTCOMES, *TRACE):
            mean, low, high = bootstrap_ci(group[column].to_numpy(), resamples, rng)
            row.update({column: mean, f"{column}_lo": low, f"{column}_hi": high})
        for column in ("similarity_behaviour", "similarity_cka", "similarity_structure"):
            row[column] = float(group[column].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def _slope(x: np.ndarray, y: np.ndarray, shocks: np.ndarray, levels: np.ndarray) -> float:
    """OLS slope of y on x with one intercept per crash size."""
    design = np.column_stack([x, (shocks[:, None] == levels[None, :]).astype(float)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(coef[0])


def effect_table(runs: pd.DataFrame, resamples: int, seed: int = 0) -> pd.DataFrame:
    """The fitted effect of behavioural similarity on each outcome, per family, with CIs.

    Columns: ``family`` (training reward), ``outcome``, ``slope`` (outcome per unit of
    similarity), ``ci_lo``, ``ci_hi``, ``runs`` and ``levels`` in the fit, ``reading``
    (what the CI says). The ``control`` family is not fitted.
    """
    rng = np.random.default_rng(seed)
    rows = []
    trained = runs[(runs["family"] != "control") & np.isfinite(runs["similarity_behaviour"])]
    for family, group in trained.groupby("family", sort=True):
        for column in OUTCOMES:
            frame = group[np.isfinite(group[column])]
            row: dict[str, Any] = {"family": family, "outcome": column, "runs": len(frame)}
            row["levels"] = int(frame["level"].nunique())
            rows.append(row | _fit(frame, column, resamples, rng))
    columns = ["family", "outcome", "slope", "ci_lo", "ci_hi", "runs", "levels", "reading"]
    return pd.DataFrame(rows, columns=columns)


def _fit(frame: pd.DataFrame, column: str, resamples: int, rng: np.random.Generator) -> dict:
    """Slope, bootstrap CI and reading of one outcome on behavioural similarity."""
    x, y = frame["similarity_behaviour"].to_numpy(), frame[column].to_numpy(dtype=float)
    shocks = frame["shock"].to_numpy()
    sizes = np.unique(shocks)
    if frame["level"].nunique() < 2 or np.ptp(x) <= 0:
        return {
            "slope": math.nan,
            "ci_lo": math.nan,
            "ci_hi": math.nan,
            "reading": "similarity does not vary: no effect to fit",
        }
    slope = _slope(x, y, shocks, sizes)
    groups = [np.flatnonzero(shocks == s) for s in sizes]
    draws = []
    for _ in range(resamples):
        take = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        if np.ptp(x[take]) > 0:
            draws.append(_slope(x[take], y[take], shocks[take], sizes))
    low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    if low > 0:
        reading = "more alike policies lose more (CI above 0)"
    elif high < 0:
        reading = "more alike policies lose less (CI below 0)"
    else:
        reading = "no effect either way (CI spans 0)"
    return {"slope": slope, "ci_lo": low, "ci_hi": high, "reading": reading}


def generalisation_table(by_level: pd.DataFrame) -> pd.DataFrame:
    """Losses and liquidated debt of the ``*/identical`` levels and the controls per
    crash, with their change against static levers (%)."""
    keep = by_level[
        by_level["level"].str.endswith("/identical") | (by_level["family"] == "control")
    ]
    rows = []
    for shock, group in keep.groupby("shock", sort=True):
        static = group[group["level"] == "static"]
        base = {
            c: float(static[c].iloc[0]) if len(static) else math.nan
            for c in ("losses_usd", "liquidated_usd")
        }
        for _, row in group.iterrows():
            out = {"shock": shock, "level": row["level"]}
            for column in ("losses_usd", "liquidated_usd"):
                out[column] = row[column]
                out[f"{column}_ci"] = f"[{row[f'{column}_lo']:.4g}, {row[f'{column}_hi']:.4g}]"
                ref = base[column]
                out[f"{column}_vs_static_pct"] = (
                    100.0 * (row[column] / ref - 1.0) if ref else math.nan
                )
            rows.append(out)
    return pd.DataFrame(rows)


def _plot(table: pd.DataFrame, effects: pd.DataFrame, path: Path) -> Path:
    """Each outcome's level means (with CIs) against behavioural similarity, per crash."""
    fig, axes = plt.subplots(1, len(OUTCOMES), figsize=(4.2 * len(OUTCOMES), 4.0))
    colours = plt.get_cmap("viridis")
    shocks = sorted(table["shock"].unique())
    for ax, (column, label) in zip(axes, OUTCOMES.items(), strict=True):
        for k, shock in enumerate(shocks):
            rows = table[
                (table["shock"] == shock)
                & (table["family"] != "control")
                & np.isfinite(table["similarity_behaviour"])
            ]
            colour = colours(k / max(1, len(shocks) - 1))
            ax.errorbar(
                rows["similarity_behaviour"],
                rows[column],
                yerr=[rows[column] - rows[f"{column}_lo"], rows[f"{column}_hi"] - rows[column]],
                fmt="o",
                color=colour,
                capsize=3,
                label=f"crash {shock:+.0%}",
            )
        fitted = effects[effects["outcome"] == column]
        slopes = ", ".join(
            f"{f} {v:.3g}" for f, v in zip(fitted["family"], fitted["slope"], strict=True)
        )
        ax.set_title(f"{label}\nslope: {slopes}" if slopes else label, fontsize=9)
        ax.set_xlabel("behavioural similarity (response correlation)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_experiment_report(
    root: Path,
    runs: pd.DataFrame,
    similarity: pd.DataFrame,
    settings: dict[str, Any],
    *,
    bootstrap: int = 2000,
) -> Path:
    """Write ``report.html`` (and its tables and figure) into ``root``; returns its path."""
    tables, figures = root / "tables", root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    by_level = level_table(runs, bootstrap)
    effects = effect_table(runs, bootstrap)
    for frame, name in ((by_level, "by_level"), (effects, "effects"), (similarity, "similarity")):
        write_table(frame, tables, name)
    undefined = sorted(similarity.loc[~np.isfinite(similarity["similarity_behaviour"]), "level"])
    shown = by_level[["level", "shock", "seeds", *OUTCOMES, "similarity_behaviour"]]
    trace = by_level[["level", "shock", *TRACE]]
    sections = [
        section(
            "Measured similarity by level",
            None,
            "Behaviour: mean pairwise correlation of the protocols' responses on "
            f"{settings['probes']} held-out crash states; representations: mean linear CKA "
            "of the first hidden layer (Kornblith et al. 2019); structure: share of "
            "protocol pairs running the same model. Undefined (NaN) where responses are "
            f"constant: {', '.join(undefined) or 'none'}.",
            [similarity],
        ),
        section(
            "Effect of similarity on losses",
            _plot(by_level, effects, figures / "effect.png"),
            "Per training reward: OLS of each outcome on behavioural similarity over the "
            "trained levels, one intercept per crash size; 95% CI from "
            f"{bootstrap} bootstrap resamples of runs within each crash. Points: level "
            "means with bootstrap CIs over seeds. The controls (static levers: similarity "
            "undefined; the untrained actor) are in the tables, not in the fit.",
            [effects],
        ),
        section(
            "Outcomes by level and crash (means; CIs in tables/by_level.csv)",
            None,
            "Held-out crash sizes and step, held-out seeds; every level meets the same "
            "exogenous paths.",
            [shown],
        ),
        section(
            "Generalisation: one trained policy against the controls",
            None,
            "The identical level (one policy trained on the crash distribution, acting for "
            "every protocol) on held-out crash sizes, step and seeds, beside static levers, "
            "the Bayesian risk manager and the untrained actor (the trained policy's "
            "starting point: what training added). Change is against static, in %.",
            [generalisation_table(by_level)],
        ),
        section(
            "Mechanism trace",
            None,
            "After the crash: how often protocols tighten in the same step, how many "
            "steps see two or more protocols liquidating, and the liquidators' sale "
            "proceeds (fire-sale volume).",
            [trace],
        ),
    ]
    subtitle = (
        f"{runs['level'].nunique()} levels x {runs['shock'].nunique()} crashes x "
        f"{runs['seed'].nunique()} seeds = {len(runs)} runs on {settings['scenario']!r}; "
        f"rewards {', '.join(settings['rewards'])}."
    )
    return page(
        root, "liqnet experiment: does model convergence amplify shocks?", subtitle, sections
    )
