"""Contagion and convergence analysis of recorded runs.

Graphs (NetworkX) of who is exposed to whom, DebtRank, cascade amplification against
the ``feedback=False`` twin, cascade trees, action synchrony and policy similarity, a
convergence index, GraphML / node-link JSON exports and HTML reports.

Names are imported on first use (PEP 562), so ``import liqnet.analysis.debtrank`` does
not pay for matplotlib or the simulation.
"""

from __future__ import annotations

import importlib
from typing import Any

# ``debtrank`` is both a submodule and a function; importing a submodule binds its name
# on the package, so it is bound eagerly (the module is light) and the function wins.
from liqnet.analysis.amplification import (
    Amplification,
    amplification_from_results,
    feedback_channels,
    ratio,
    twin_amplification,
)
from liqnet.analysis.debtrank import DebtRankResult, debtrank, debtrank_reference

_EXPORTS: dict[str, str] = {
    "CascadeStats": "cascade",
    "cascade_rounds": "cascade",
    "cascade_stats": "cascade",
    "cascade_tree": "cascade",
    "ModelCard": "similarity",
    "PolicySimilarity": "similarity",
    "Synchrony": "convergence",
    "action_synchrony": "convergence",
    "convergence_components": "convergence",
    "convergence_index": "convergence",
    "linear_cka": "similarity",
    "policy_similarity": "similarity",
    "response_similarity": "convergence",
    "structural_similarity": "similarity",
    "read_node_link_json": "export",
    "to_graphml": "export",
    "to_node_link_json": "export",
    "contagion_graph": "graphs",
    "debtrank_by_protocol": "graphs",
    "analyze": "report",
    "write_run_report": "report",
    "sweep_table": "sweep",
    "trend_fits": "sweep",
    "write_sweep_report": "sweep",
    "credit_exposures": "results",
    "lever_actions": "results",
    "load_result": "results",
}

__all__ = [
    "Amplification",
    "CascadeStats",
    "DebtRankResult",
    "ModelCard",
    "PolicySimilarity",
    "Synchrony",
    "action_synchrony",
    "amplification_from_results",
    "analyze",
    "cascade_rounds",
    "cascade_stats",
    "cascade_tree",
    "contagion_graph",
    "convergence_components",
    "convergence_index",
    "credit_exposures",
    "debtrank",
    "debtrank_by_protocol",
    "debtrank_reference",
    "feedback_channels",
    "lever_actions",
    "linear_cka",
    "load_result",
    "policy_similarity",
    "ratio",
    "read_node_link_json",
    "response_similarity",
    "structural_similarity",
    "sweep_table",
    "to_graphml",
    "to_node_link_json",
    "trend_fits",
    "twin_amplification",
    "write_run_report",
    "write_sweep_report",
]


def __getattr__(name: str) -> Any:
    """Import ``name`` from its submodule on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'liqnet.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"liqnet.analysis.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    """Module attributes, the lazily imported names included."""
    return sorted([*globals(), *_EXPORTS])
