"""Tests of the report figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
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
