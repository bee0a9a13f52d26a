"""Analysis that needs simulations: counterfactual twins for amplification and reports.

``liqnet.analysis`` reads recorded results and never runs the world; where it needs a
run's ``feedback=False`` twin it takes a runner. This module hands it
:func:`liqnet.scenarios.run`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from liqnet.analysis.amplification import Amplification, twin_amplification
from liqnet.analysis.report import analyze as write_report
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.scenarios.loader import load
from liqnet.scenarios.run import run

__all__ = ["amplification", "analyze"]


def amplification(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    *,
    steps: int | None = None,
    result: RunResult | None = None,
) -> Amplification:
    """Run ``scenario`` with and without feedback on the same random numbers; compare.

    Args:
        scenario: A validated scenario, a built-in name or a TOML path.
        seed: Overrides the scenario's seed.
        steps: Overrides the horizon.
        result: The feedback run, if it has already been run (saves one run).

    Returns:
        The ratios of bad debt, liquidated volume and maximum drawdown.
    """
    if not isinstance(scenario, Scenario):
        scenario = load(scenario)
    if result is None:
        result = run(scenario, seed=seed, feedback=True, steps=steps)
    elif not result.feedback:
        raise ValueError("result must be the feedback run (feedback=True)")
    return twin_amplification(result, run)


def analyze(
    path: str | Path,
    out_dir: str | Path | None = None,
    *,
    twin: bool = True,
    on_twin: Callable[[int], None] | None = None,
) -> Path:
    """Write the report of a run or sweep directory (``liqnet analyze``).

    Args:
        path: A saved run (``RunResult.save``) or a sweep directory (``sweep.parquet``).
        out_dir: Where to write (default: ``path``).
        twin: Run counterfactual twins where amplification is not recorded.
        on_twin: Called with the count of twins run so far, before each one (progress).

    Returns:
        The path of ``report.html``.
    """
    if not twin:
        return write_report(path, out_dir, runner=None)
    count = 0

    def runner(*args: Any, **kwargs: Any) -> RunResult:
        nonlocal count
        if on_twin is not None:
            on_twin(count)
        count += 1
        return run(*args, **kwargs)

    return write_report(path, out_dir, runner=runner)
