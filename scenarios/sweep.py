"""Scenario sweeps on Ray: one task per run, locally by default or on a cluster unchanged.

A sweep directory holds ``sweep.parquet`` (one row per run), ``sweep.json`` (the spec)
and ``runs/<run_id>/`` (a :meth:`RunResult.save` directory plus ``row.json``). Every run
directory appears by one rename with ``row.json`` inside, so a directory with ``row.json``
is a finished run and running the sweep again skips it. Ray tasks return their row and
files to the driver, which alone writes: worker nodes need no shared disk.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, closing, suppress
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from liqnet.core.io import atomic_write
from liqnet.scenarios.loader import validate
from liqnet.scenarios.ray_connect import ray_connection
from liqnet.scenarios.sweep_dir import SweepProgress, lock, read_row, write_run
from liqnet.scenarios.sweep_plan import RunConfig, SweepPlan, iter_plan, plan
from liqnet.scenarios.sweep_registrations import (
    Registrations,
    apply_registrations,
    driver_registrations,
)
from liqnet.scenarios.sweep_run import _base_row, _message, _task, analysis_columns, run_one
from liqnet.scenarios.sweep_schema import SweepError, SweepSpec, load_sweep, table

__all__ = [
    "RunConfig",
    "SweepError",
    "SweepPlan",
    "SweepSpec",
    "analysis_columns",
    "iter_plan",
    "load_sweep",
    "plan",
    "run_one",
    "sweep",
]

log = logging.getLogger(__name__)

TABLE = "sweep.parquet"
_lock = lock  # the name the tests know
TABLE_EVERY_S = 2.0  # rewriting the table after every run would cost O(runs^2)
WINDOW_EVERY_S = 10.0  # how often the runs-in-flight window follows the cluster's CPUs


# -- Ray -----------------------------------------------------------------------------------


def ray_session(
    address: str | None = None,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> AbstractContextManager[bool]:
    """The sweep's Ray connection (:func:`liqnet.scenarios.ray_connect.ray_connection`):
    the running one; else ``address`` or ``RAY_ADDRESS``; else a local instance with
    ``num_cpus`` CPUs. Yields whether it started a local instance."""
    return ray_connection(address, num_cpus, runtime_env)


def _check_run(config: RunConfig, registrations: Registrations) -> str | None:
    """What stops ``config`` before it simulates anything (its scenario, its protocol
    types, its policies and their checkpoints), or None: run on the driver and on a
    worker, so a difference between them shows at submission."""
    from liqnet.scenarios.policies import resolve_policies

    apply_registrations(registrations)
    try:
        if config.override_error:
            return config.override_error
        resolve_policies(validate(config.scenario, config.origin))
    except Exception as err:
        return _message(err)
    return None


def preflight(firsts: list[RunConfig], registrations: Registrations) -> None:
    """Fail at submission, once, on what would fail every run on the workers only.

    ``firsts`` is the first run of every policy mix (:meth:`SweepPlan.first_of_each_mix`);
    each is checked here and in a Ray task: a protocol type added with ``register()`` in
    this process, a plugin installed only here, a relative checkpoint path that exists only
    here all pass on the driver and fail on a worker. A run that fails here too (a bad
    value) is the run's own failure and is left to it.

    Raises:
        SweepError: Naming the worker's error and how to ship what is missing.
    """
    import ray

    local_ok = [c for c in firsts if _check_run(c, {}) is None]
    if not local_ok:
        return
    check = ray.remote(num_cpus=1, max_retries=1)(_check_run)
    refs = [check.remote(c, registrations) for c in local_ok]
    for config, ref in zip(local_ok, refs, strict=True):
        try:
            problem = ray.get(ref)
        except ray.exceptions.RayError as err:  # e.g. a registered class cannot unpickle
            lines = [line for line in str(err).strip().splitlines() if line.strip()]
            problem = lines[-1] if lines else type(err).__name__
        if problem is not None:
            which = (
                "" if config.policy_mix == "scenario" else f" of policy mix {config.policy_mix!r}"
            )
            raise SweepError(
                f"runs{which} pass here but fail on the Ray "
                f"workers: {problem}\nThe workers lack what this machine has: ship files "
                "and code with a runtime_env (--runtime-env FILE or a [runtime_env] table: "
                "working_dir, py_modules, pip), or install the plugin on every node. "
                "Types added with register() exist only in this process: package them as "
                "an entry point (liqnet.protocols) or ship their module with py_modules."
            )


def sweep(
    spec_or_path: str | Path | dict[str, Any] | SweepSpec,
    address: str | None = None,
    out: str | Path | None = None,
    max_parallel: int | None = None,
    *,
    progress: bool = True,
    console: Console | None = None,
    runtime_env: dict[str, Any] | None = None,
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Run a sweep on Ray and return its table (also written to ``out/sweep.parquet``).

    Runs are planned lazily (:class:`~liqnet.scenarios.sweep_plan.SweepPlan`): each is
    built when there is room to submit it, so the progress bar shows from the start and
    planning memory does not grow with the runs. Runs whose ``runs/<run_id>/row.json``
    exists are read back as the plan reaches them, never recomputed; with
    ``retry_failed``, those recorded as failed are run again (a run whose task was lost
    has no ``row.json`` and always runs again). Ray starts only once a run is left to
    compute. Before submitting, :func:`preflight` checks that the workers can build the
    runs. On
    Ctrl-C, outstanding tasks are cancelled, the table is written (with the runs the plan
    had reached: finished runs further on are in ``runs/`` and join the table when the
    plan reaches them) and the interrupt is raised again; running the same sweep into
    the same directory finishes the rest.

    Args:
        spec_or_path: Built-in sweep name, ``.toml`` path, raw table or :class:`SweepSpec`.
        address: Ray cluster address; None uses ``RAY_ADDRESS``, or else a local instance.
        out: Output directory; default ``sweeps/<name>``.
        max_parallel: Most runs at once: the CPUs of a local instance, or a cap on the
            tasks in flight on a cluster (default: all its CPUs).
        progress: Show a progress bar.
        console: Where the progress bar goes (default: standard error).
        runtime_env: Ray ``runtime_env`` of the job, merged over the sweep file's
            ``[runtime_env]`` table (``working_dir``, ``py_modules``, ``pip``, ...).
        retry_failed: Run again the runs recorded as failed.

    Returns:
        One row per run, in plan order; ``df.attrs`` holds ``computed``, ``skipped``,
        ``failed``, ``retried`` (counts of this call) and ``out``.

    Raises:
        SweepError: The sweep is invalid, another sweep is writing to ``out``, or the
            workers cannot build runs that this machine can (:func:`preflight`).
        RayConnectionError: The cluster could not be joined.
    """
    if max_parallel is not None and max_parallel < 1:
        raise SweepError(f"max_parallel = {max_parallel}: must be at least 1")
    spec = load_sweep(spec_or_path)
    planned = SweepPlan(spec)  # builds no run yet: each is built as it is submitted
    out = Path(out) if out is not None else Path("sweeps") / spec.name
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with lock(out):
        for stale in [*runs.glob(".tmp-*"), *runs.glob(".trash-*")]:  # left by a hard kill
            shutil.rmtree(stale, ignore_errors=True)
        # atomic_write's temporaries of the table and the spec, left by a kill -9.
        for stale_file in [*out.glob(f".{TABLE}.*"), *out.glob(".sweep.json.*")]:
            stale_file.unlink(missing_ok=True)
        text = spec.model_dump_json(indent=2, by_alias=True)
        atomic_write(out / "sweep.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
        order: list[str] = []  # run ids in plan order: the table's row order
        rows: dict[str, dict[str, Any]] = {}
        counts = {"computed": 0, "skipped": 0, "failed": 0, "retried": 0}

        def current() -> pd.DataFrame:
            df = table([rows[run_id] for run_id in order if run_id in rows], spec)
            df.attrs.update(counts, out=str(out))
            return df

        def save_table() -> None:
            df = current()
            atomic_write(out / TABLE, lambda p: df.to_parquet(p, index=False))

        console = console or Console(stderr=True)
        bar = SweepProgress(spec.name, len(planned), progress, console)

        def todo() -> Iterator[RunConfig]:
            """The runs to compute, in plan order; finished ones are read back (a row.json
            exists) as the plan reaches them, and counted."""
            for config in planned:
                order.append(config.run_id)
                row = read_row(runs, config.run_id)
                if row is not None and retry_failed and row.get("status") != "done":
                    counts["retried"] += 1
                    row = None
                if row is None:
                    yield config
                    continue
                rows[config.run_id] = row
                counts["skipped"] += 1
                bar.skip()

        job_env = {**(spec.runtime_env or {}), **(runtime_env or {})} or None
        last_table = time.monotonic()
        try:
            with bar.bar:
                pending = todo()
                first = next(pending, None)  # Ray starts only if there is a run to compute
                if first is None:
                    return current()
                with (
                    ray_session(address, max_parallel, job_env) as local,
                    closing(
                        _results(
                            spec,
                            planned,
                            itertools.chain([first], pending),
                            runs,
                            max_parallel,
                            local,
                        )
                    ) as results,
                ):
                    for config, row in results:
                        rows[config.run_id] = row
                        counts["computed"] += 1
                        counts["failed"] += row["status"] != "done"
                        bar.advance(failed=row["status"] != "done")
                        if time.monotonic() - last_table > TABLE_EVERY_S:
                            save_table()
                            last_table = time.monotonic()
        finally:
            save_table()
        return current()


def _window(max_parallel: int | None, local: bool) -> int:
    """Runs in flight at once: ``max_parallel`` on a cluster (a cap on tasks in flight);
    else twice the CPUs Ray has (a local instance has ``max_parallel`` CPUs, so Ray itself
    caps the runs at once; a second run queued per CPU keeps workers busy while the driver
    writes), read again every :data:`WINDOW_EVERY_S` (a cluster may grow)."""
    import ray

    if max_parallel is not None and not local:
        return max_parallel
    return max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))


def _results(
    spec: SweepSpec,
    planned: SweepPlan,
    todo: Iterator[RunConfig],
    runs: Path,
    max_parallel: int | None,
    local: bool,
) -> Generator[tuple[RunConfig, dict[str, Any]], None, None]:
    """Check the runs on a worker (:func:`preflight`), then submit them as Ray tasks with
    this process's registrations, taking each from ``todo`` only when there is room in the
    window (:func:`_window`); yield each row once its directory is written. Interrupted, it
    cancels the tasks still outstanding where Ray keeps running (not ``local``: a local
    instance stops its workers itself)."""
    import ray

    # Passed by value (small: usually empty, classes by reference), so Ray inlines it in
    # each task: a ray.put copy would live on one node and be lost with it.
    registrations = driver_registrations(planned.named_values())
    preflight(planned.first_of_each_mix(), registrations)
    # max_retries: Ray resubmits a task whose worker or node died. A run's own errors are
    # caught in run_one, so retrying exceptions would only repeat them.
    task = ray.remote(max_retries=spec.max_retries, retry_exceptions=False)(_task)
    again: deque[RunConfig] = deque()  # runs lost with a node, submitted again first
    pending: dict[Any, RunConfig] = {}
    resubmitted: dict[str, int] = {}
    window, window_read = _window(max_parallel, local), time.monotonic()
    exhausted = False
    try:
        while True:
            if time.monotonic() - window_read > WINDOW_EVERY_S:
                window, window_read = _window(max_parallel, local), time.monotonic()
            while len(pending) < window and (again or not exhausted):
                config = again.popleft() if again else next(todo, None)
                if config is None:
                    exhausted = True
                    break
                pending[task.remote(config, registrations)] = config
            if not pending:
                return
            ready, rest = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if ready and rest:  # take everything else that has finished too
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                config = pending.pop(ref)
                try:
                    row, files = ray.get(ref)
                except ray.exceptions.RayError as err:
                    # Lost to a node's death after Ray's own retries (removing a node
                    # mid-sweep can surface as OwnerDiedError on a finished task's result):
                    # the driver submits the run again, up to max_retries times.
                    resubmitted[config.run_id] = resubmitted.get(config.run_id, 0) + 1
                    if resubmitted[config.run_id] <= spec.max_retries:
                        again.append(config)
                        continue
                    # Retries exhausted: failed in this table, but no row.json, so the
                    # next run of the sweep tries it again.
                    row = _base_row(config)
                    row.update(status="failed", error=f"task lost: {type(err).__name__}: {err}")
                else:
                    write_run(runs, row, files)
                yield config, row
    finally:
        # Reached on Ctrl-C (KeyboardInterrupt) or any error: leave nothing running. Only
        # where Ray keeps running: on a local instance that shuts down next, a cancel that
        # races a finishing task can abort the driver inside Ray ("Tried to complete task
        # that was not pending", the race of ray-project/ray#54798), losing the exit code.
        for ref in pending if not local else ():
            with suppress(Exception):  # already finished, or Ray is going down
                ray.cancel(ref, force=True)
