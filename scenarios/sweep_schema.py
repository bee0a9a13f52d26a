"""Sweep files: their pydantic models, loading and the layout of the sweep table
(:func:`table`); the runs they name are :mod:`liqnet.scenarios.sweep_plan`'s.

A sweep names a base scenario and the runs to make from it: fixed ``overrides``, a
``grid`` and/or ``random`` samples over dotted overrides, ``seeds`` and ``policy_mixes``
(named sets of dotted overrides, e.g. ``protocols.aave.policy``). Every run is the
cartesian product grid point x random sample x policy mix x seed. Unknown fields are
errors, and every error names the field, its value and what is allowed.
"""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic
import tomllib
from pydantic import Field

from liqnet.core.schema import NAME_PATTERN, StrictModel
from liqnet.scenarios.loader import ScenarioError, apply_overrides, validate
from liqnet.scenarios.ray_connect import resolve_runtime_env
from liqnet.scenarios.sweep_plan import RunConfig, SweepPlan, base_raw, iter_plan, plan

__all__ = [
    "RunConfig",
    "SweepError",
    "SweepPlan",
    "SweepSpec",
    "base_raw",
    "iter_plan",
    "load_sweep",
    "plan",
    "table",
]

BUILTIN_PACKAGE = "liqnet.scenarios.builtin.sweeps"


class SweepError(ScenarioError):
    """A sweep file is invalid; the message names every bad field."""


class Distribution(StrictModel):
    """How one ``random`` parameter is drawn: ``uniform``, ``loguniform`` or ``choice``."""

    dist: Literal["uniform", "loguniform", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = Field(None, min_length=1)

    @pydantic.model_validator(mode="after")
    def _check(self) -> Distribution:
        if self.dist == "choice":
            if self.values is None or self.low is not None or self.high is not None:
                raise ValueError('dist = "choice" takes `values` (a non-empty list) only')
            return self
        if self.values is not None or self.low is None or self.high is None:
            raise ValueError(f'dist = "{self.dist}" takes `low` and `high` only')
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.dist == "loguniform" and self.low <= 0:
            raise ValueError(f'low = {self.low}: dist = "loguniform" needs low > 0')
        return self

    def draws(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws: the values (``uniform``, ``loguniform``) or indices into ``values``
        (``choice``); :meth:`value` turns one into the plain Python value."""
        if self.dist == "choice":
            assert self.values is not None
            return rng.integers(len(self.values), size=n)
        assert self.low is not None and self.high is not None
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high, size=n)
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=n))

    def value(self, draw: Any) -> Any:
        """The plain Python value of one of :meth:`draws`."""
        if self.values is not None:
            return self.values[int(draw)]
        return float(draw)

    def example(self) -> Any:
        """One value it can produce (used to check that its key addresses a field)."""
        return self.values[0] if self.values is not None else self.low


class RandomSpec(StrictModel):
    """``samples`` random points, drawn reproducibly from ``seed`` (one column of draws per
    parameter, in sorted key order: see :mod:`liqnet.scenarios.sweep_plan`)."""

    samples: int = Field(ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    params: dict[str, Distribution] = Field(min_length=1)


class PolicyMix(StrictModel):
    """A named policy assignment: dotted overrides such as ``protocols.aave.policy``."""

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    set_: dict[str, Any] = Field(default_factory=dict, alias="set")


MAX_RUNS = 100_000
"""Most runs one sweep may have, counted before planning. Planning is lazy (runs are built as
they are submitted, :mod:`liqnet.scenarios.sweep_plan`), but the sweep table holds a row per
run and resuming reads every run's ``row.json``: a 1e6-sample or 1e10-point sweep is refused
at once instead of running for ever."""


class SweepSpec(StrictModel):
    """A complete, validated sweep."""

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    description: str = ""
    base: str = Field(min_length=1, description="built-in scenario name or .toml path")
    overrides: dict[str, Any] = Field(default_factory=dict, description="set in every run")
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomSpec | None = None
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    policy_mixes: list[PolicyMix] = Field(default_factory=list)
    steps: int | None = Field(None, ge=1, le=10_000_000, description="overrides the horizon")
    feedback_twin: bool = Field(False, description="also run the no-feedback twin")
    figures: bool = Field(False, description="write run.png for every run (slow)")
    max_retries: int = Field(3, ge=0, le=100, description="retries of a task that dies")
    runtime_env: dict[str, Any] | None = Field(
        None, description="Ray runtime_env of the job: working_dir, py_modules, pip, ..."
    )

    @pydantic.model_validator(mode="after")
    def _check(self) -> SweepSpec:
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key!r}: needs at least one value")
        runs = self.run_count()
        if runs > MAX_RUNS:
            raise ValueError(
                f"the sweep has {runs:,} runs (grid x random.samples x policy_mixes x seeds); "
                f"at most {MAX_RUNS:,}: split it into several sweeps"
            )
        random_keys = set(self.random.params) if self.random else set()
        both = sorted(set(self.grid) & random_keys)
        if both:
            raise ValueError(f"keys {both} are in both grid and random.params; keep one")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds}: must not repeat")
        names = [mix.name for mix in self.policy_mixes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"policy_mixes names must be unique; repeated: {repeated}")
        for key in [*self.overrides, *self.grid, *random_keys]:
            if not all(key.split(".")):
                raise ValueError(f"key {key!r}: empty segment in dotted key")
        return self

    def run_count(self) -> int:
        """Runs the plan lists before removing duplicates, counted without building them."""
        runs = math.prod(len(values) for values in self.grid.values())
        runs *= self.random.samples if self.random else 1
        return runs * max(1, len(self.policy_mixes)) * len(self.seeds)

    def variable_keys(self) -> list[str]:
        """The dotted keys that vary between runs (grid, then random), one column each."""
        return [*self.grid, *(self.random.params if self.random else {})]


def builtin_sweeps() -> list[str]:
    """Names of the sweeps shipped with liqnet."""
    files = importlib.resources.files(BUILTIN_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def _read(name_or_path: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SweepError(f"sweep file {str(path)!r} does not exist")
        text, origin, folder = path.read_text(encoding="utf-8"), str(path), path.parent
    else:
        name = str(name_or_path)
        if name not in builtin_sweeps():
            raise SweepError(
                f"unknown sweep {name!r}: not a file, and not a built-in "
                f"(built-ins: {builtin_sweeps()})"
            )
        resource = importlib.resources.files(BUILTIN_PACKAGE) / f"{name}.toml"
        text, origin, folder = (
            resource.read_text(encoding="utf-8"),
            f"built-in sweep {name!r}",
            None,
        )
    try:
        return tomllib.loads(text), origin, folder
    except tomllib.TOMLDecodeError as err:
        raise SweepError(f"{origin}: not valid TOML: {err}") from None


def _field_path(loc: tuple[Any, ...]) -> str:
    # Dotted override keys are single dict keys: quote them so the path stays readable.
    parts = [f'"{p}"' if isinstance(p, str) and "." in p else str(p) for p in loc]
    return ".".join(parts) or "(top level)"


def format_errors(origin: str, err: pydantic.ValidationError) -> str:
    """One line per problem: the field path, the value given and what is allowed."""
    lines = [f"{origin}: invalid sweep"]
    for e in err.errors():
        message = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {_field_path(e['loc'])}{shown}: {message}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any], origin: str = "sweep") -> SweepSpec:
    """Validate a raw table into a :class:`SweepSpec` and check it against its base scenario.

    Raises:
        SweepError: Naming each invalid field; also when the base scenario (with the fixed
            overrides) is invalid or a varied key addresses no scenario field.
    """
    try:
        spec = SweepSpec.model_validate(data)
    except pydantic.ValidationError as err:
        raise SweepError(format_errors(origin, err)) from None
    check_against_base(spec, origin)
    return spec


def check_against_base(spec: SweepSpec, origin: str) -> None:
    """Fail early on what would make every run fail: a bad base or a key naming no field.

    A value out of range (``pool_usd = -1``) is not checked here: such a run is recorded
    as failed with its error and the sweep goes on.
    """
    try:
        raw, scenario_origin = base_raw(spec)
        resolved = validate(raw, scenario_origin).model_dump(by_alias=True)
    except ScenarioError as err:
        raise SweepError(f"{origin}: base = {spec.base!r} (with overrides):\n{err}") from None
    trials: list[tuple[str, str, Any]] = [
        (f"grid.{_field_path((key,))}", key, values[0]) for key, values in spec.grid.items()
    ]
    if spec.random:
        trials += [
            (f"random.params.{_field_path((key,))}", key, dist.example())
            for key, dist in spec.random.params.items()
        ]
    for k, mix in enumerate(spec.policy_mixes):
        trials += [
            (f"policy_mixes.{k}.set.{_field_path((key,))}", key, v) for key, v in mix.set_.items()
        ]
    problems = []
    for label, key, value in trials:
        try:
            trial = apply_overrides(raw, {key: value})
        except ScenarioError as err:
            problems.append(f"  {label}: {err}")
            continue
        if not _parent_exists(resolved, key):
            problems.append(f"  {label}: {key!r} names no table of scenario {spec.base!r}")
            continue
        try:
            validate(trial, scenario_origin)
        except ScenarioError as err:
            # Only a key that names no field is the sweep's fault; a bad value fails its run.
            if "Extra inputs are not permitted" in str(err):
                problems.append(f"  {label}: {key!r} is not a field of scenario {spec.base!r}")
    if problems:
        raise SweepError("\n".join([f"{origin}: invalid sweep", *problems]))


def _parent_exists(data: Any, key: str) -> bool:
    """Whether the table holding ``key``'s last segment exists (defaults included), so a
    typo cannot create a new asset or protocol; new keys inside a table are checked by
    validation."""
    for part in key.split(".")[:-1]:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list):
            ids = [item.get("id") if isinstance(item, dict) else None for item in data]
            if part.isdigit() and int(part) < len(data):
                data = data[int(part)]
            elif part in ids:
                data = data[ids.index(part)]
            else:
                return False
        else:
            return False
    return isinstance(data, dict | list)


def load_sweep(
    name_or_path: str | Path | dict[str, Any] | SweepSpec,
    overrides: dict[str, Any] | None = None,
) -> SweepSpec:
    """Load a built-in sweep by name, a TOML file, or a table, and validate it.

    Args:
        name_or_path: A built-in name (see :func:`builtin_sweeps`), a ``.toml`` path, a
            raw table or an already validated :class:`SweepSpec`.
        overrides: Extra fixed scenario overrides, applied after the file's own.

    Raises:
        SweepError: Naming each invalid field, its value and what is allowed.
    """
    if isinstance(name_or_path, SweepSpec):
        data, origin, folder = name_or_path.model_dump(by_alias=True), "sweep", None
    elif isinstance(name_or_path, dict):
        data, origin, folder = dict(name_or_path), "sweep", None
    else:
        data, origin, folder = _read(name_or_path)
    if overrides:
        fixed = data.get("overrides", {})
        data["overrides"] = {**(fixed if isinstance(fixed, dict) else {}), **overrides}
    base = data.get("base")
    # As with scenario files, a relative .toml base is relative to the sweep file.
    if isinstance(base, str) and base.endswith(".toml") and folder and not Path(base).is_absolute():
        data["base"] = str(folder / base)
    if data.get("runtime_env") is not None:  # its paths too are relative to the sweep file
        data["runtime_env"] = resolve_runtime_env(
            data["runtime_env"], folder, f"{origin}: runtime_env"
        )
    return parse_spec(data, origin)


ID_COLUMNS = ["run_id", "seed", "policy_mix"]


def table(rows: list[dict[str, Any]], spec: SweepSpec) -> pd.DataFrame:
    """The sweep table: ids, varied values, status and error first, then the metrics."""
    first = [*ID_COLUMNS, *spec.variable_keys(), "status", "error"]
    df = pd.DataFrame(rows)
    for column in first:
        if column not in df:
            df[column] = None
    df = df[first + [c for c in df.columns if c not in first]]
    for column in df.columns[df.dtypes == "object"]:
        kinds = {type(v) for v in df[column] if v is not None and v == v}
        if len(kinds) > 1:  # a Parquet column has one type: mixed choices become text
            df[column] = [None if v is None else str(v) for v in df[column]]
    return df
