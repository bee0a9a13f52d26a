"""Where a world step's time goes, by phase and protocol type, and what one more protocol costs.

The protocols-scaling bar of ``world_throughput.py`` (a 36-protocol step at most 4x a
3-protocol one) allows each protocol added of a type already in the world
``3 x (3-protocol step) / 33`` per step, about 80 us on this kind of machine (the table's
last line prints it). This benchmark says which phases spend the marginal protocol's
time, so that stacking work (docs/architecture.md, "Stacked protocols") can start where
it pays.

It steps baseline (3 protocols) and baseline's specs repeated ``--copies`` times, with
timers around the world's own seams: every checked protocol call (``MarketWorld.call``,
labelled by its phase and the protocol's type) and the market phases of
``MarketModel.step`` (negotiation, cascade, settlement, credit sync, data collection).
Time is *exclusive*: a protocol call inside the cascade counts as that call, not as
cascade. "rest of step" is the step's time outside every timed seam (levers, exogenous
move, arbitrage, oracles, conservation checks).

The timers cost a few percent of a step; the untimed step cost is printed beside the
timed one. Both worlds run in turn for ``--rounds`` rounds and every figure is the
median over rounds (a shared machine's load comes and goes). Beside the times, each
phase's *calls* per step (Python functions and C functions called from Python, counted
by a profile hook in one more run of each world, attributed to the innermost seam as
time is): a figure the load does not move, for telling a small saving from noise.
Prints a table and writes JSON.

    python benchmarks/phase_costs.py [--copies 12] [--steps 200] [--rounds 3] [--out ...]
"""

from __future__ import annotations

import os

# One core: pin BLAS/OpenMP threads before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world_throughput import (  # noqa: E402
    PROTOCOLS_BAR,
    WARMUP_STEPS,
    protocols_world,
    time_steps,
)

import liqnet.market.model as model_module  # noqa: E402
import liqnet.market.users as users_module  # noqa: E402
from liqnet.market import MarketModel  # noqa: E402

MARKET_PHASES = ("negotiate", "run_cascades", "settle", "sync_credit")
"""Functions ``MarketModel.step`` calls by module-level name, timed as phases."""
REST = "rest of step"
"""Label of the step time outside every timed seam."""


class PhaseTimer:
    """Exclusive wall time per label, from timers nested on a stack."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self._stack: list[list[Any]] = []  # [label, start, time of nested timers]

    def timed(self, label: str | Callable[..., str], function: Callable[..., Any]) -> Any:
        """``function`` wrapped so its calls count under ``label`` (or ``label(*args)``)."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = label(*args) if callable(label) else label
            frame = [name, time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - frame[1]
                self._stack.pop()
                self.seconds[name] += elapsed - frame[2]
                if self._stack:
                    self._stack[-1][2] += elapsed

        return wrapper


class CallCounter:
    """Calls per label (Python and C), to the innermost wrapped seam; ``timed`` as
    :class:`PhaseTimer`'s, so the same seams are wrapped. Its own wrappers and labels
    are not counted."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self._labels: list[str] = []
        self._own: set[Any] = set()  # code objects of the wrappers and label functions

    def timed(self, label: str | Callable[..., str], function: Callable[..., Any]) -> Any:
        """``function`` wrapped so the calls made inside it count under its label."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._labels.append(label(*args) if callable(label) else label)
            try:
                return function(*args, **kwargs)
            finally:
                self._labels.pop()

        self._own.add(wrapper.__code__)
        if callable(label):
            self._own.add(label.__code__)  # type: ignore[attr-defined]
        return wrapper

    def profile(self, frame: Any, event: str, _arg: Any) -> None:
        """The ``sys.setprofile`` hook: count a call under the current label."""
        if event in ("call", "c_call") and frame.f_code not in self._own:
            self.calls[self._labels[-1] if self._labels else REST] += 1


@contextlib.contextmanager
def _instrumented(
    build: Callable[[], MarketModel], seams: PhaseTimer | CallCounter
) -> Iterator[Callable[[], None]]:
    """A world from ``build``, warmed up as :func:`time_steps` warms up (so the same
    steps are measured), its seams (market phases, checked calls, collection) wrapped
    with ``seams``; yields the wrapped step and puts the market phases back after."""
    model = build()
    for _ in range(WARMUP_STEPS):
        model.step()
    saved = {name: getattr(model_module, name) for name in MARKET_PHASES}
    together = users_module.call_together
    try:
        for name, function in saved.items():
            setattr(model_module, name, seams.timed(name, function))
        model.world.call = seams.timed(  # type: ignore[method-assign]
            lambda protocol, phase, *_, **__: f"{type(protocol).__name__}.{phase}",
            model.world.call,
        )
        # A stacked type's phase is one call for all its protocols: labelled as theirs.
        users_module.call_together = seams.timed(
            lambda worlds, protocols, phase, *_: f"{type(protocols[0]).__name__}.{phase}",
            together,
        )
        model.collect = seams.timed("collect", model.collect)  # type: ignore[method-assign]
        yield seams.timed(REST, model.step)
    finally:
        for name, function in saved.items():
            setattr(model_module, name, function)
        users_module.call_together = together


def per_step_costs(build: Callable[[], MarketModel], steps: int) -> dict:
    """Seconds per step by phase (exclusive), the timed total and the untimed total.

    Two worlds from ``build`` (one seed, so one trajectory) run the same steps, one
    untimed and one timed: a cascade in some steps and not in others would otherwise
    pass for timer cost.
    """
    untimed = time_steps(build(), steps, blocks=1)["median_s"]
    timer = PhaseTimer()
    with _instrumented(build, timer) as step:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        timed = (time.perf_counter() - start) / steps
    phases = {label: seconds / steps for label, seconds in timer.seconds.most_common()}
    return {"untimed_s": untimed, "timed_s": timed, "phases_s": phases}


def per_step_calls(build: Callable[[], MarketModel], steps: int) -> dict[str, float]:
    """Calls per step by phase (:class:`CallCounter`), over the steps that are timed."""
    counter = CallCounter()
    with _instrumented(build, counter) as step:
        sys.setprofile(counter.profile)
        try:
            for _ in range(steps):
                step()
        finally:
            sys.setprofile(None)
    return {label: n / steps for label, n in counter.calls.most_common()}


def median_costs(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key medians of :func:`per_step_costs` results (a phase missing counts 0)."""
    labels = {label for r in rounds for label in r["phases_s"]}
    phases = {
        label: statistics.median(r["phases_s"].get(label, 0.0) for r in rounds) for label in labels
    }
    return {
        "untimed_s": statistics.median(r["untimed_s"] for r in rounds),
        "timed_s": statistics.median(r["timed_s"] for r in rounds),
        "phases_s": phases,
    }


def main() -> None:
    """Run both worlds, print the phase table and the marginal cost per protocol."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=12, help="baseline's 3 protocols repeated")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of both worlds in turn (medians kept)"
    )
    parser.add_argument("--out", default="benchmarks/results/phase_costs.json")
    args = parser.parse_args()

    # The two worlds in turn, round after round, so load from other processes hits both.
    few_rounds, many_rounds = [], []
    for _ in range(args.rounds):
        few_rounds.append(per_step_costs(lambda: protocols_world(1), args.steps))
        many_rounds.append(per_step_costs(lambda: protocols_world(args.copies), args.steps))
    few, many = median_costs(few_rounds), median_costs(many_rounds)
    # Counts do not depend on load: one run of each world.
    few["calls"] = per_step_calls(lambda: protocols_world(1), args.steps)
    many["calls"] = per_step_calls(lambda: protocols_world(args.copies), args.steps)
    added = 3 * (args.copies - 1)
    labels = sorted(
        set(few["phases_s"]) | set(many["phases_s"]) | set(few["calls"]) | set(many["calls"]),
        key=lambda label: -many["phases_s"].get(label, 0.0),
    )
    rows = []
    # "us/added": per protocol added, all types together (what the bar's budget is in);
    # "per own type": a protocol call per protocol added of that type (what its stack
    # would save), blank for the market's phases; "calls/added": calls per step per
    # protocol added.
    print(
        f"{'phase':<34} {'3 prot. us':>10} {f'{3 * args.copies} prot. us':>11} "
        f"{'us/added':>9} {'per own type':>13} {'calls/added':>12}"
    )
    for label in labels:
        a, b = few["phases_s"].get(label, 0.0), many["phases_s"].get(label, 0.0)
        marginal = (b - a) / added
        # Each baseline type is one of the 3 specs: copies - 1 of it are added.
        own = (b - a) / (args.copies - 1) if "." in label else None
        calls = (many["calls"].get(label, 0.0) - few["calls"].get(label, 0.0)) / added
        rows.append(
            {
                "phase": label,
                "few_s": a,
                "many_s": b,
                "marginal_s": marginal,
                "own_type_s": own,
                "marginal_calls": calls,
            }
        )
        own_text = f"{1e6 * own:>13.1f}" if own is not None else " " * 13
        print(
            f"{label:<34} {1e6 * a:>10.0f} {1e6 * b:>11.0f} {1e6 * marginal:>9.1f} {own_text} "
            f"{calls:>12.1f}"
        )
    for kind in ("timed", "untimed"):
        a, b = few[f"{kind}_s"], many[f"{kind}_s"]
        marginal = (b - a) / added
        calls_text = ""
        if kind == "timed":
            total_calls = sum(many["calls"].values()) - sum(few["calls"].values())
            calls_text = f"{'':>13} {total_calls / added:>12.1f}"
        print(
            f"{f'step ({kind})':<34} {1e6 * a:>10.0f} {1e6 * b:>11.0f} {1e6 * marginal:>9.1f} "
            f"{calls_text}"
        )
    # T_N <= bar x T_3 with T_N = T_3 + (N - 3) c: each added protocol may cost at most
    # c = (bar - 1) T_3 / (N - 3). Both from the timed runs (one instrument).
    marginal_total = (many["timed_s"] - few["timed_s"]) / added
    budget = (PROTOCOLS_BAR - 1.0) * few["timed_s"] / added
    print(
        f"\nbudget per added protocol for the {PROTOCOLS_BAR:.0f}x bar: {1e6 * budget:.1f} us; "
        f"spent: {1e6 * marginal_total:.1f} us ({marginal_total / budget:.1f}x the budget); "
        f"{3 * args.copies} / 3 step cost {many['timed_s'] / few['timed_s']:.2f}x"
    )
    result = {
        "benchmark": "phase_costs",
        "copies": args.copies,
        "steps": args.steps,
        "rounds": args.rounds,
        "few": few,
        "many": many,
        "phases": rows,
        "marginal_per_protocol_s": marginal_total,
        "budget_per_protocol_s": budget,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
