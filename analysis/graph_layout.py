"""Where a contagion figure puts its nodes and labels (used by :mod:`liqnet.analysis.plots`).

A few protocols stand in a row above the assets; more stand on a circle around them, with
labels pointing outward and moved apart until they clear each other.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import networkx as nx
from matplotlib.backend_bases import RendererBase
from matplotlib.transforms import Bbox

__all__ = [
    "CENTRE",
    "LABEL_GAP_PX",
    "RADIUS",
    "ROW_MAX",
    "label_arcs",
    "layout",
    "outward",
    "separate",
]

ROW_MAX = 6  # protocols drawn in a row; more go on a circle (labels would collide)
CENTRE, RADIUS = (0.5, 1.3), 0.45  # the circle layout, in data units (equal aspect)
LABEL_GAP_PX = 4.0  # least gap kept between labels moved apart on a crowded figure


def layout(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Protocols on a row above the assets; more than ``ROW_MAX`` on a circle around them.

    On the circle (drawn with equal aspect) the assets sit in a row at its centre, so
    every protocol's exposure line is a spoke of the same length and none crosses a
    label, which are placed outward (see :func:`outward`).
    """
    protocols = [n for n, d in graph.nodes(data=True) if d.get("kind") == "protocol"]
    assets = [n for n, d in graph.nodes(data=True) if d.get("kind") == "asset"]
    pos: dict[str, tuple[float, float]] = {}
    if len(protocols) <= ROW_MAX:
        for k, n in enumerate(protocols):
            pos[n] = ((k + 0.5) / len(protocols), 1.0)
        for k, n in enumerate(assets):
            pos[n] = ((k + 0.5) / max(len(assets), 1), 0.0)
        return pos
    for k, n in enumerate(protocols):
        angle = math.pi / 2 - 2 * math.pi * k / len(protocols)  # clockwise from the top
        pos[n] = (CENTRE[0] + RADIUS * math.cos(angle), CENTRE[1] + RADIUS * math.sin(angle))
    span = min(0.8 * RADIUS, 0.18 * len(assets))  # the asset row stays inside the circle
    for k, n in enumerate(assets):
        x = CENTRE[0] if len(assets) == 1 else CENTRE[0] - span / 2 + span * k / (len(assets) - 1)
        pos[n] = (x, CENTRE[1])
    return pos


def outward(pos: tuple[float, float], lift: float) -> dict[str, object]:
    """``annotate`` keywords placing a circle-layout label outside the circle at ``pos``,
    ``lift`` points from the node's centre, aligned away from the centre."""
    dx, dy = pos[0] - CENTRE[0], pos[1] - CENTRE[1]
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = dx / norm, dy / norm
    return {
        "xytext": (lift * ux, lift * uy),
        # Only a node straight above or below the centre is centred: neighbours near it
        # lean apart, so labels as wide as the gap between nodes do not collide.
        "ha": "left" if ux > 0.15 else "right" if ux < -0.15 else "center",
        "va": "bottom" if uy > 0.3 else "top" if uy < -0.3 else "center",
    }


def separate(
    notes: list[tuple[plt.Axes, plt.Annotation, tuple[float, float]]], renderer: RendererBase
) -> None:
    """Move circle-layout labels outward, 8 points at a time (at most 12 times), until
    each clears the ones before it: neighbours on a crowded circle can touch."""
    placed: list[tuple[plt.Axes, Bbox]] = []
    for ax, note, at in notes:
        dx, dy = at[0] - CENTRE[0], at[1] - CENTRE[1]
        norm = math.hypot(dx, dy) or 1.0
        for _ in range(12):
            # A margin: extents measured before the final draw can be off by a few pixels.
            box = note.get_window_extent(renderer).padded(LABEL_GAP_PX)
            if not any(a is ax and box.overlaps(b) for a, b in placed):
                break
            x, y = note.xyann
            note.xyann = (x + 8.0 * dx / norm, y + 8.0 * dy / norm)
        placed.append((ax, note.get_window_extent(renderer)))


def label_arcs(
    labels: list[tuple[plt.Axes, tuple[float, float], tuple[float, float], str]],
    renderer: RendererBase,
    rad: float,
    color: str,
) -> None:
    """Write each ``(axes, start, end, text)`` at the middle of its ``arc3`` arrow of
    curvature ``rad``, below it; a label that would touch one placed before steps down.
    Call after the layout is final (positions are computed in display space)."""
    placed: list[tuple[plt.Axes, Bbox]] = []  # (axes, label box in display pixels)
    for ax, start, end, text in labels:
        # arc3 bends in display space: its Bezier midpoint is the chord's midpoint moved
        # by rad / 2 times the chord turned clockwise.
        (x0, y0), (x1, y1) = ax.transData.transform([start, end])
        half = 0.5 * rad
        mid = ((x0 + x1) / 2 + half * (y1 - y0), (y0 + y1) / 2 - half * (x1 - x0))
        at_x, at_y = ax.transData.inverted().transform(mid)
        note = ax.annotate(
            text,
            (float(at_x), float(at_y)),
            xytext=(0, -8),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=9,
            color=color,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1},
        )
        # Lines to one borrower meet near it, so their midpoints can coincide: step a
        # label down until it clears the labels already placed.
        for shift in range(1, 8):
            box = note.get_window_extent(renderer).padded(LABEL_GAP_PX)
            if not any(a is ax and box.overlaps(b) for a, b in placed):
                break
            note.xyann = (0, -8 - 13 * shift)
        placed.append((ax, note.get_window_extent(renderer)))
