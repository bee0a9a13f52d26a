"""Report figures (matplotlib, Agg): each function writes one PNG and returns its path."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from liqnet.analysis.amplification import Amplification
from liqnet.analysis.cascade import cascade_rounds
from liqnet.analysis.convergence import Synchrony
from liqnet.analysis.graph_layout import (
    CENTRE,
    RADIUS,
    ROW_MAX,
    label_arcs,
    layout,
    outward,
    separate,
)
from liqnet.core.result import RunResult

__all__ = [
    "plot_amplification",
    "plot_cascade",
    "plot_contagion",
    "plot_debtrank",
    "plot_synchrony",
]

TYPE_COLORS = {
    "lending": "#4C72B0",
    "comet": "#64B5CD",
    "perp": "#DD8452",
    "options": "#55A868",
}
CREDIT_COLOR, COLLATERAL_COLOR, DEFAULT_COLOR = "#C44E52", "#8C8C8C", "#C44E52"
DPI = 110
ARC_RAD = 0.25  # curvature of credit arrows, so opposite lines do not overlap
EDGE_LABELS_MAX = 6  # credit lines labelled per panel beyond that: the largest only


def _usd(x: float) -> str:
    """Compact USD: $1.2M, $340k, $12."""
    sign, x = ("-" if x < 0 else ""), abs(x)
    if x >= 1e6:
        return f"{sign}${x / 1e6:,.1f}M"
    return f"{sign}${x / 1e3:,.0f}k" if x >= 1e3 else f"{sign}${x:,.0f}"


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def plot_contagion(panels: list[tuple[str, nx.DiGraph]], path: str | Path) -> Path:
    """Contagion graphs side by side, on one scale.

    Protocol circles are sized by equity lost (a small circle: no loss), coloured by
    type, ringed red once defaulted. Credit edges (lender -> borrower) are red arrows,
    width by the exposure still owed or already written off; collateral edges
    (protocol -> asset) are grey dashed lines, width by USD exposure.
    """
    graphs = [g for _, g in panels]
    nodes = [d for g in graphs for _, d in g.nodes(data=True)]
    types = sorted({d["type"] for d in nodes if d.get("kind") == "protocol"})
    max_loss = max([1.0] + [d.get("loss", 0.0) for g in graphs for _, d in g.nodes(data=True)])
    credit = [max(d["weight"], d.get("loss", 0.0)) for g in graphs for *_, d in _edges(g, "credit")]
    collat = [d["weight"] for g in graphs for *_, d in _edges(g, "collateral")]
    max_credit, max_collat = max([*credit, 1.0]), max([*collat, 1.0])
    circle = any(
        sum(d.get("kind") == "protocol" for _, d in g.nodes(data=True)) > ROW_MAX for g in graphs
    )
    # A circle of labelled protocols needs room around it: a larger, square panel.
    width, height = (10.0, 8.0) if circle else (6.5, 6.2)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    labels = []
    node_labels: list[tuple[plt.Axes, plt.Annotation, tuple[float, float]]] = []
    for ax, (title, graph) in zip(axes[0], panels, strict=True):
        pos = layout(graph)
        lines = sorted(
            _edges(graph, "credit"), key=lambda e: -max(e[2]["weight"], e[2].get("loss", 0.0))
        )
        labelled = {(u, v) for u, v, _ in lines[:EDGE_LABELS_MAX]}
        if len(lines) > EDGE_LABELS_MAX:
            title += f"\n(amounts on the {EDGE_LABELS_MAX} largest of {len(lines)} credit lines)"
        for u, v, d in _edges(graph, "collateral"):
            width = 0.6 + 5.0 * math.sqrt(d["weight"] / max_collat)
            nx.draw_networkx_edges(
                graph,
                pos,
                [(u, v)],
                ax=ax,
                width=width,
                style="dashed",
                edge_color=COLLATERAL_COLOR,
                alpha=0.6,
                arrows=False,
            )
        for u, v, d in _edges(graph, "credit"):
            at_risk = max(d["weight"], d.get("loss", 0.0))
            nx.draw_networkx_edges(
                graph,
                pos,
                [(u, v)],
                ax=ax,
                width=1.5 + 7.0 * math.sqrt(at_risk / max_credit),
                edge_color=CREDIT_COLOR,
                arrows=True,
                arrowsize=22,
                node_size=2500,
                connectionstyle=f"arc3,rad={ARC_RAD}",
            )
            if (u, v) not in labelled:
                continue
            text = f"owed {_usd(d['weight'])}"
            if d.get("loss", 0.0) > 0:
                text += f"\nwritten off {_usd(d['loss'])}"
            labels.append((ax, pos[u], pos[v], text))
        for node, d in graph.nodes(data=True):
            x, y = pos[node]
            if d.get("kind") == "asset":
                ax.scatter(
                    [x], [y], s=900, marker="s", color="#DDDDDD", edgecolor="black", zorder=3
                )
                # Short: three or more asset squares sit close in the circle's centre.
                label = f"{d.get('label', node)}\n-{d.get('drawdown', 0.0):.0%}"
                ax.annotate(
                    label,
                    (x, y),
                    xytext=(0, -20),
                    textcoords="offset points",
                    ha="center",
                    va="top",
                    fontsize=10,
                    zorder=4,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
                )
                continue
            size = 350 + 2800 * math.sqrt(d.get("loss", 0.0) / max_loss)
            ax.scatter(
                [x],
                [y],
                s=size,
                color=_type_color(d.get("type", "")),
                edgecolor=DEFAULT_COLOR if d.get("defaulted") else "black",
                linewidth=4 if d.get("defaulted") else 1,
                zorder=3,
            )
            label = f"{node}\nloss {_usd(d.get('loss', 0.0))}\nequity {_usd(d['equity_usd'])}"
            if d.get("defaulted"):
                label += f"\nDEFAULTED (step {d['default_step']})"
            # Scatter sizes are areas in points^2: clear the circle's radius, whatever it is.
            lift = math.sqrt(size) / 2 + 5
            place: dict[str, object] = {"xytext": (0, lift), "ha": "center", "va": "bottom"}
            if circle:
                place = outward((x, y), lift)
            note = ax.annotate(
                label, (x, y), textcoords="offset points", fontsize=8 if circle else 9, **place
            )
            if circle:
                node_labels.append((ax, note, (x, y)))
        ax.set_title(title, fontsize=11)
        if circle:
            # Labels of the side nodes run ~0.4 data units outward (three lines of 8 pt).
            ax.set_xlim(CENTRE[0] - RADIUS - 0.55, CENTRE[0] + RADIUS + 0.55)
            ax.set_ylim(CENTRE[1] - RADIUS - 0.3, CENTRE[1] + RADIUS + 0.3)
            ax.set_aspect("equal")
        else:
            ax.set_xlim(-0.15, 1.15)
            ax.set_ylim(-0.45, 1.75 if len(pos) <= 10 else 2.0)
        ax.axis("off")
    handles = [
        *[Line2D([], [], color=CREDIT_COLOR, lw=3, label="credit line (lender → borrower)")]
        * bool(credit),
        Line2D([], [], color=COLLATERAL_COLOR, lw=2, ls="--", label="collateral / exposure"),
        *[Patch(color=_type_color(t), label=f"{t} protocol") for t in types],
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            markersize=12,
            markerfacecolor="white",
            markeredgecolor=DEFAULT_COLOR,
            markeredgewidth=3,
            label="defaulted",
        ),
    ]
    # About three legend entries fit the width of one panel: wrap into rows rather than
    # letting a single row run past the figure's edges (clipped with one panel).
    ncol = min(len(handles), 3 * len(panels))
    rows = math.ceil(len(handles) / ncol)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle("Contagion graph: circle area ~ equity lost, edge width ~ USD", fontsize=12)
    fig.tight_layout(rect=(0, 0.02 + 0.04 * rows, 1, 0.95))
    for ax in axes[0]:
        ax.apply_aspect()  # equal aspect moves the axes box at draw time: settle it first
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)  # this module draws with Agg
    renderer = canvas.get_renderer()
    separate(node_labels, renderer)
    label_arcs(labels, renderer, ARC_RAD, CREDIT_COLOR)
    return _save(fig, path)


def _type_color(protocol_type: str) -> str:
    return TYPE_COLORS.get(protocol_type, "#8172B3")


def _edges(graph: nx.DiGraph, channel: str) -> list[tuple[str, str, dict]]:
    return [(u, v, d) for u, v, d in graph.edges(data=True) if d.get("channel") == channel]


def plot_cascade(result: RunResult, path: str | Path, pad_steps: int = 6) -> Path:
    """Prices and liquidations by cascade round, zoomed on the steps with liquidations."""
    ts, dt = result.timeseries, result.scenario.dt_hours
    rounds = cascade_rounds(result)
    steps = ts["step"]
    lo, hi = int(steps.iloc[0]), int(steps.iloc[-1])
    if len(rounds):
        lo = max(lo, int(rounds["step"].min()) - pad_steps)
        hi = min(hi, int(rounds["step"].max()) + pad_steps)
    window = ts[(steps >= lo) & (steps <= hi)]
    hours = window["step"] * dt
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.2]}
    )
    for asset in result.scenario.market.assets:
        base = ts[f"{asset}.reference"].iloc[0]
        (line,) = top.plot(
            hours, window[f"{asset}.reference"] / base, lw=2, label=f"{asset} reference"
        )
        top.step(
            hours,
            window[f"{asset}.oracle"] / base,
            where="post",
            ls="--",
            lw=1,
            color=line.get_color(),
            label=f"{asset} oracle",
        )
    top.set_ylabel("price / initial price")
    top.set_title(
        f"{result.scenario.name}: prices and liquidations by cascade round "
        f"(seed {result.seed}, feedback {'on' if result.feedback else 'off'})"
    )
    top.legend(fontsize=9, ncol=2)
    top.grid(alpha=0.3)
    if len(rounds):
        table = (
            rounds.pivot_table(
                index="step", columns="round", values="repaid_usd", aggfunc="sum", fill_value=0.0
            )
            / 1e6
        )
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(table.columns)))
        bottom_acc = np.zeros(len(table))
        for color, rnd in zip(colors, table.columns, strict=True):
            label = "round 0 (exogenous move)" if rnd == 0 else f"round {rnd}"
            bottom.bar(
                table.index * dt,
                table[rnd],
                width=0.85 * dt,
                bottom=bottom_acc,
                color=color,
                label=label,
            )
            bottom_acc += table[rnd].to_numpy()
        bottom.legend(fontsize=9, ncol=2, title="cascade round")
    else:
        bottom.text(
            0.5,
            0.5,
            "no liquidations in this run",
            transform=bottom.transAxes,
            ha="center",
            fontsize=12,
        )
    bottom.set_ylabel("debt repaid by liquidators\n(USD million, per step)")
    bottom.set_xlabel(f"hours (one step = {dt:g} h)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_debtrank(table: pd.DataFrame, step: int, path: str | Path) -> Path:
    """DebtRank R of each protocol's default, with the distress it causes to others."""
    many = len(table) > ROW_MAX  # names and values no longer fit side by side
    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(table)), 5.5 if many else 4.5))
    if len(table):
        names = [str(p) for p in table["protocol"]]
        bars = ax.bar(names, table["debtrank"], color="#4C72B0")
        for bar, value in zip(bars, table["debtrank"], strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value,
                f"{value:.3f}",
                ha="center",
                va="bottom",
                fontsize=8 if many else 10,
            )
        if many:
            ax.tick_params(axis="x", labelrotation=45)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
                tick.set_rotation_mode("anchor")
        top = float(table["debtrank"].max())
        ax.set_ylim(0.0, max(0.05, top * 1.25))
        if top == 0.0:
            ax.text(
                0.5,
                0.6,
                "no credit exposure at this step:\nno default propagates",
                transform=ax.transAxes,
                ha="center",
                fontsize=11,
            )
    ax.set_ylabel("DebtRank R (share of system equity\nlost by propagation)")
    ax.set_xlabel("protocol assumed to default")
    ax.set_title(f"DebtRank per protocol on the credit graph at step {step}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _or_na(value: float) -> str:
    """A statistic to two decimals, or "undefined" when it is NaN."""
    return f"{value:.2f}" if np.isfinite(value) else "undefined"


def plot_synchrony(sync: Synchrony, path: str | Path) -> Path:
    """Heat map of the agents' action correlations, values written in the cells."""
    matrix = sync.correlation
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.4 * n + 3.5, 1.2 * n + 2.2))
    image = ax.imshow(matrix.to_numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    ax.set_xticks(range(n), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(n), matrix.index)
    for i in range(n):
        for j in range(n):
            value = matrix.iat[i, j]
            defined = bool(np.isfinite(value))
            ax.text(
                j,
                i,
                f"{value:.2f}" if defined else "n/a",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if defined and abs(value) > 0.6 else "black",
            )
    fig.colorbar(image, ax=ax, label="correlation of lever paths")
    still = [a for a in sync.agents if sync.static.get(a, False)]
    if still:
        note = f"levers never moved: {', '.join(still)} (a constant response has no "
        fig.text(
            0.02, 0.01, note + "direction: n/a, left out of the means)", fontsize=8, color="#555"
        )
    ax.set_title(
        f"Action synchrony: mean pairwise {_or_na(sync.mean_correlation)}, "
        f"top-eigenvalue share {_or_na(sync.eigenvalue_share)}",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_amplification(amp: Amplification, path: str | Path) -> Path:
    """Feedback vs no-feedback bars per metric, with the ratio written above."""
    labels = {
        "bad_debt": "bad debt (USD M)",
        "liquidated": "liquidated (USD M)",
        "drawdown": "max drawdown (%)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
    for ax, (metric, label) in zip(axes, labels.items(), strict=True):
        scale = 100.0 if metric == "drawdown" else 1e-6
        values = [amp.without_feedback[metric] * scale, amp.with_feedback[metric] * scale]
        bars = ax.bar(["without\nfeedback", "with\nfeedback"], values, color=["#8C8C8C", "#C44E52"])
        unit = "%" if metric == "drawdown" else "M"
        for bar, value in zip(bars, values, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value,
                f"{value:,.1f}{unit}",
                ha="center",
                va="bottom",
                fontsize=10,
            )
        ratio = getattr(amp, metric)
        shown = "∞" if math.isinf(ratio) else f"{ratio:.2f}"
        ax.set_title(f"{label}\namplification x{shown}", fontsize=10)
        ax.set_ylim(0, max([*values, 1e-9]) * 1.2)
        ax.grid(axis="y", alpha=0.3)
    channels = ", ".join(amp.channels) or "none"
    fig.suptitle(
        f"Amplification: run vs its feedback=False twin (channels open: {channels})", fontsize=11
    )
    fig.tight_layout()
    return _save(fig, path)
