"""Throughput of Black-Scholes pricing with all Greeks: options per second, NumPy vs torch.

Times `black_scholes` (NumPy, inputs validated as in normal use) and `black_scholes_torch`
(``validate=False``, inputs already tensors on the device: the hot-loop fast path) on CPU,
and on CUDA when available, for 10k and 1M options of mixed kind; reports the median of
repeats after one warm-up call and each backend's speed-up over NumPy, plus the neural
surface fit's cost relative to the SVI fit, both ratios measured in the same process.
Runs in well under two minutes on a laptop.

Usage:
    python benchmarks/greeks_throughput.py --out benchmarks/results/greeks_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liqnet.protocols.options import (
    NeuralSurface,
    SmileSpec,
    SVISurface,
    black_scholes,
    black_scholes_torch,
    market_quotes,
    pricing,
)

DEFAULT_SIZES = (10_000, 1_000_000)
DEFAULT_OUT = Path("benchmarks/results/greeks_throughput.json")
# Enough repeats for a stable median while keeping the 1M cases to a few seconds each.
TARGET_SECONDS_PER_CASE = 2.0
MIN_REPEATS, MAX_REPEATS = 5, 200


def make_book(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random options: moneyness 0.5-2, expiry 1 day-2 years, vol 10-150%, mixed kinds."""
    rng = np.random.default_rng(seed)
    return {
        "spot": np.full(n, 2000.0),
        "strike": 2000.0 * rng.uniform(0.5, 2.0, n),
        "expiry_years": rng.uniform(1 / 365, 2.0, n),
        "rate": np.full(n, 0.04),
        "volatility": rng.uniform(0.1, 1.5, n),
        "kind": rng.random(n) < 0.5,
    }


def time_call(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, int]:
    """Median wall time of ``fn`` over repeats sized to ~TARGET_SECONDS_PER_CASE."""
    fn()  # warm-up: allocator, kernel caches, lazy imports
    sync()
    start = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - start
    repeats = int(min(MAX_REPEATS, max(MIN_REPEATS, TARGET_SECONDS_PER_CASE / max(first, 1e-9))))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), repeats


def run(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Benchmark every backend at every size; one result row per (backend, size)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[dict[str, Any]] = []
    for n in sizes:
        book = make_book(n)
        median, repeats = time_call(lambda book=book: black_scholes(**book), lambda: None)
        rows.append({"backend": "numpy", "n_options": n, "median_s": median, "repeats": repeats})
        for device in devices:
            tensors = {k: torch.as_tensor(v, device=device) for k, v in book.items()}

            def call(tensors: dict[str, torch.Tensor] = tensors) -> Any:
                return black_scholes_torch(**tensors, validate=False)

            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            median, repeats = time_call(call, sync)
            rows.append(
                {
                    "backend": f"torch-{device}",
                    "n_options": n,
                    "median_s": median,
                    "repeats": repeats,
                }
            )
    numpy_s = {row["n_options"]: row["median_s"] for row in rows if row["backend"] == "numpy"}
    for row in rows:
        row["options_per_s"] = row["n_options"] / row["median_s"]
        # Same-process ratio against the NumPy reference: independent of machine load.
        row["speedup_vs_numpy"] = numpy_s[row["n_options"]] / row["median_s"]
    return rows


def surface_fit_ratio(seed: int = 3) -> dict[str, Any]:
    """Seconds per NeuralSurface.fit and SVISurface.fit on one quote set, and their ratio.

    The neural fit's cost is reported relative to the SVI fit (the reference) timed in the
    same process, so the figure does not move with the machine's speed or load.
    """
    expiries = np.array([1.0, 7.0, 14.0, 28.0, 56.0]) / 365.0
    quotes = market_quotes(3000.0, 0.7, expiries, np.random.default_rng(seed), SmileSpec())
    neural_s, _ = time_call(lambda: NeuralSurface.fit(quotes, seed=11), lambda: None)
    svi_s, _ = time_call(lambda: SVISurface.fit(quotes), lambda: None)
    return {
        "n_quotes": len(quotes.strike),
        "neural_fit_s": neural_s,
        "svi_fit_s": svi_s,
        "neural_over_svi": neural_s / svi_s,
    }


def environment() -> dict[str, Any]:
    """What the numbers depend on: versions, threads, CDF backend, device names."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy_ndtr": "scipy.special.ndtr" if pricing._scipy_ndtr is not None else "torch erfc",
        "cpu": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": "float64",
        "greeks": ["price", "delta", "gamma", "vega", "theta", "rho"],
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/greeks_throughput.json")
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    args = parser.parse_args(argv)

    rows = run(tuple(args.sizes))
    print(
        f"{'backend':<12} {'options':>10} {'median ms':>11} {'options/s':>14} "
        f"{'x numpy':>8} {'repeats':>8}"
    )
    for row in rows:
        print(
            f"{row['backend']:<12} {row['n_options']:>10,} {row['median_s'] * 1e3:>11.2f} "
            f"{row['options_per_s']:>14,.0f} {row['speedup_vs_numpy']:>8.1f} {row['repeats']:>8}"
        )
    fit = surface_fit_ratio()
    print(
        f"surface fit on {fit['n_quotes']} quotes: neural {fit['neural_fit_s'] * 1e3:.1f} ms, "
        f"SVI {fit['svi_fit_s'] * 1e3:.1f} ms, neural/SVI {fit['neural_over_svi']:.1f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment(), "results": rows, "surface_fit": fit}
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
