"""Tests of the report figures."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd
import pytest

from liqnet.analysis import plots
from liqnet.analysis.graphs import contagion_graph
from liqnet.scenarios import run
from tests.helpers.worlds import Small


@pytest.mark.parametrize("panels", [1, 2])
def test_contagion_legend_fits_the_figure(
    panels: int, small: Small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one panel the legend's single row ran past both edges of the figure."""
    result = run(small("flash_crash"), steps=30)
    seen: list[tuple[object, object, list[str]]] = []
    saved = plots._save

    def save(fig: plt.Figure, path: Path) -> Path:
        legend = fig.legends[0]
        box = legend.get_window_extent(fig.canvas.get_renderer())
        seen.append((box, fig.bbox.frozen(), [t.get_text() for t in legend.get_texts()]))
        return saved(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    graphs = [(f"panel {k}", contagion_graph(result, 10 * (k + 1))) for k in range(panels)]
    plots.plot_contagion(graphs, tmp_path / "contagion.png")
    ((box, frame, labels),) = seen
    assert box.x0 >= frame.x0 and box.x1 <= frame.x1  # type: ignore[attr-defined]
    assert box.y0 >= frame.y0  # type: ignore[attr-defined]
    assert "credit line (lender → borrower)" not in labels  # none drawn, none listed


def many_protocols(n: int = 15, borrowers: int = 3) -> nx.DiGraph:
    """A contagion graph as an ecosystem's: ``n`` protocols on ETH and BTC, every lender
    with a credit line to each of the last ``borrowers``."""
    graph = nx.DiGraph(step=50)
    for asset in ("ETH", "BTC"):
        graph.add_node(f"asset:{asset}", kind="asset", type="asset", label=asset, drawdown=0.3)
    ids = [f"protocol_number_{k}" for k in range(n)]
    for k, pid in enumerate(ids):
        kind = "perp" if k >= n - borrowers else "lending"
        loss = 1e6 * (k + 1)
        graph.add_node(pid, kind="protocol", type=kind, loss=loss, equity_usd=5e6, defaulted=False)
        for asset in ("ETH", "BTC"):
            graph.add_edge(pid, f"asset:{asset}", channel="collateral", weight=1e8 / (k + 1))
    for lender in ids[: n - borrowers]:
        for borrower in ids[n - borrowers :]:
            graph.add_edge(lender, borrower, channel="credit", weight=1e5, loss=0.0)
    return graph


def test_many_protocols_labels_do_not_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifteen protocols in a row-of-labels circle overlapped their labels; on the circle
    layout labels point outward, and only the largest credit lines carry amounts."""
    seen: list[plt.Figure] = []
    saved = plots._save

    def save(fig: plt.Figure, path: Path) -> Path:
        seen.append(fig)
        fig.canvas.draw()
        boxes = {"node": [], "credit": []}
        frame = fig.bbox
        for ax in fig.axes:
            for text in ax.texts:
                box = text.get_window_extent(fig.canvas.get_renderer())
                assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()
                assert frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
                kind = "credit" if text.get_text().startswith("owed") else "node"
                boxes[kind].append((ax, text.get_text(), box))
        for found in boxes.values():
            for i, (ax, name, box) in enumerate(found):
                for other_ax, other, other_box in found[i + 1 :]:
                    assert ax is not other_ax or not box.overlaps(other_box), (name, other)
        assert len(boxes["credit"]) == plots.EDGE_LABELS_MAX * len(fig.axes)
        return saved(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    graph = many_protocols()
    plots.plot_contagion([("one", graph), ("two", graph)], tmp_path / "contagion.png")
    assert len(seen) == 1


def test_many_debtrank_bars_keep_their_names_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifteen protocol names under fifteen bars ran into each other unrotated."""
    names = [f"protocol_number_{k}" for k in range(15)]
    table = pd.DataFrame({"protocol": names, "debtrank": [0.01 * k for k in range(15)]})
    seen: list[tuple[float, float, float, float]] = []
    saved = plots._save

    def save(fig: plt.Figure, path: Path) -> Path:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        ticks = ax.get_xticklabels()
        centres = ax.transData.transform([(k, 0.0) for k in range(len(ticks))])[:, 0]
        gap = float(min(b - a for a, b in itertools.pairwise(centres)))
        angle = math.radians(ticks[0].get_rotation())
        line = ticks[0].get_fontsize() * fig.dpi / 72.0  # one line of text, in pixels
        ticks[0].set_rotation(0.0)
        width = ticks[0].get_window_extent(renderer).width  # of the longest-named tick
        seen.append((gap, angle, line, width))
        return saved(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    plots.plot_debtrank(table, 50, tmp_path / "debtrank.png")
    ((gap, angle, line, width),) = seen
    if angle == 0.0:
        assert width < gap  # flat names fit between the bars
    else:
        assert gap * math.sin(angle) > line  # parallel slanted names stay a line apart
