"""Reports: ``report.html`` with figures, plus the tables and graphs behind them.

:func:`analyze` is what ``liqnet analyze DIR`` calls. A directory holding
``sweep.parquet`` is a sweep (one row per run, ``runs/<run_id>/`` saved runs); any
other directory must be a saved run (:meth:`RunResult.save`). Output layout::

    report.html          self-contained (figures embedded as base64 PNG)
    figures/*.png        the same figures as files
    tables/*.csv|.parquet the data behind every figure
    graphs/*.graphml|.json contagion graphs, cascade tree, synchrony graph
    metrics.json         headline numbers (amplification, convergence, cascade, DebtRank)

The HTML is built with the standard library only (see :mod:`liqnet.analysis.htmlpage`);
sweep reports live in :mod:`liqnet.analysis.sweep`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from liqnet.analysis.amplification import FLOORS, METRICS, twin_amplification
from liqnet.analysis.cascade import cascade_rounds, cascade_stats, cascade_tree
from liqnet.analysis.convergence import action_synchrony, convergence_index
from liqnet.analysis.export import to_graphml, to_node_link_json
from liqnet.analysis.graphs import contagion_graph, debtrank_by_protocol, edge_table, node_table
from liqnet.analysis.htmlpage import page, section, write_table
from liqnet.analysis.plots import (
    plot_amplification,
    plot_cascade,
    plot_contagion,
    plot_debtrank,
    plot_synchrony,
)
from liqnet.analysis.results import load_result, snapshot_step
from liqnet.analysis.sweep import SWEEP_FILE, write_sweep_report
from liqnet.core.result import Runner, RunResult

__all__ = ["analyze", "write_run_report"]


def write_run_report(
    result: RunResult | str | Path,
    out_dir: str | Path | None = None,
    *,
    runner: Runner | None = None,
) -> Path:
    """Analyse one run and write its report.

    Args:
        result: A :class:`RunResult` or a directory written by ``RunResult.save``.
        out_dir: Where to write; default: the run directory (required for a RunResult).
        runner: Runs the counterfactual twin to measure amplification (one extra run;
            ``liqnet.scenarios.run``); without it the report has no amplification.

    Returns:
        The path of ``report.html``.
    """
    if not isinstance(result, RunResult):
        out_dir = result if out_dir is None else out_dir
        result = load_result(result)
    if out_dir is None:
        raise ValueError("out_dir is required when result is a RunResult")
    out = Path(out_dir)
    figures, tables, graphs = out / "figures", out / "tables", out / "graphs"
    for folder in (figures, tables, graphs):
        folder.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, object] = {"scenario": result.scenario.name, "seed": result.seed}
    sections = []

    snap, last = snapshot_step(result), int(result.timeseries["step"].iloc[-1])
    graph = contagion_graph(result, snap)
    credit_lines = sum(d.get("channel") == "credit" for *_, d in graph.edges(data=True))
    # snapshot_step's choice, said as it is: without defaults it is the step of the
    # largest credit exposure, and without credit lines simply the last step.
    why = "before the first default" if result.defaults else "largest credit exposure"
    if not result.defaults and not credit_lines:
        why = "end of run; no credit lines between protocols"
    panels = [(f"step {snap} ({why})", graph)]
    if snap != last:
        panels.append((f"step {last} (end of run)", contagion_graph(result, last)))
    for label, (_, graph) in zip(("snapshot", "end"), panels, strict=False):
        to_graphml(graph, graphs / f"contagion_{label}.graphml")
        to_node_link_json(graph, graphs / f"contagion_{label}.json")
    nodes = pd.concat([node_table(g).assign(step=g.graph["step"]) for _, g in panels])
    edges = pd.concat([edge_table(g, {"step": g.graph["step"]}) for _, g in panels])
    write_table(nodes, tables, "contagion_nodes")
    write_table(edges, tables, "contagion_edges")
    sections.append(
        section(
            "Contagion graph",
            plot_contagion(panels, figures / "contagion.png"),
            f"Snapshot at step {snap} ({why}). Protocols (circles, area ~ equity lost "
            "since the start) and assets (squares, with their largest drawdown). "
            + ("Red arrows: credit lines from lender to borrower; " if credit_lines else "")
            + "grey dashed: USD exposure to an asset, through which fire sales reach "
            "every holder.",
            [edges.drop(columns=["rate"], errors="ignore")],
        )
    )

    ranks = debtrank_by_protocol(panels[0][1])
    write_table(ranks, tables, "debtrank")
    metrics["debtrank_max"] = float(ranks["debtrank"].max()) if len(ranks) else 0.0
    caption = (
        "DebtRank (Battiston et al. 2012) of each protocol's default on the credit "
        f"graph at step {snap}: the share of the system's initial equity its lenders "
        "would lose by propagation (the defaulting protocol's own loss excluded)."
    )
    if credit_lines:
        figure = plot_debtrank(ranks, snap, figures / "debtrank.png")
    else:
        # Battiston et al. 2012 propagate distress along the interbank (here: credit)
        # exposure matrix only; with no lines every R is 0 by construction, not by luck.
        figure = None
        caption = (
            f"DebtRank is 0 for every protocol: there are no credit lines between "
            f"protocols at step {snap}, and DebtRank (Battiston et al. 2012) passes a "
            "default's loss on only along credit lines (a lender's exposure to its "
            "borrower). In this run losses travel through shared collateral and prices "
            "instead: see the cascade section."
        )
    sections.append(section("DebtRank per protocol", figure, caption, [ranks]))

    tree = cascade_tree(result)
    stats = cascade_stats(tree)
    to_graphml(tree, graphs / "cascade_tree.graphml")
    to_node_link_json(tree, graphs / "cascade_tree.json")
    per_step = cascade_rounds(result)
    width = stats.width.reset_index()
    write_table(per_step, tables, "cascade_rounds")
    write_table(width, tables, "cascade_width")
    prices = result.timeseries[["step", *_price_columns(result)]]
    write_table(prices, tables, "prices")
    metrics.update(
        cascade_depth=stats.depth,
        branching_ratio=stats.branching_ratio,
        branching_ratio_usd=stats.branching_ratio_usd,
    )
    sections.append(
        section(
            "Prices and liquidations by cascade round",
            plot_cascade(result, figures / "cascade.png"),
            f"Cascade depth {stats.depth} (longest chain of liquidation generations), "
            f"empirical branching ratio {stats.branching_ratio:.2f} liquidations per "
            f"liquidation ({stats.branching_ratio_usd:.2f} by USD). Round 0 follows the "
            "exogenous move; round r+1 follows the price impact of round r's sales.",
            [width],
        )
    )

    if len(result.scenario.protocols) >= 2:
        sync = action_synchrony(result)
        index = convergence_index(sync)
        # NaN (no two protocols' levers move) is written as null: metrics.json stays JSON.
        metrics["convergence_index"] = index if math.isfinite(index) else None
        said = f"{index:.2f}" if math.isfinite(index) else "undefined (fewer than two move)"
        matrix = sync.correlation.reset_index(names="agent")
        write_table(matrix, tables, "synchrony")
        to_graphml(sync.graph, graphs / "synchrony.graphml")
        to_node_link_json(sync.graph, graphs / "synchrony.json")
        sections.append(
            section(
                "Action synchrony",
                plot_synchrony(sync, figures / "synchrony.png"),
                "Correlation of the protocols' lever paths (1: they move their levers "
                "together). A protocol whose levers never move has no direction: its "
                "correlations are undefined (n/a) and left out of the means, since static "
                f"policies are alike by construction, not converged. Convergence index {said}.",
                [matrix],
            )
        )

    if runner is not None:
        amp = twin_amplification(result, runner)
        metrics.update(amp.as_row(), channels=list(amp.channels))
        table = pd.DataFrame(
            {
                "metric": list(METRICS),
                "with_feedback": [amp.with_feedback[m] for m in METRICS],
                "without_feedback": [amp.without_feedback[m] for m in METRICS],
                "amplification": [getattr(amp, m) for m in METRICS],
                "excess": [amp.excess[m] for m in METRICS],
                "log_ratio_floored": [amp.log_ratio[m] for m in METRICS],
            }
        )
        write_table(table, tables, "amplification")
        floors = ", ".join(f"{m} {FLOORS[m]:g}" for m in METRICS)
        floored = (
            f" Below its floor in the twin, so the floor shapes the log-ratio: "
            f"{', '.join(amp.floored)}."
            if amp.floored
            else " No twin value was below its floor."
        )
        sections.append(
            section(
                "Amplification",
                plot_amplification(amp, figures / "amplification.png"),
                "The run against its feedback=False twin on the same random numbers "
                "(no price impact of forced sales, no loss passing on credit lines). "
                "Ratios: 0/0 = 1, x/0 = inf; excess = with - without; floored log-ratio = "
                f"log((with + floor) / (without + floor)), floors {floors} (USD; drawdown "
                f"as a fraction).{floored}",
                [table],
            )
        )

    summary = pd.DataFrame(_flatten_summary(result.summary), columns=["metric", "value"])
    write_table(summary.astype({"value": str}), tables, "summary")
    sections.append(section("Run summary", None, "", [summary]))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    subtitle = (
        f"seed {result.seed}, feedback {'on' if result.feedback else 'off'}, {last} steps of "
    )
    subtitle += f"{result.scenario.dt_hours:g} h. {result.scenario.description}"
    return page(out, f"liqnet run report: {result.scenario.name}", subtitle, sections)


def _price_columns(result: RunResult) -> list[str]:
    kinds = ("reference", "pool", "oracle")
    return [f"{a}.{k}" for a in result.scenario.market.assets for k in kinds]


def _flatten_summary(summary: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows.extend(_flatten_summary(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def analyze(
    path: str | Path, out_dir: str | Path | None = None, *, runner: Runner | None = None
) -> Path:
    """Write the report of a run directory or a sweep directory (``liqnet analyze``).

    Args:
        path: A saved run (``RunResult.save``) or a sweep directory (``sweep.parquet``).
        out_dir: Where to write (default: ``path``).
        runner: Runs counterfactual twins where amplification is not recorded
            (``liqnet.scenarios.analyze`` passes ``liqnet.scenarios.run``).

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: ``path`` is neither a sweep nor a saved run.
    """
    root = Path(path)
    if (root / SWEEP_FILE).is_file():
        return write_sweep_report(root, out_dir, runner=runner)
    return write_run_report(root, out_dir, runner=runner)
