"""The overview figure every saved run carries (``run.png``; matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from liqnet.core.result import RunResult


def plot_run(result: RunResult, path: str | Path) -> None:
    """Prices, liquidations per cascade round and protocol equity over time, as a PNG."""
    ts, events = result.timeseries, result.events
    hours = ts["step"] * result.scenario.dt_hours
    assets = list(result.scenario.market.assets)
    protocols = [p.id for p in result.scenario.protocols]
    fig, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True, constrained_layout=True)

    ax = axes[0]
    for asset in assets:
        base = ts[f"{asset}.reference"].iloc[0]
        (line,) = ax.plot(hours, ts[f"{asset}.reference"] / base, label=f"{asset} reference")
        ax.plot(hours, ts[f"{asset}.pool"] / base, ls=":", color=line.get_color(), label="pool")
        ax.step(
            hours,
            ts[f"{asset}.oracle"] / base,
            where="post",
            ls="--",
            lw=0.8,
            color=line.get_color(),
            label="oracle",
        )
    ax.set_ylabel("price / initial")
    ax.set_title(f"{result.scenario.name}: prices (seed {result.seed}, feedback {result.feedback})")
    ax.legend(ncol=len(assets), fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    if len(events):
        by_round = events.groupby(["step", "round"])["repaid_usd"].sum().unstack(fill_value=0.0)
        bottom = None
        for round_index in by_round.columns:
            values = by_round[round_index] / 1e6
            x = by_round.index * result.scenario.dt_hours
            ax.bar(
                x,
                values,
                width=result.scenario.dt_hours * 0.9,
                bottom=bottom,
                label=f"round {int(round_index)}",
            )
            bottom = values if bottom is None else bottom + values
        ax.legend(fontsize=8, ncol=5, title="cascade round")
    else:
        ax.text(0.5, 0.5, "no liquidations", transform=ax.transAxes, ha="center")
    ax.set_ylabel("debt repaid by liquidators\n(USD million)")
    ax.grid(alpha=0.3)

    ax = axes[2]
    for pid in protocols:
        ax.plot(hours, ts[f"{pid}.equity"] / 1e6, label=pid)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel("equity (USD million)")
    ax.set_xlabel("hours")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
