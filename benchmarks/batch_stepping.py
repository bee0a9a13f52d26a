"""World steps per second of ``B`` worlds stepped as one batch against each stepped alone.

Stage 3 of the vector engine (docs/architecture.md, "Vector environments"): the worlds of
a batch share their position stacks and run the users phase of all of them as one
program per stacked type. This times the world steps only (no observations, rewards or
resets, which ``env_throughput.py`` covers), on one core, in one process:

* **alone**: ``B`` worlds, each with its own stacks, each ``MarketModel.step()`` in turn
  (what the vector env did before stage 3, and what a scalar run does);
* **batch**: the same ``B`` worlds (same seeds, same levers every step) with one shared
  ``StackRegistry``, stepped as ``WorldBatch.step`` steps them (``step_together``:
  ``begin_step`` of each, the users phase of all, ``finish_step`` of each).

Each round builds both and steps them over ``--steps`` steps from the start of an
episode (the step cost grows along it), alone first, then the batch; the verdict is the
median of the rounds' paired ratios. Every round checks that both end with every
protocol's equity and every world's time series equal bit for bit. Random levers as in
``env_throughput.py`` (uniform in [-1, 1], ``lend`` and ``borrow`` made >= 0). Prints a
table and writes JSON.

    python benchmarks/batch_stepping.py [--scenario baseline] [--batch-sizes 16 64]
        [--steps 168] [--rounds 3] [--out benchmarks/results/batch_stepping.json]
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
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from liqnet.core.levers import LEVER_NAMES  # noqa: E402
from liqnet.core.schema import Scenario  # noqa: E402
from liqnet.market.model import MarketModel, step_together  # noqa: E402
from liqnet.protocols.position_stack import StackRegistry  # noqa: E402
from liqnet.scenarios import load  # noqa: E402

_NON_NEGATIVE = [LEVER_NAMES.index("lend"), LEVER_NAMES.index("borrow")]


def random_levers(num_worlds: int, n_agents: int, steps: int, seed: int) -> np.ndarray:
    """``(steps, B, n_agents, 6)`` levers uniform in [-1, 1], lend/borrow made >= 0."""
    levers = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, num_worlds, n_agents, 6))
    levers[..., _NON_NEGATIVE] = np.abs(levers[..., _NON_NEGATIVE])
    return levers


def run_worlds(
    scenario: Scenario, levers: np.ndarray, seed: int, batched: bool
) -> tuple[float, list[MarketModel]]:
    """Seconds to step ``B`` worlds seeded ``seed + b`` through ``levers``, and the worlds."""
    registry = StackRegistry() if batched else None
    num_worlds = levers.shape[1]
    models = [
        MarketModel(scenario, seed=seed + b, position_stacks=registry) for b in range(num_worlds)
    ]
    agents = list(models[0].protocols)
    start = time.perf_counter()
    for step_levers in levers:
        for model, row in zip(models, step_levers, strict=True):
            model.pending_levers.update(dict(zip(agents, row, strict=True)))
        if batched:
            step_together(models)
        else:
            for model in models:
                model.step()
    return time.perf_counter() - start, models


def same_worlds(alone: list[MarketModel], batch: list[MarketModel]) -> bool:
    """Every protocol's equity and every world's time series equal bit for bit."""
    for a, b in zip(alone, batch, strict=True):
        if [p.equity() for p in a.protocols.values()] != [p.equity() for p in b.protocols.values()]:
            return False
        if not a.timeseries().equals(b.timeseries()):
            return False
    return True


def measure(scenario: Scenario, num_worlds: int, steps: int, rounds: int) -> dict[str, Any]:
    """Paired rounds of both ways at ``B = num_worlds``; per world-step costs and ratios."""
    levers = random_levers(num_worlds, len(scenario.protocols), steps, seed=num_worlds)
    alone_s, batch_s, equal = [], [], True
    for _ in range(rounds):
        seconds, alone = run_worlds(scenario, levers, seed=100, batched=False)
        alone_s.append(seconds)
        seconds, batch = run_worlds(scenario, levers, seed=100, batched=True)
        batch_s.append(seconds)
        equal = equal and same_worlds(alone, batch)
    ratios = [a / b for a, b in zip(alone_s, batch_s, strict=True)]
    world_steps = num_worlds * steps
    return {
        "num_worlds": num_worlds,
        "steps": steps,
        "alone_us_per_world_step": [s / world_steps * 1e6 for s in alone_s],
        "batch_us_per_world_step": [s / world_steps * 1e6 for s in batch_s],
        "paired_speedups": ratios,
        "median_speedup": statistics.median(ratios),
        "bit_identical": equal,
    }


def main() -> None:
    """Run both ways at each batch size; print the table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=168, help="steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/batch_stepping.json")
    args = parser.parse_args()
    scenario = load(args.scenario)
    results = [measure(scenario, b, args.steps, args.rounds) for b in args.batch_sizes]
    print(f"{args.scenario}: B worlds stepped alone vs as one batch, one core, {args.steps} steps")
    print(
        f"{'B':>5} {'alone us/world-step':>20} {'batch us/world-step':>20} {'speed-up':>9}  equal"
    )
    for row in results:
        alone = statistics.median(row["alone_us_per_world_step"])
        batch = statistics.median(row["batch_us_per_world_step"])
        print(
            f"{row['num_worlds']:>5} {alone:>20,.0f} {batch:>20,.0f} "
            f"{row['median_speedup']:>8.2f}x  {'yes' if row['bit_identical'] else 'NO'}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "scenario": args.scenario,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    if not all(row["bit_identical"] for row in results):
        raise SystemExit("the batch did not reproduce the worlds stepped alone")


if __name__ == "__main__":
    main()
