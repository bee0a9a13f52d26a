"""World steps per second, and step cost against the number of positions.

Runs the default world (``baseline``: two lending pools and a perp exchange, 10,000
positions each) on one core, then the same world with 1k / 10k / 100k positions per
protocol. Prints a table and writes JSON.

    python benchmarks/world_throughput.py [--steps 2000] [--out benchmarks/results/...]
"""

from __future__ import annotations

import os

# One core: pin BLAS/OpenMP threads before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from liqnet.market import MarketModel  # noqa: E402
from liqnet.scenarios import load  # noqa: E402

# Balance-sheet sizes scaled with the number of positions, so that the distribution of
# position sizes (and so the share of dust positions no liquidator will touch) stays the
# same: a bigger book, not a book of smaller positions.
_SCALED = {
    0: ("deposits_usd", "reserves_usd"),
    1: ("deposits_usd", "reserves_usd"),
    2: ("vault_usd", "open_interest_usd", "insurance_fund_usd", "treasury_usd"),
}


def world(positions: int | None = None) -> MarketModel:
    """The baseline world, optionally with ``positions`` positions per protocol."""
    base = load("baseline")
    if positions is None:
        return MarketModel(base)
    factor = positions / 10_000
    overrides: dict[str, object] = {}
    for k, names in _SCALED.items():
        params = base.protocols[k].params
        overrides[f"protocols.{k}.params.positions"] = positions
        for name in names:
            overrides[f"protocols.{k}.params.{name}"] = params[name] * factor
    for asset, spec in base.market.assets.items():
        overrides[f"market.assets.{asset}.pool_usd"] = spec.pool_usd * factor
    for k, spec in enumerate(base.liquidators):
        overrides[f"liquidators.{k}.capital_usd"] = spec.capital_usd * factor
    for k, spec in enumerate(base.arbitrageurs):
        overrides[f"arbitrageurs.{k}.capital_usd"] = spec.capital_usd * factor
    return MarketModel(load("baseline", overrides))


def time_steps(model: MarketModel, steps: int, blocks: int = 5) -> dict[str, float]:
    """Median and best seconds per step over ``blocks`` blocks of ``steps // blocks``."""
    for _ in range(20):  # warm-up: caches, first index rebuilds
        model.step()
    per_block = max(1, steps // blocks)
    samples = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            model.step()
        samples.append((time.perf_counter() - start) / per_block)
    return {"median_s": statistics.median(samples), "best_s": min(samples)}


def time_liquidation_search(model: MarketModel, repeats: int = 2000) -> float:
    """Seconds for one full liquidation search (every protocol, every book)."""
    protocols = list(model.protocols.values())
    start = time.perf_counter()
    for _ in range(repeats):
        for protocol in protocols:
            protocol.liquidation_candidates()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    """Run the benchmark, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--out", default="benchmarks/results/world_throughput.json")
    args = parser.parse_args()

    default = time_steps(world(), args.steps)
    steps_per_second = 1.0 / default["median_s"]
    print(f"default world (baseline, 3 x 10,000 positions): {steps_per_second:,.0f} steps/s")
    print(f"  median {1e6 * default['median_s']:.0f} us/step, best {1e6 * default['best_s']:.0f}")

    scaling = []
    print(f"\n{'positions/protocol':>18} {'us/step':>9} {'x 10k':>7} {'search us':>10}")
    for size in args.sizes:
        model = world(size)
        timing = time_steps(model, max(200, args.steps // 4))
        search = time_liquidation_search(model)
        scaling.append({"positions": size, **timing, "liquidation_search_s": search})
    reference = next((s["median_s"] for s in scaling if s["positions"] == 10_000), None)
    for row in scaling:
        ratio = row["median_s"] / reference if reference else float("nan")
        row["cost_vs_10k"] = ratio
        print(
            f"{row['positions']:>18,} {1e6 * row['median_s']:>9.0f} {ratio:>7.2f} "
            f"{1e6 * row['liquidation_search_s']:>10.1f}"
        )

    result = {
        "benchmark": "world_throughput",
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "default_world": {"steps_per_second": steps_per_second, **default},
        "scaling": scaling,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
