"""Sweep throughput on Ray: runs per second with 1 and 2 workers, parallel efficiency, and
the fixed overhead each run pays for being a Ray task.

``--runs`` flash-crash runs of a few seconds each (``--positions`` per protocol,
``--steps`` steps) are timed four ways, each the best of ``--repeats`` (this machine is
shared, and the best time is the one least disturbed by other load):

* serially in this process, doing a Ray task's work (run, save the artifacts, read them);
* as a sweep on a local Ray instance with 1 and with 2 CPUs (workers warmed up first, so
  their one-off imports are not counted);
* in a plain 2-process pool: the ceiling the machine allows at the time.

The fixed overhead per run is measured on tiny runs (1 step, 100 positions): a 1-worker
sweep's wall time per run minus ``run_one``'s time in-process. Prints a table, writes JSON.

    python benchmarks/sweep_scaling.py [--runs 8] [--out benchmarks/results/sweep_scaling.json]
"""

from __future__ import annotations

import os

# One core per worker: pin BLAS/OpenMP threads before NumPy is imported (workers inherit).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import ray  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from liqnet.scenarios.sweep import _task, load_sweep, plan, run_one, sweep  # noqa: E402


def sweep_table(runs: int, positions: int, steps: int, name: str) -> dict[str, Any]:
    """A sweep of ``runs`` flash-crash seeds with ``positions`` per protocol."""
    return {
        "name": name,
        "base": "flash_crash",
        "overrides": {f"protocols.{k}.params.positions": positions for k in range(3)},
        "steps": steps,
        "seeds": list(range(runs)),
    }


def best_rate(measure: Callable[[], float], repeats: int) -> float:
    """The highest runs/s of ``repeats`` measurements."""
    return max(measure() for _ in range(repeats))


def serial_rate(table: dict[str, Any], work: Callable[[Any], Any]) -> float:
    """Runs/s doing ``work`` for every run, one after another, in this process."""
    configs = plan(load_sweep(table))
    start = time.perf_counter()
    for config in configs:
        work(config)
    return len(configs) / (time.perf_counter() - start)


def pool_rate(table: dict[str, Any], workers: int) -> float:
    """Runs/s of a Ray task's work in a plain process pool (the machine's ceiling)."""
    configs = plan(load_sweep(table))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(run_one, configs[:workers], chunksize=1)  # warm-up: imports
        start = time.perf_counter()
        pool.map(_task, configs, chunksize=1)
        return len(configs) / (time.perf_counter() - start)


def ray_rates(table: dict[str, Any], workers: int, repeats: int, folder: Path) -> dict:
    """Best runs/s of a sweep on a local Ray instance with ``workers`` CPUs, and its
    start-up time (instance plus worker warm-up)."""
    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        warm = sweep_table(4 * workers, 100, 1, "warmup")  # every worker imports liqnet
        sweep(warm, out=folder / f"warm{workers}", progress=False)
        startup = time.perf_counter() - start
        rates = []
        for k in range(repeats):
            start = time.perf_counter()
            # No max_parallel: Ray caps the runs at once at the CPUs, as in a local sweep.
            df = sweep(table, out=folder / f"{table['name']}{workers}-{k}", progress=False)
            rates.append(len(df) / (time.perf_counter() - start))
            assert (df["status"] == "done").all() and df.attrs["computed"] == len(df)
    finally:
        ray.shutdown()
    return {"runs_per_s": max(rates), "all_runs_per_s": rates, "startup_s": startup}


def main() -> None:
    """Measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per sweep")
    parser.add_argument("--positions", type=int, default=200_000, help="per protocol")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many")
    parser.add_argument("--tiny-runs", type=int, default=40, help="runs to measure overhead")
    parser.add_argument("--out", default="benchmarks/results/sweep_scaling.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    table = sweep_table(args.runs, args.positions, args.steps, "scaling")
    tiny = sweep_table(args.tiny_runs, 100, 1, "tiny")
    serial_rate(sweep_table(1, args.positions, 10, "warm"), _task)  # imports, caches
    serial = best_rate(lambda: serial_rate(table, _task), args.repeats)
    pool = best_rate(lambda: pool_rate(table, 2), args.repeats)
    tiny_serial = best_rate(lambda: serial_rate(tiny, run_one), args.repeats)
    with tempfile.TemporaryDirectory(prefix="liqnet-bench-") as tmp:
        folder = Path(tmp)
        scaling = {n: ray_rates(table, n, args.repeats, folder) for n in (1, 2)}
        tiny_ray = ray_rates(tiny, 1, args.repeats, folder)
    one, two = scaling[1]["runs_per_s"], scaling[2]["runs_per_s"]
    result = {
        "benchmark": "sweep_scaling",
        "machine": {
            "python": platform.python_version(),
            "ray": ray.__version__,
            "cpus": os.cpu_count(),
            "processor": platform.machine(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "run": {"positions": args.positions, "steps": args.steps, "serial_s": 1 / serial},
        "runs": args.runs,
        "repeats": args.repeats,
        "serial_runs_per_s": serial,
        "workers": {str(n): v for n, v in scaling.items()},
        "parallel_efficiency": two / (2 * one),
        "pool_2_runs_per_s": pool,
        "pool_parallel_efficiency": pool / (2 * serial),
        "overhead": {
            "fixed_per_run_s": 1 / tiny_ray["runs_per_s"] - 1 / tiny_serial,
            "tiny_run_in_process_s": 1 / tiny_serial,
            "tiny_run_in_sweep_s": 1 / tiny_ray["runs_per_s"],
            "one_worker_vs_serial_per_run_s": 1 / one - 1 / serial,
        },
    }

    report = Table(title=f"sweep scaling: {args.runs} runs of {1 / serial:.2f} s (serial)")
    for column in ("", "runs/s", "speed-up", "efficiency"):
        report.add_column(column, justify="right")
    report.add_row("serial, in-process", f"{serial:.3f}", "", "")
    for n, v in scaling.items():
        speedup = v["runs_per_s"] / one
        report.add_row(f"Ray, {n} worker(s)", f"{v['runs_per_s']:.3f}", f"{speedup:.2f}x", "")
    report.add_row("Ray 2 vs 1 worker", "", f"{two / one:.2f}x", f"{two / (2 * one):.0%}")
    pool_speedup = pool / serial
    efficiency = f"{pool_speedup / 2:.0%}"
    report.add_row("process pool, 2", f"{pool:.3f}", f"{pool_speedup:.2f}x", efficiency)
    console = Console(width=110)
    console.print(report)
    overhead = result["overhead"]
    console.print(
        f"fixed overhead per run: {overhead['fixed_per_run_s'] * 1000:.0f} ms (tiny runs: "
        f"{overhead['tiny_run_in_sweep_s'] * 1000:.0f} ms in a 1-worker sweep, "
        f"{overhead['tiny_run_in_process_s'] * 1000:.0f} ms in-process); 1 worker vs serial: "
        f"{overhead['one_worker_vs_serial_per_run_s'] * 1000:+.0f} ms per run; "
        f"Ray start-up {scaling[1]['startup_s']:.1f} s"
    )
    console.print(f"load average before/after: {load_before} / {os.getloadavg()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
