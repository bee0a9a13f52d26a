"""The runs of a sweep, generated as they are submitted (:class:`SweepPlan`).

Every run is grid point x random sample x policy mix x seed, in that order (seeds vary
fastest). A run's config (its scenario table with every override applied, a few kB) is
built only when the sweep asks for it, so planning holds no list of runs and its memory
does not grow with the grid, the policy mixes or the seeds. What the plan holds for its
whole life is the grid's value lists and the random draws as arrays (8 bytes per sample
and parameter), drawn in one go as they always were, so a sweep file gives the runs, run
ids and order it gave when planning built every config up front (``tests/scenarios/
test_sweep_plan.py`` compares the two). Identical runs are listed once, at their first
occurrence; the duplicates are found on the grid values and the draws, so the plan's
length is known before its first run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from liqnet.scenarios.loader import ScenarioError, apply_overrides, resolve_raw

if TYPE_CHECKING:
    from liqnet.scenarios.sweep_schema import RandomSpec, SweepSpec

__all__ = ["RunConfig", "SweepPlan", "base_raw", "iter_plan", "plan"]


@dataclass(frozen=True)
class RunConfig:
    """One run of a sweep, fully resolved: all a worker needs, and what its id hashes.

    Attributes:
        scenario: The scenario's raw table with every override applied (not yet validated,
            so bad parameters fail in the run, where they are recorded).
        origin: Where the base scenario came from (for error messages).
        seed: The run's seed.
        policy_mix: Name of the policy mix (``"scenario"`` when the sweep lists none).
        params: The varied override values, ``{dotted key: value}``: the row's columns.
        steps: Horizon override, or None for the scenario's own.
        feedback_twin: Whether to also run the no-feedback twin (amplification).
        figures: Whether to write ``run.png``.
        override_error: Why the overrides could not be applied (the run fails with it).
    """

    scenario: dict[str, Any]
    origin: str
    seed: int
    policy_mix: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    feedback_twin: bool = False
    figures: bool = False
    override_error: str | None = None

    @cached_property
    def run_id(self) -> str:
        """Hash of everything that decides the run's result (not of file locations);
        computed once per config (it serialises the whole scenario)."""
        payload = {
            "scenario": self.scenario,
            "seed": self.seed,
            "policy_mix": self.policy_mix,
            "params": self.params,
            "steps": self.steps,
            "feedback_twin": self.feedback_twin,
        }
        return hashlib.sha256(_key(payload).encode()).hexdigest()[:16]


def _key(value: Any) -> str:
    """A value as the run id's JSON writes it: equal keys, equal contribution to the id."""
    return json.dumps(value, sort_keys=True, default=str)


def _distinct(values: list[Any]) -> list[Any]:
    """``values`` without repeats (as the run id sees them), first occurrences in order."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(_key(value), value)
    return list(seen.values())


def base_raw(spec: SweepSpec) -> tuple[dict[str, Any], str]:
    """The base scenario's raw table with the sweep's fixed overrides applied."""
    raw, scenario_origin = resolve_raw(spec.base)
    return apply_overrides(raw, spec.overrides), scenario_origin


class _Samples:
    """The ``random`` points as arrays: one column of draws per parameter, in sorted key
    order (so reordering the file changes nothing), and the samples kept (the first of
    identical ones)."""

    def __init__(self, random: RandomSpec) -> None:
        rng = np.random.default_rng(random.seed)
        self.keys = sorted(random.params)
        self.dists = [random.params[key] for key in self.keys]
        self.columns = [dist.draws(rng, random.samples) for dist in self.dists]
        self.kept = self._first_occurrences()

    def _first_occurrences(self) -> np.ndarray:
        """Indices of the samples that repeat no earlier one, ascending.

        Floats compare by their bits (as ``repr`` writes them: 0.0 is not -0.0); a choice
        by the JSON of its value, so ``values = [1, 1]`` draws one value, not two."""
        codes = []
        for dist, column in zip(self.dists, self.columns, strict=True):
            if dist.values is not None:
                first: dict[str, int] = {}
                canonical = [first.setdefault(_key(v), k) for k, v in enumerate(dist.values)]
                codes.append(np.asarray(canonical, dtype=np.int64)[column])
            else:
                codes.append(column.view(np.int64))
        # np.unique sorts stably when asked for indices: each is a first occurrence.
        _, index = np.unique(np.stack(codes, axis=1), axis=0, return_index=True)
        return np.sort(index)

    def point(self, i: int) -> dict[str, Any]:
        """Sample ``i`` as ``{dotted key: plain Python value}``."""
        return {
            key: dist.value(column[i])
            for key, dist, column in zip(self.keys, self.dists, self.columns, strict=True)
        }


class SweepPlan:
    """The runs of a sweep: ``len(plan)`` is known at once, ``iter(plan)`` builds them one
    at a time in plan order (a fresh generator each time).

    Overrides apply in the order fixed ``overrides``, policy mix, varied values, so a grid
    key can override what a mix sets. A value that cannot be applied (one that replaces a
    table) gives a run with ``override_error`` set: it fails, recorded, when it runs.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.raw, self.origin = base_raw(spec)
        self.grid = {key: _distinct(values) for key, values in spec.grid.items()}
        self.samples = _Samples(spec.random) if spec.random else None
        self.mixes = [(m.name, m.set_) for m in spec.policy_mixes] or [("scenario", {})]

    def __len__(self) -> int:
        """Runs in the plan, duplicates removed (seeds and mix names never repeat, so only
        the grid values and the samples can)."""
        points = math.prod(len(values) for values in self.grid.values())
        samples = len(self.samples.kept) if self.samples else 1
        return points * samples * len(self.mixes) * len(self.spec.seeds)

    def __iter__(self) -> Iterator[RunConfig]:
        spec, raw = self.spec, self.raw
        mixed: list[tuple[str, dict[str, Any], str | None]] = []
        for name, assignments in self.mixes:
            try:
                mixed.append((name, apply_overrides(raw, assignments), None))
            except ScenarioError as err:  # e.g. a value that replaced a table: fails its run
                mixed.append((name, raw, str(err)))
        samples = self.samples
        indices: Any = samples.kept if samples else [None]
        for values in itertools.product(*self.grid.values()):
            point = dict(zip(self.grid, values, strict=True))
            for i in indices:
                sample = samples.point(int(i)) if samples else {}
                for name, scenario, error in mixed:
                    for seed in spec.seeds:
                        params = {**point, **sample}
                        run_scenario, run_error = scenario, error
                        if error is None:
                            try:
                                run_scenario = apply_overrides(scenario, params)
                            except ScenarioError as err:
                                run_scenario, run_error = raw, str(err)
                        yield RunConfig(
                            run_scenario,
                            self.origin,
                            seed,
                            name,
                            params,
                            spec.steps,
                            spec.feedback_twin,
                            spec.figures,
                            run_error,
                        )

    def first_of_each_mix(self) -> list[RunConfig]:
        """The first run of every policy mix (all lie among the plan's first
        ``mixes x seeds`` runs, so this builds no more than those)."""
        firsts: dict[str, RunConfig] = {}
        for config in itertools.islice(self, len(self.mixes) * len(self.spec.seeds)):
            firsts.setdefault(config.policy_mix, config)
        return list(firsts.values())

    def named_values(self) -> list[Any]:
        """Every value a run's scenario can hold: the base table, the mixes' settings, the
        grid values and the choices (what the registrations shipped to workers are looked
        up in)."""
        values: list[Any] = [self.raw, *(assignments for _, assignments in self.mixes)]
        values += list(self.grid.values())
        values += [d.values for d in (self.samples.dists if self.samples else []) if d.values]
        return values


def iter_plan(spec: SweepSpec) -> Iterator[RunConfig]:
    """The runs of a sweep one at a time, in plan order (see :class:`SweepPlan`)."""
    return iter(SweepPlan(spec))


def plan(spec: SweepSpec) -> list[RunConfig]:
    """Every run of a sweep as a list, in a stable order: grid x random x policy mix x
    seed; identical runs listed once. Holds every config: :func:`iter_plan` does not."""
    return list(SweepPlan(spec))
