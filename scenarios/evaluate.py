"""Comparing policies on a scenario over seeds: losses, revenue, liquidity shortfall.

A *policy assignment* is either one spec applied to every protocol (``"bayesian"``) or
per-protocol specs, ``"aave=bayesian,dydx=vol_target"`` (protocols not named keep the
scenario's own ``policy``). Every assignment runs on every seed, and each run gives:

* ``bad_debt_usd``: realised bad debt plus the shortfall of loans still underwater at the
  end (``summary["bad_debt_usd"]``);
* ``default_losses_usd``: losses from defaults - what lenders lost on credit lines to
  defaulted protocols (``credit_losses_usd``) plus the negative equity of each protocol
  at its default (what its depositors and LPs cannot be paid);
* ``losses_usd``: the two above together (the issue's "bad debt plus default losses");
* ``revenue_usd``: income the protocols earned, summed (``summary["revenue_usd"]``):
  lending pools' interest margin (the reserve factor's share of interest), perp
  exchanges' trading fees and liquidation penalties; losses are in the columns above;
* ``liquidity_shortfall_usd``: unmet liquidity need summed over steps and protocols
  (USD-steps);
* ``defaults``: number of protocols that defaulted.

The summary gives mean and sample standard deviation (0 for a single seed) per
assignment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from liqnet.core.io import atomic_write
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.market.accounting import default_losses
from liqnet.scenarios.loader import ScenarioError
from liqnet.scenarios.policies import check_policy_specs, resolve_policies, run_with_policies
from liqnet.scenarios.run import run

METRICS: tuple[str, ...] = (
    "bad_debt_usd",
    "default_losses_usd",
    "losses_usd",
    "revenue_usd",
    "liquidity_shortfall_usd",
    "defaults",
)
"""Per-run metrics, in table order (see the module docstring for definitions)."""


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes:
        scenario: Name of the scenario evaluated.
        runs: One row per (policy assignment, seed): ``policies``, ``seed`` and
            :data:`METRICS`.
        summary: One row per assignment: ``policies``, ``seeds`` and
            ``{metric}_mean`` / ``{metric}_std`` for every metric.
    """

    scenario: str
    runs: pd.DataFrame
    summary: pd.DataFrame

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``runs`` and ``summary`` as CSV and Parquet (atomically); returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in [("runs", self.runs), ("summary", self.summary)]:
            csv, parquet = out / f"{name}.csv", out / f"{name}.parquet"
            atomic_write(csv, partial(frame.to_csv, index=False))
            atomic_write(parquet, partial(frame.to_parquet, index=False))
            paths += [csv, parquet]
        return paths

    def table(self) -> Table:
        """A rich table, one column per assignment: mean ± std over seeds of every metric.

        Metrics are rows (USD in millions) so that several assignments fit a terminal.
        """
        seeds = int(self.summary["seeds"].max()) if len(self.summary) else 0
        table = Table(title=escape(f"{self.scenario}: mean ± std over {seeds} seeds"))
        table.add_column("metric", no_wrap=True)
        for label in self.summary["policies"]:
            table.add_column(escape(str(label)), justify="right", overflow="fold")
        for metric in METRICS:
            usd = metric.endswith("_usd")
            scale = 1e6 if usd else 1.0
            cells = [
                f"{row[f'{metric}_mean'] / scale:,.2f} ± {row[f'{metric}_std'] / scale:,.2f}"
                for _, row in self.summary.iterrows()
            ]
            table.add_row(escape(metric.removesuffix("_usd") + (" ($M)" if usd else "")), *cells)
        return table


def parse_assignment(text: str, scenario: Scenario) -> dict[str, str]:
    """Policy spec per protocol id from ``"SPEC"`` or ``"ID=SPEC,ID=SPEC"``.

    Raises:
        ScenarioError: On an unknown protocol id or an empty spec (names the allowed ids).
    """
    ids = [p.id for p in scenario.protocols]
    head = text.split("=", 1)[0]
    if "=" not in text or ":" in head:
        if not text.strip():
            raise ScenarioError("--policies: empty policy spec")
        return dict.fromkeys(ids, text.strip())
    assigned = {}
    for part in text.split(","):
        protocol, sep, spec = (s.strip() for s in part.partition("="))
        if not sep or not spec:
            raise ScenarioError(f"--policies {text!r}: expected ID=SPEC, got {part!r}")
        if protocol not in ids:
            raise ScenarioError(
                f"--policies {text!r}: unknown protocol {protocol!r}; protocols: {ids}"
            )
        assigned[protocol] = spec
    return assigned


def assign(scenario: Scenario, specs: dict[str, str]) -> Scenario:
    """The scenario with these protocols' ``policy`` replaced (specs checked, not built).

    Raises:
        ScenarioError: If a spec names no registered policy (lists the allowed names).
    """
    protocols = [
        p.model_copy(update={"policy": specs[p.id]}) if p.id in specs else p
        for p in scenario.protocols
    ]
    assigned = scenario.model_copy(update={"protocols": protocols})
    check_policy_specs(assigned)
    return assigned


def run_metrics(result: RunResult) -> dict[str, float]:
    """The :data:`METRICS` of one run (definitions in the module docstring)."""
    s = result.summary
    # The one definition of losses, shared with the system team reward of training.
    from_defaults = default_losses(s["credit_losses_usd"].values(), result.defaults)
    return {
        "bad_debt_usd": float(s["bad_debt_usd"]),
        "default_losses_usd": float(from_defaults),
        "losses_usd": float(s["bad_debt_usd"] + from_defaults),
        "revenue_usd": float(sum(s["revenue_usd"].values())),
        "liquidity_shortfall_usd": float(s["liquidity_shortfall_usd"]),
        "defaults": float(s["defaults"]),
    }


def evaluate(
    scenario: Scenario,
    policies: Sequence[str],
    seeds: Sequence[int],
    steps: int | None = None,
    feedback: bool | None = None,
    on_run: Callable[[str], None] | None = None,
) -> Evaluation:
    """Run every policy assignment on every seed and tabulate :data:`METRICS`.

    All assignments are checked before anything runs, so a bad spec fails fast.

    Args:
        scenario: A validated scenario.
        policies: Policy assignments (see the module docstring).
        seeds: World seeds; every assignment sees the same ones.
        steps: Overrides the horizon.
        feedback: Overrides the scenario's ``feedback`` switch.
        on_run: Called after every run with ``"ASSIGNMENT seed N"`` (progress).

    Returns:
        The :class:`Evaluation` (per-run rows and the summary).

    Raises:
        ScenarioError: On an unknown protocol id or policy name, or a policy that cannot
            be built (e.g. a missing checkpoint).
    """
    if not policies or not seeds:
        raise ScenarioError("evaluate needs at least one policy assignment and one seed")
    assigned = [
        (label, assign(scenario, parse_assignment(label, scenario)))
        for label in dict.fromkeys(policies)  # a repeated assignment runs once
    ]
    rows = []
    for label, world in assigned:
        static = all(p.policy == "static" for p in world.protocols)
        # Policies are built once per assignment (checkpoints load once) and reset per seed.
        objects = None if static else resolve_policies(world)
        for seed in seeds:
            if static:
                result = run(world, seed=seed, feedback=feedback, steps=steps)
            else:
                result = run_with_policies(world, seed, feedback, steps, policies=objects)
            rows.append({"policies": label, "seed": int(seed), **run_metrics(result)})
            if on_run is not None:
                on_run(f"{label} seed {seed}")
    runs = pd.DataFrame(rows, columns=["policies", "seed", *METRICS])
    grouped = runs.groupby("policies", sort=False)[list(METRICS)]
    summary = (
        grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
    )
    order = [c for m in METRICS for c in (f"{m}_mean", f"{m}_std")]
    summary = summary[order].reset_index()
    summary.insert(1, "seeds", len(seeds))
    return Evaluation(scenario=scenario.name, runs=runs, summary=summary)
