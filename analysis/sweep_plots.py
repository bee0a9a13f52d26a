"""Figures of a sweep report: outcomes against each varied parameter, with the spread
over seeds, and heat maps over two parameters (matplotlib, Agg)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = [
    "OUTCOMES",
    "format_value",
    "label",
    "ordered",
    "plot_heatmaps",
    "plot_outcomes",
    "seed_spread",
]

# Outcome column -> (axis label, scale, unit): what a reader of a sweep compares.
OUTCOMES: dict[str, tuple[str, float, str]] = {
    "bad_debt_usd": ("bad debt", 1e-6, "USD M"),
    "liquidated_usd": ("liquidated", 1e-6, "USD M"),
    "max_drawdown": ("max drawdown", 100.0, "%"),
    "defaults": ("defaults", 1.0, "protocols"),
    "amplification_bad_debt": ("amplification of bad debt", 1.0, "x"),
    "amplification_liquidated": ("amplification of liquidations", 1.0, "x"),
}
MAX_GROUPS = 6  # more lines than this in one panel cannot be told apart
DPI = 110

_RULES = [
    (re.compile(r"^shocks\.0\.return$"), lambda m: "shock size (return)"),
    (re.compile(r"^shocks\.(\d+)\.return$"), lambda m: f"shock {m[1]} size (return)"),
    (re.compile(r"^market\.assets\.(\w+)\.pool_usd$"), lambda m: f"{m[1]} pool depth (USD)"),
    (
        re.compile(r"^market\.assets\.(\w+)\.oracle\.latency_steps$"),
        lambda m: f"{m[1]} oracle latency (steps)",
    ),
    (re.compile(r"^market\.assets\.(\w+)\.(.+)$"), lambda m: f"{m[1]} {m[2].replace('.', ' ')}"),
    (re.compile(r"^protocols\.(\w+)\.(?:params\.)?(.+)$"), lambda m: f"{m[1]} {m[2]}"),
    (re.compile(r"^policy_mix$"), lambda m: "policy mix"),
]


def label(key: str) -> str:
    """A reader's name for a varied dotted key (``market.assets.ETH.pool_usd`` ->
    ``ETH pool depth (USD)``); unknown keys are shown as they are."""
    for pattern, name in _RULES:
        match = pattern.match(key)
        if match:
            return str(name(match))
    return key


def format_value(key: str, value: object) -> str:
    """A parameter value as a reader writes it: returns in %, USD compactly."""
    if isinstance(value, float | int | np.number) and not isinstance(value, bool):
        x = float(value)
        if key.endswith(".return"):
            return f"{x:+.0%}"
        if key.endswith("_usd"):
            return _usd(x)
        return f"{x:g}"
    return str(value)


def _usd(x: float) -> str:
    sign, x = ("-" if x < 0 else ""), abs(x)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= size:
            return f"{sign}${x / size:,.3g}{suffix}"
    return f"{sign}${x:,.0f}"


def seed_spread(table: pd.DataFrame, param: str, group: str | None, column: str) -> pd.DataFrame:
    """Mean and spread over seeds of ``column`` at each value of ``param`` (and ``group``).

    Each seed's value at a point is first averaged over the parameters not shown, so the
    band is the spread between seeds, not between the hidden grid points.

    Returns:
        Columns ``param, [group], mean, low, high, seeds`` (low/high: min/max over seeds).
    """
    keys = [param] if group is None else [param, group]
    finite = table[np.isfinite(table[column].astype(float))]
    per_seed = finite.groupby([*keys, "seed"], sort=False)[column].mean().reset_index()
    stats = per_seed.groupby(keys, sort=False)[column].agg(["mean", "min", "max", "count"])
    stats.columns = ["mean", "low", "high", "seeds"]
    order = [ordered(table[k]) for k in keys]
    index = (
        pd.MultiIndex.from_product(order, names=keys) if group else pd.Index(order[0], name=param)
    )
    return stats.reindex(index).dropna(subset=["mean"]).reset_index()


def ordered(values: pd.Series) -> list[Any]:
    """Distinct values: sorted when numeric, else in order of appearance."""
    unique = list(pd.unique(values.dropna()))
    if _numeric(unique):
        if str(values.name).endswith(".return") and max(unique) <= 0:
            return sorted(unique, reverse=True)  # a crash grows to the right: -10%, -20%, ...
        return sorted(unique)
    return unique


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values)


def plot_outcomes(
    table: pd.DataFrame, param: str, group: str | None, outcomes: Sequence[str], path: Path
) -> Path:
    """One panel per outcome against ``param``, a line per value of ``group``: the mean
    over seeds, shaded between the lowest and highest seed."""
    ncols = min(3, len(outcomes))
    nrows = math.ceil(len(outcomes) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.6 * nrows), squeeze=False)
    xs = ordered(table[param])
    numeric = _numeric(xs)
    log = numeric and min(xs) > 0 and max(xs) / min(xs) >= 10
    groups = ordered(table[group]) if group else [None]
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(groups)))
    for ax, column in zip(axes.flat, outcomes, strict=False):
        name, scale, unit = OUTCOMES[column]
        spread = seed_spread(table, param, group, column)
        for color, g in zip(colors, groups, strict=True):
            part = spread if group is None else spread[spread[group] == g]
            if part.empty:
                continue
            x = part[param].to_numpy() if numeric else [xs.index(v) for v in part[param]]
            text = "all runs" if group is None else format_value(group, g)
            ax.plot(x, part["mean"] * scale, marker="o", color=color, label=text)
            ax.fill_between(x, part["low"] * scale, part["high"] * scale, color=color, alpha=0.2)
        if log:
            ax.set_xscale("log")
        if numeric and len(xs) > 1 and xs[0] > xs[-1]:
            ax.invert_xaxis()
        ticks = list(xs) if numeric else list(range(len(xs)))
        if len(xs) <= 8:
            names = [format_value(param, v) for v in xs]
            # Long category names (policy mixes) overlap when level: slant them.
            slant = {"rotation": 20, "ha": "right"} if max(map(len, names)) > 8 else {}
            ax.set_xticks(ticks, names, **slant)
            ax.minorticks_off()
        ax.set_xlabel(label(param))
        ax.set_ylabel(f"{name} ({unit})")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(outcomes) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if group is not None and handles:
        fig.legend(
            handles,
            labels,
            title=label(group),
            loc="upper right",
            fontsize=9,
            title_fontsize=9,
        )
    by = f", by {label(group)}" if group else ""
    fig.suptitle(
        f"Outcomes against {label(param)}{by} (line: mean over seeds; band: lowest to "
        "highest seed)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 0.86 if group else 1, 0.95))
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)


def plot_heatmaps(
    table: pd.DataFrame, rows: str, cols: str, outcomes: Sequence[str], path: Path
) -> Path:
    """Heat maps of the mean of each outcome over ``rows`` x ``cols`` (other parameters
    and seeds averaged), values written in the cells."""
    ys, xs = ordered(table[rows]), ordered(table[cols])
    # Room for the row labels left of each map (policy mix names are long).
    width = 4.4 + 0.045 * max(len(format_value(rows, v)) for v in ys)
    fig, axes = plt.subplots(1, len(outcomes), figsize=(width * len(outcomes), 4.2), squeeze=False)
    for ax, column in zip(axes[0], outcomes, strict=True):
        name, scale, unit = OUTCOMES[column]
        finite = table[np.isfinite(table[column].astype(float))]
        grid = finite.pivot_table(index=rows, columns=cols, values=column, aggfunc="mean")
        grid = grid.reindex(index=ys, columns=xs) * scale
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="magma_r", aspect="auto")
        ax.set_xticks(range(len(xs)), [format_value(cols, v) for v in xs])
        ax.set_yticks(range(len(ys)), [format_value(rows, v) for v in ys])
        ax.set_xlabel(label(cols))
        ax.set_ylabel(label(rows))
        top = np.nanmax(values) if np.isfinite(values).any() else 0.0
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = values[i, j]
                if np.isfinite(v):
                    dark = top > 0 and v > 0.6 * top
                    ax.text(
                        j,
                        i,
                        f"{v:,.3g}",
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="white" if dark else "black",
                    )
        fig.colorbar(image, ax=ax, label=f"{name} ({unit})", shrink=0.85)
        ax.set_title(f"mean {name}", fontsize=10)
    fig.suptitle(
        f"{label(rows)} x {label(cols)} (mean over seeds and other parameters)", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)
