"""One run of a sweep: the same function in-process and in a Ray task (:func:`run_one`),
and the row it returns (ids, varied values, status, summary metrics, analysis columns).
"""

from __future__ import annotations

import logging
import tempfile
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from liqnet.analysis.convergence import convergence_index
from liqnet.analysis.export import to_node_link_json
from liqnet.analysis.graphs import contagion_graph, peak_credit_debtrank
from liqnet.analysis.similarity import structural_similarity
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.scenarios.analyze import amplification
from liqnet.scenarios.loader import ScenarioError, validate
from liqnet.scenarios.model_cards import model_cards
from liqnet.scenarios.run import run
from liqnet.scenarios.sweep_plan import RunConfig
from liqnet.scenarios.sweep_registrations import Registrations, apply_registrations

__all__ = ["analysis_columns", "run_one"]

log = logging.getLogger(__name__)


def analysis_columns(scenario: Scenario, config: RunConfig, result: RunResult) -> dict[str, Any]:
    """Amplification ratios (with ``feedback_twin``), the convergence index (NaN when it is
    undefined: no two agents' levers move), the DebtRank of the credit network at its
    peak (``credit_debtrank``) and the structural similarity of the run's models
    (``structure_same_model``, ``_architecture``, ``_training``)."""
    columns: dict[str, Any] = {}
    problems = []
    if config.feedback_twin:
        try:
            # Passing the feedback run means only the no-feedback twin is computed.
            ratios = amplification(scenario, config.seed, steps=config.steps, result=result)
            columns.update({k: float(v) for k, v in ratios.as_row().items()})
        except Exception as err:  # analysis trouble must not lose the run itself
            problems.append(f"amplification: {_message(err)}")
    try:
        columns["convergence_index"] = float(convergence_index(result))
    except Exception as err:
        problems.append(f"convergence_index: {_message(err)}")
    try:
        columns["credit_debtrank"] = peak_credit_debtrank(result)
    except Exception as err:
        problems.append(f"credit_debtrank: {_message(err)}")
    if len(scenario.protocols) >= 2:
        cards = model_cards(scenario)
        columns.update({f"structure_{k}": v for k, v in structural_similarity(cards).items()})
    if problems:
        columns["analysis_error"] = "; ".join(problems)
    return columns


def _message(err: BaseException) -> str:
    if isinstance(err, ScenarioError):
        return str(err)
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


def _base_row(config: RunConfig) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": config.run_id, "seed": config.seed}
    row["policy_mix"] = config.policy_mix
    row.update(config.params)
    row.update(status="done", error=None)
    return row


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, into)
    else:  # NumPy scalars become Python values, so row.json reads back identically
        into[prefix] = value.item() if isinstance(value, np.generic) else value


def run_one(config: RunConfig, artifacts: str | Path | None = None) -> dict[str, Any]:
    """Run one sweep point and return its row: the same function in-process and on Ray.

    A run that fails on its own (bad parameters, unknown policy) returns a row with
    ``status = "failed"`` and the error message instead of raising.

    Args:
        config: The run (see :func:`plan`).
        artifacts: If given, the run's :meth:`RunResult.save` files are written there.

    Returns:
        Ids, varied values, status, error, the flattened summary metrics and, when
        :mod:`liqnet.analysis` provides them, amplification ratios and convergence index.
    """
    row = _base_row(config)
    try:
        if config.override_error:
            raise ScenarioError(config.override_error)
        scenario = validate(config.scenario, config.origin)
        # An unknown policy or a missing checkpoint raises a ScenarioError here.
        result = run(scenario, seed=config.seed, steps=config.steps)
    except Exception as err:  # one bad run is recorded, never fatal to the sweep
        row.update(status="failed", error=_message(err))
        return row
    metrics: dict[str, Any] = {}
    _flatten("", result.summary, metrics)
    metrics.update(analysis_columns(scenario, config, result))
    for key, value in metrics.items():
        row[key if key not in row else f"summary.{key}"] = value
    if artifacts is not None:
        result.save(artifacts, figure=config.figures)
        _graph_snapshot(result, Path(artifacts))
    return row


def _graph_snapshot(result: RunResult, folder: Path) -> None:
    """The final contagion graph as node-link JSON."""
    try:
        to_node_link_json(contagion_graph(result), folder / "graph.json")
    except Exception as err:  # a missing snapshot is no reason to lose the run
        log.warning("graph snapshot of %s skipped: %s", folder.name, _message(err))


def _task(
    config: RunConfig, registrations: Registrations | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The Ray task: the row and the artifact files' bytes (the driver writes them)."""
    apply_registrations(registrations or {})
    with tempfile.TemporaryDirectory(prefix="liqnet-run-") as tmp:
        row = run_one(config, tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    return row, files
