"""Scenario sweeps on Ray: one task per run, locally by default or on a cluster unchanged.

A sweep directory holds ``sweep.parquet`` (one row per run), ``sweep.json`` (the spec)
and ``runs/<run_id>/`` (a :meth:`RunResult.save` directory plus ``row.json``). Every run
directory appears by one rename with ``row.json`` inside, so a directory with ``row.json``
is a finished run and running the sweep again skips it. Ray tasks return their row and
files to the driver, which alone writes: worker nodes need no shared disk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import traceback
import uuid
from collections import deque
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from liqnet.analysis.convergence import convergence_index
from liqnet.analysis.export import to_node_link_json
from liqnet.analysis.graphs import contagion_graph
from liqnet.core.io import atomic_write
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.scenarios.analyze import amplification
from liqnet.scenarios.loader import ScenarioError, validate
from liqnet.scenarios.run import run
from liqnet.scenarios.sweep_schema import RunConfig, SweepError, SweepSpec, load_sweep, plan, table

__all__ = ["RunConfig", "SweepError", "SweepSpec", "load_sweep", "plan", "run_one", "sweep"]

log = logging.getLogger(__name__)

TABLE, ROW = "sweep.parquet", "row.json"
TABLE_EVERY_S = 2.0  # rewriting the table after every run would cost O(runs^2)


# -- one run -------------------------------------------------------------------------------


def analysis_columns(scenario: Scenario, config: RunConfig, result: RunResult) -> dict[str, Any]:
    """Amplification ratios (with ``feedback_twin``) and the convergence index."""
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


def _task(config: RunConfig) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The Ray task: the row and the artifact files' bytes (the driver writes them)."""
    with tempfile.TemporaryDirectory(prefix="liqnet-run-") as tmp:
        row = run_one(config, tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    return row, files


# -- the sweep directory -------------------------------------------------------------------


def _write_run(runs: Path, row: dict[str, Any], files: dict[str, bytes]) -> None:
    """Write one run directory under a temporary name, then rename it into place."""
    final = runs / row["run_id"]
    tmp = runs / f".tmp-{row['run_id']}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / ROW).write_text(json.dumps(row, indent=1, default=str), encoding="utf-8")
        if final.exists():  # a run directory whose row.json was removed: replace it whole
            trash = runs / f".trash-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_row(runs: Path, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((runs / run_id / ROW).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One sweep at a time per directory; a lock left by a dead process is taken over."""
    lock, mine = out / ".sweep.lock", out / f".sweep.lock.{os.getpid()}"
    mine.write_text(str(os.getpid()), encoding="utf-8")
    try:
        for _ in range(2):
            try:
                os.link(mine, lock)  # atomic: the lock appears with its pid already in it
                break
            except FileExistsError:
                text = lock.read_text(encoding="utf-8").strip()
                pid = int(text) if text.isdigit() else 0
                if _alive(pid):
                    raise SweepError(f"{out}: another sweep (pid {pid}) is writing here") from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
        else:
            raise SweepError(f"{out}: could not take {lock}")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


# -- Ray -----------------------------------------------------------------------------------


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[bool]:
    """Use the running Ray connection; else join ``address`` or ``RAY_ADDRESS``; else start a
    local instance with ``num_cpus`` CPUs that stops on exit. A joined cluster keeps
    running: on exit the driver only disconnects from it. Yields whether it started a
    local instance.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, logging_level=logging.WARNING)
    else:
        # "local": a fresh instance, even if `ray start` left one running on this machine.
        cpus = num_cpus or os.cpu_count() or 1
        ray.init(
            address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING
        )
    try:
        yield not target
    finally:
        ray.shutdown()


class _Progress:
    """Rich progress bar: runs done, failed, remaining, elapsed and estimated time left."""

    def __init__(self, name: str, total: int, skipped: int, enabled: bool, console: Console):
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[remaining]} remaining"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        label = f"{name}" + (f" ({skipped} already done)" if skipped else "")
        self.task = self.bar.add_task(label, total=total, done=0, failed=0, remaining=total)
        self.done = self.failed = 0
        self.total = total

    def advance(self, failed: bool) -> None:
        """Count one finished run."""
        self.failed += failed
        self.done += not failed
        remaining = self.total - self.done - self.failed
        self.bar.update(
            self.task, advance=1, done=self.done, failed=self.failed, remaining=remaining
        )


def sweep(
    spec_or_path: str | Path | dict[str, Any] | SweepSpec,
    address: str | None = None,
    out: str | Path | None = None,
    max_parallel: int | None = None,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> pd.DataFrame:
    """Run a sweep on Ray and return its table (also written to ``out/sweep.parquet``).

    Runs whose ``runs/<run_id>/row.json`` exists are read back, never recomputed. On
    Ctrl-C, outstanding tasks are cancelled, the table is written and the interrupt is
    raised again; running the same sweep into the same directory finishes the rest.

    Args:
        spec_or_path: Built-in sweep name, ``.toml`` path, raw table or :class:`SweepSpec`.
        address: Ray cluster address; None uses ``RAY_ADDRESS``, or else a local instance.
        out: Output directory; default ``sweeps/<name>``.
        max_parallel: Most runs at once: the CPUs of a local instance, or a cap on the
            tasks in flight on a cluster (default: all its CPUs).
        progress: Show a progress bar.
        console: Where the progress bar goes (default: standard error).

    Returns:
        One row per run, in plan order; ``df.attrs`` holds ``computed``, ``skipped``,
        ``failed`` (counts of this call) and ``out``.

    Raises:
        SweepError: The sweep is invalid, or another sweep is writing to ``out``.
    """
    if max_parallel is not None and max_parallel < 1:
        raise SweepError(f"max_parallel = {max_parallel}: must be at least 1")
    spec = load_sweep(spec_or_path)
    configs = plan(spec)
    out = Path(out) if out is not None else Path("sweeps") / spec.name
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        for stale in [*runs.glob(".tmp-*"), *runs.glob(".trash-*")]:  # left by a hard kill
            shutil.rmtree(stale, ignore_errors=True)
        text = spec.model_dump_json(indent=2, by_alias=True)
        atomic_write(out / "sweep.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
        rows = {c.run_id: r for c in configs if (r := _read_row(runs, c.run_id)) is not None}
        counts = {"computed": 0, "skipped": len(rows), "failed": 0}

        def current() -> pd.DataFrame:
            df = table([rows[c.run_id] for c in configs if c.run_id in rows], spec)
            df.attrs.update(counts, out=str(out))
            return df

        def save_table() -> None:
            df = current()
            atomic_write(out / TABLE, lambda p: df.to_parquet(p, index=False))

        todo = [c for c in configs if c.run_id not in rows]
        console = console or Console(stderr=True)
        bar = _Progress(spec.name, len(todo), len(rows), progress, console)
        last_table = time.monotonic()
        try:
            with (
                bar.bar,
                ray_session(address, max_parallel) if todo else nullcontext(False) as local,
                # A local instance has max_parallel CPUs, so Ray itself caps the runs at
                # once; queueing them all keeps workers busy while the driver writes.
                closing(
                    _results(spec, todo, runs, None if local else max_parallel, cancel=not local)
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


def _results(
    spec: SweepSpec, todo: list[RunConfig], runs: Path, window: int | None, cancel: bool
) -> Generator[tuple[RunConfig, dict[str, Any]], None, None]:
    """Submit the runs as Ray tasks, at most ``window`` in flight; yield each row once its
    directory is written. Interrupted, it cancels the tasks still outstanding if
    ``cancel`` (a Ray that keeps running); a local instance stops its workers itself."""
    if not todo:
        return
    import ray

    # max_retries: Ray resubmits a task whose worker or node died. A run's own errors are
    # caught in run_one, so retrying exceptions would only repeat them.
    task = ray.remote(max_retries=spec.max_retries, retry_exceptions=False)(_task)
    queue: deque[RunConfig] = deque(todo)
    pending: dict[Any, RunConfig] = {}
    try:
        while queue or pending:
            while queue and (window is None or len(pending) < window):
                config = queue.popleft()
                pending[task.remote(config)] = config
            ready, rest = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if ready and rest:  # take everything else that has finished too
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                config = pending.pop(ref)
                try:
                    row, files = ray.get(ref)
                except ray.exceptions.RayError as err:
                    # Retries exhausted or result lost: failed in this table, but no row.json,
                    # so the next run of the sweep tries it again.
                    row = _base_row(config)
                    row.update(status="failed", error=f"task lost: {type(err).__name__}: {err}")
                else:
                    _write_run(runs, row, files)
                yield config, row
    finally:
        # Reached on Ctrl-C (KeyboardInterrupt) or any error: leave nothing running. Only
        # where Ray keeps running: on a local instance that shuts down next, a cancel that
        # races a finishing task can abort the driver inside Ray ("Tried to complete task
        # that was not pending", the race of ray-project/ray#54798), losing the exit code.
        for ref in pending if cancel else ():
            with suppress(Exception):  # already finished, or Ray is going down
                ray.cancel(ref, force=True)
