"""Tests of :mod:`liqnet.scenarios.sweep_plan`: lazy planning gives the runs, ids and order
that eager planning gave, and its memory does not grow with the number of runs (issue 19:
``random.samples = 1e6`` took ~5 GiB before the first run)."""

from __future__ import annotations

import itertools
import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from liqnet.scenarios.loader import ScenarioError, apply_overrides
from liqnet.scenarios.sweep_dir import SweepProgress
from liqnet.scenarios.sweep_plan import RunConfig, SweepPlan, base_raw, iter_plan, plan
from liqnet.scenarios.sweep_schema import SweepSpec, builtin_sweeps, load_sweep
from tests.helpers.sweeps import spec


def eager_plan(spec: SweepSpec) -> list[RunConfig]:
    """The planning of liqnet before issue 19 (scenarios/sweep_schema.py), verbatim but for
    names: every random point drawn as lists, every run built, duplicates dropped by id."""
    raw, origin = base_raw(spec)
    grid = [
        dict(zip(spec.grid, values, strict=True))
        for values in itertools.product(*spec.grid.values())
    ]
    samples: list[dict[str, Any]] = [{}]
    if spec.random:
        rng = np.random.default_rng(spec.random.seed)
        columns: dict[str, list[Any]] = {}
        for key in sorted(spec.random.params):
            dist, n = spec.random.params[key], spec.random.samples
            if dist.dist == "choice":
                assert dist.values is not None
                columns[key] = [dist.values[int(i)] for i in rng.integers(len(dist.values), size=n)]
            elif dist.dist == "uniform":
                assert dist.low is not None and dist.high is not None
                columns[key] = [float(x) for x in rng.uniform(dist.low, dist.high, size=n)]
            else:
                assert dist.low is not None and dist.high is not None
                logs = rng.uniform(math.log(dist.low), math.log(dist.high), size=n)
                columns[key] = [float(x) for x in np.exp(logs)]
        samples = [{k: v[i] for k, v in columns.items()} for i in range(spec.random.samples)]
    mixes = [(m.name, m.set_) for m in spec.policy_mixes] or [("scenario", {})]
    configs: dict[str, RunConfig] = {}
    for point, sample, (mix, assignments), seed in itertools.product(
        grid, samples, mixes, spec.seeds
    ):
        params, error = {**point, **sample}, None
        try:
            scenario = apply_overrides(apply_overrides(raw, assignments), params)
        except ScenarioError as err:
            scenario, error = raw, str(err)
        config = RunConfig(
            scenario, origin, seed, mix, params, spec.steps, spec.feedback_twin, spec.figures, error
        )
        configs.setdefault(config.run_id, config)
    return list(configs.values())


def _fields(config: RunConfig) -> tuple[Any, ...]:
    return (
        config.run_id,
        config.scenario,
        config.seed,
        config.policy_mix,
        config.params,
        config.override_error,
    )


CHOICES = {
    "samples": 40,
    "seed": 3,
    "params": {
        # Few distinct points among 40 draws, and a repeated value: many duplicate runs.
        "market.assets.ETH.oracle.latency_steps": {"dist": "choice", "values": [0, 2, 2, 4]},
        "market.permanent_impact": {"dist": "choice", "values": [0.5, 0.6]},
    },
}
MIXED = {
    "samples": 30,
    "seed": 5,
    "params": {
        "market.permanent_impact": {"dist": "uniform", "low": 0.1, "high": 0.9},
        "market.assets.ETH.volatility": {"dist": "loguniform", "low": 0.2, "high": 2.0},
        "market.assets.ETH.oracle.latency_steps": {"dist": "choice", "values": [0, 2, 4]},
    },
}
LATENCY = {
    "samples": 2,
    "params": {"market.assets.ETH.oracle.latency_steps": {"dist": "choice", "values": [0, 3]}},
}
MIXES = [
    {"name": "standing", "set": {}},
    {"name": "static", "set": {"protocols.aave.policy": "static"}},
]


@pytest.mark.parametrize(
    "sweep",
    [
        *builtin_sweeps(),
        spec(random=MIXED, seeds=[0, 1, 2], policy_mixes=MIXES),
        # Repeated grid values, a bad value (its run fails) and duplicate samples.
        spec(random=CHOICES, grid={"market.assets.ETH.pool_usd": [1e8, 1e8, 4e8, -1.0]}),
        # A value that replaces a table: the run carries the override error.
        spec(grid={"market.assets.ETH.oracle": [{"latency_steps": 1}, 5]}, seeds=[0]),
    ],
    ids=lambda s: s if isinstance(s, str) else None,
)
def test_lazy_plan_is_the_eager_plan(sweep: str | dict[str, Any]) -> None:
    loaded = load_sweep(sweep)
    lazy = iter_plan(loaded)
    assert isinstance(lazy, Iterator) and not isinstance(lazy, list)
    eager = eager_plan(loaded)
    assert [_fields(c) for c in lazy] == [_fields(c) for c in eager]
    assert len(SweepPlan(loaded)) == len(eager) == len(plan(loaded))


def test_duplicates_are_counted_before_planning() -> None:
    loaded = load_sweep(spec(random=CHOICES, grid={"market.assets.ETH.pool_usd": [1e8, 1e8]}))
    # latency in {0, 2, 4} x impact in {0.5, 0.6}: at most 6 distinct samples of the 40,
    # one distinct grid point, two seeds.
    assert loaded.run_count() == 2 * 40 * 2
    assert len(SweepPlan(loaded)) == len(eager_plan(loaded)) == 6 * 2
    table = {"market.assets.ETH.oracle": [{"latency_steps": 1}, 5]}
    errors = [c.override_error for c in iter_plan(load_sweep(spec(grid=table, random=LATENCY)))]
    half = len(errors) // 2  # the first grid point's runs, then the second's
    assert half and errors[:half] == [None] * half
    assert all("'market.assets.ETH.oracle' is a value (5), not a table" in e for e in errors[half:])


def test_planning_memory_does_not_grow_with_the_runs() -> None:
    """Ten runs of a 100,000-sample plan allocate far less than an eager plan would."""

    def sampled(samples: int) -> SweepSpec:
        uniform = {"dist": "uniform", "low": 0.1, "high": 0.9}
        random = {"samples": samples, "seed": 1, "params": {"market.permanent_impact": uniform}}
        return load_sweep(spec(grid={}, seeds=[0], random=random))

    big, small = sampled(100_000), sampled(200)
    tracemalloc.start()
    try:
        runs = iter_plan(big)
        first = list(itertools.islice(runs, 10))
        _, lazy_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        held = plan(small)  # what an eager plan holds per run
        per_run = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    assert len(first) == 10 and len(SweepPlan(big)) == 100_000
    # Uniform draws from one seed share their prefix: the first ten runs are the small plan's.
    assert [c.run_id for c in first] == [c.run_id for c in held[:10]]
    bound = 10 * 2**20  # the draws as one array (0.8 MB) and their deduplication
    assert lazy_peak < bound, f"planning 10 runs took {lazy_peak / 2**20:.1f} MiB"
    # An eager plan of the 100,000 runs would hold ~1e5 scenario tables (several kB each).
    assert per_run * 100_000 > 50 * bound, f"{per_run:.0f} bytes per eagerly planned run"
    assert next(runs).run_id == held[10].run_id


def test_progress_counts_runs_already_done_out_of_the_total() -> None:
    from rich.console import Console

    bar = SweepProgress("s", 10, False, Console(file=None, quiet=True))
    bar.skip()
    bar.skip()
    bar.advance(failed=True)
    task = bar.bar.tasks[0]
    assert task.total == 8 and task.completed == 1
    assert task.description == "s (2 already done)" and task.fields["remaining"] == 7
