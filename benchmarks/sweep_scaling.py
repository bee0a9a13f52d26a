"""Sweep throughput on Ray: runs per second with 1 and 2 workers, parallel efficiency, and
the fixed overhead each run pays for being a Ray task.

Runs ``--runs`` flash-crash runs of a few seconds each (``--positions`` per protocol,
``--steps`` steps) in-process, then as a sweep on a local Ray instance with 1 and with 2
CPUs (workers warmed up first, so their one-off imports are not counted). The fixed
overhead per run is measured on tiny runs (1 step, 100 positions): the sweep's wall time
per run minus ``run_one``'s own time in-process. The same runs in a plain process pool give the machine's ceiling at the
time (other load on a shared machine lowers both). Prints a table and writes JSON.

    python benchmarks/sweep_scaling.py [--runs 12] [--out benchmarks/results/sweep_scaling.json]
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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
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


def in_process_s(table: dict[str, Any], repeats: int) -> float:
    """Median wall time of ``run_one`` in this process (after one warm-up run)."""
    configs = plan(load_sweep(table))
    run_one(configs[0])
    times = []
    for config in configs[:repeats]:
        start = time.perf_counter()
        run_one(config)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pool_runs_per_s(table: dict[str, Any], workers: int) -> float:
    """The machine's ceiling: the same work per run as a Ray task (run, save, read back),
    in a plain process pool. Other load on the machine lowers it as much as Ray's figure."""
    configs = plan(load_sweep(table))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(run_one, configs[:workers], chunksize=1)  # warm-up: imports
        start = time.perf_counter()
        pool.map(_task, configs, chunksize=1)
        return len(configs) / (time.perf_counter() - start)


def timed_sweep(table: dict[str, Any], workers: int, folder: Path) -> dict[str, float]:
    """Wall time of a sweep on a fresh local Ray instance with ``workers`` CPUs."""
    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        # Warm-up: every worker imports liqnet once; that cost is not per run.
        warm = sweep_table(4 * workers, 100, 1, "warmup")
        sweep(warm, out=folder / f"warm{workers}", progress=False)
        startup = time.perf_counter() - start
        start = time.perf_counter()
        # No max_parallel: Ray caps the runs at once at the instance's CPUs, as in a local sweep.
        df = sweep(table, out=folder / f"sweep{workers}", progress=False)
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    assert (df["status"] == "done").all() and df.attrs["computed"] == len(df)
    return {"wall_s": wall, "runs_per_s": len(df) / wall, "startup_s": startup}


def main() -> None:
    """Measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12, help="runs per sweep")
    parser.add_argument("--positions", type=int, default=100_000, help="per protocol")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--tiny-runs", type=int, default=40, help="runs to measure overhead")
    parser.add_argument("--out", default="benchmarks/results/sweep_scaling.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    table = sweep_table(args.runs, args.positions, args.steps, "scaling")
    tiny = sweep_table(args.tiny_runs, 100, 1, "tiny")
    run_s = in_process_s(table, repeats=3)
    tiny_s = in_process_s(tiny, repeats=10)
    with tempfile.TemporaryDirectory(prefix="liqnet-bench-") as tmp:
        folder = Path(tmp)
        scaling = {n: timed_sweep(table, n, folder) for n in (1, 2)}
        overhead = timed_sweep(tiny, 1, folder)
    for n, v in scaling.items():
        v["pool_runs_per_s"] = pool_runs_per_s(table, n)
    efficiency = scaling[2]["runs_per_s"] / (2 * scaling[1]["runs_per_s"])
    pool_efficiency = scaling[2]["pool_runs_per_s"] / (2 * scaling[1]["pool_runs_per_s"])
    overhead_s = 1.0 / overhead["runs_per_s"] - tiny_s
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
        "run": {"positions": args.positions, "steps": args.steps, "in_process_s": run_s},
        "runs": args.runs,
        "workers": {str(n): v for n, v in scaling.items()},
        "parallel_efficiency": efficiency,
        "pool_parallel_efficiency": pool_efficiency,
        "overhead": {
            "tiny_run_in_process_s": tiny_s,
            "tiny_sweep_wall_per_run_s": 1.0 / overhead["runs_per_s"],
            "fixed_overhead_per_run_s": overhead_s,
            "overhead_1_worker_per_run_s": 1.0 / scaling[1]["runs_per_s"] - run_s,
        },
    }

    report = Table(title=f"sweep scaling: {args.runs} runs of {run_s:.2f} s in-process")
    columns = ("workers", "wall s", "runs/s", "speed-up", "efficiency", "startup s")
    for column in (*columns, "pool runs/s", "pool efficiency"):
        report.add_column(column, justify="right")
    for n, v in scaling.items():
        speedup = v["runs_per_s"] / scaling[1]["runs_per_s"]
        report.add_row(
            str(n),
            f"{v['wall_s']:.1f}",
            f"{v['runs_per_s']:.3f}",
            f"{speedup:.2f}x",
            f"{speedup / n:.0%}",
            f"{v['startup_s']:.1f}",
            f"{v['pool_runs_per_s']:.3f}",
            f"{v['pool_runs_per_s'] / (n * scaling[1]['pool_runs_per_s']):.0%}",
        )
    console = Console()
    console.print(report)
    console.print(
        f"fixed overhead per run: {overhead_s * 1000:.0f} ms (tiny runs: "
        f"{1000 / overhead['runs_per_s']:.0f} ms per run in a sweep vs {tiny_s * 1000:.0f} ms "
        f"in-process); 1-worker overhead on the runs above: "
        f"{result['overhead']['overhead_1_worker_per_run_s'] * 1000:.0f} ms per run"
    )
    console.print(f"load average before/after: {load_before} / {os.getloadavg()}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
