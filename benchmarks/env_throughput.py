"""Environment steps per second through the PettingZoo API, against bare world steps.

Runs the default world (``baseline``: two lending pools and a perp exchange, 10,000
positions each) on one core. Each env step gets fresh random actions sampled from the
action spaces, with the ``lend`` and ``borrow`` levers kept in the upper half of their
range, so every protocol offers much of its idle cash and asks for much of any unmet
need (negotiation, on by default, gets orders every step). Blocks of env steps
alternate with blocks of bare ``MarketModel.set_levers`` + ``step`` replaying the same
trajectory (same world seeds and actions; alternating so load from other processes hits
both alike); the median over blocks is reported. Each env block and the bare block after
it cover the same steps, so the env overhead is the median of their paired differences.
Episodes reset at the horizon (or once every protocol defaulted); reset time is reported
separately and amortised.

Vector section (after the scalar one): the vector env (``make_vec_env``, ``B`` worlds
stepped as one, Gymnasium ``SAME_STEP`` autoreset) at ``B`` = 1, 16, 64, 256, in
world-steps per second (summed over the worlds), with the same kind of random actions
(uniform in [-1, 1], ``lend``/``borrow`` made >= 0; sampling not timed). The step cost
grows along an episode under these actions, so each ``B`` runs whole episodes from its
first reset (the fewest giving ``--world-steps``: 24 at ``B`` = 1, one at 64 and 256),
autoresets included. Its reference is PettingZoo's MPE
``simple_spread_v3.parallel_env()`` with default settings (3 agents, discrete actions,
25-step episodes) stepped with random actions in the same process, in blocks
alternating with the vector blocks; MPE time includes its resets. The bar of the
vector-engine issue: >= 5x MPE's steps/s at ``B`` = 64 on one core. A cProfile of one
episode of vector steps at ``B`` = 64 shows where the time goes.

    python benchmarks/env_throughput.py [--steps 3000] [--out benchmarks/results/...]
        [--batch-sizes 1 16 64 256] [--world-steps 4000] [--vector-only]
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
from vector_section import VECTOR_BAR_BATCH, profile_vector, vector_section  # noqa: E402

from liqnet.market.env import LiquidityEnv  # noqa: E402
from liqnet.market.model import MarketModel  # noqa: E402
from liqnet.protocols.base import LEVER_NAMES  # noqa: E402
from liqnet.scenarios.envs import make_env  # noqa: E402

TARGET_STEPS_PER_SECOND = 2_500.0
_NON_NEGATIVE = [LEVER_NAMES.index("lend"), LEVER_NAMES.index("borrow")]


def sample_actions(env: LiquidityEnv, agents: list[str]) -> dict[str, np.ndarray]:
    """One random action per agent from its space; lend/borrow levers made >= 0."""
    actions = {}
    for agent in agents:
        action = env.action_space(agent).sample()
        action[_NON_NEGATIVE] = np.abs(action[_NON_NEGATIVE])
        actions[agent] = action
    return actions


class EnvLoop:
    """Steps the env with random actions; resets (timed apart) at the horizon."""

    def __init__(self, env: LiquidityEnv, seed: int) -> None:
        self.env, self.seed = env, seed
        for i, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(seed + i)
        self.reset_s: list[float] = []
        self.steps = self.steps_with_need = 0  # need > 0: borrow orders reach the auction
        self._reset()

    def _reset(self) -> None:
        start = time.perf_counter()
        self.env.reset(seed=self.seed + len(self.reset_s))
        self.reset_s.append(time.perf_counter() - start)

    def run(self, steps: int) -> float:
        """Seconds spent inside ``env.step`` over ``steps`` steps."""
        env, spent = self.env, 0.0
        for _ in range(steps):
            actions = sample_actions(env, env.agents)  # not timed: the learner's job
            start = time.perf_counter()
            infos = env.step(actions)[4]
            spent += time.perf_counter() - start
            self.steps += 1
            self.steps_with_need += any(i["liquidity_need"] > 0 for i in infos.values())
            if not env.agents:
                self._reset()
        return spent


class BareLoop:
    """The same worlds and actions driven through ``MarketModel`` directly.

    Mirrors :class:`EnvLoop` exactly (world seeds, action streams, levers only for live
    protocols, a new world at the horizon or once every protocol defaulted), so both
    follow one trajectory and the time difference is the environment's own work.
    """

    def __init__(self, env: LiquidityEnv, seed: int) -> None:
        self.env, self.seed, self.episodes = env, seed, 0
        for i, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(seed + i)
        self._reset()

    def _reset(self) -> None:
        self.model = MarketModel(self.env.scenario, seed=self.seed + self.episodes)
        self.episodes += 1

    def run(self, steps: int) -> float:
        """Seconds spent in ``set_levers`` + ``step`` over ``steps`` steps."""
        spent, protocols = 0.0, self.model.protocols
        for _ in range(steps):
            live = [a for a in self.env.possible_agents if not protocols[a].defaulted]
            actions = sample_actions(self.env, live)
            model = self.model
            start = time.perf_counter()
            model.set_levers(actions)
            model.step()
            spent += time.perf_counter() - start
            if model.step_index >= self.env.horizon or not model.live_protocols():
                self._reset()
                protocols = self.model.protocols
        return spent


def summarise(per_step: list[float]) -> dict[str, float]:
    """Median and best seconds per step, and the median rate."""
    median = statistics.median(per_step)
    return {"steps_per_second": 1.0 / median, "median_s": median, "best_s": min(per_step)}


def scalar_section(args: argparse.Namespace) -> dict[str, Any]:
    """PettingZoo env steps against bare ``MarketModel`` steps; prints the table."""
    env = make_env(args.scenario)
    env_loop, bare_loop = EnvLoop(env, args.seed), BareLoop(make_env(args.scenario), args.seed)
    env_loop.run(30)  # warm-up: caches, first index rebuilds
    bare_loop.run(30)
    per_block = max(1, args.steps // args.blocks)
    env_samples, bare_samples = [], []
    for _ in range(args.blocks):
        env_samples.append(env_loop.run(per_block) / per_block)
        bare_samples.append(bare_loop.run(per_block) / per_block)
    env_stats, bare_stats = summarise(env_samples), summarise(bare_samples)
    reset_s = statistics.median(env_loop.reset_s)
    # Resets after the first, spread over every step taken (episodes may end early).
    amortised = env_stats["median_s"] + sum(env_loop.reset_s[1:]) / env_loop.steps
    overhead = statistics.median(e - b for e, b in zip(env_samples, bare_samples, strict=True))

    positions = [p.params.get("positions") for p in env.scenario.protocols]
    print(f"{args.scenario}: {len(positions)} protocols x {positions} positions, one core")
    print(f"{'':<34}{'steps/s':>10}{'us/step':>10}{'best us':>10}")
    for label, stats in (
        ("env.step (PettingZoo)", env_stats),
        ("MarketModel.step (bare)", bare_stats),
    ):
        print(
            f"{label:<34}{stats['steps_per_second']:>10,.0f}"
            f"{1e6 * stats['median_s']:>10.0f}{1e6 * stats['best_s']:>10.0f}"
        )
    print(f"{'env.step incl. resets':<34}{1 / amortised:>10,.0f}")
    print(f"env overhead: {1e6 * overhead:.0f} us/step ({overhead / bare_stats['median_s']:.0%})")
    print(f"reset (new world): {1e3 * reset_s:.1f} ms median")
    need_share = env_loop.steps_with_need / env_loop.steps
    print(f"steps where some protocol had unmet liquidity need (borrow orders): {need_share:.1%}")
    met = env_stats["steps_per_second"] >= TARGET_STEPS_PER_SECOND
    print(f"target {TARGET_STEPS_PER_SECOND:,.0f} env steps/s: {'met' if met else 'NOT met'}")

    return {
        "scenario": args.scenario,
        "positions_per_protocol": positions,
        "horizon": env.horizon,
        "negotiation": env.scenario.negotiation.model_dump(),
        "share_of_steps_with_liquidity_need": need_share,
        "steps": per_block * args.blocks,
        "blocks": args.blocks,
        "env_step": env_stats,
        "bare_model_step": bare_stats,
        "env_overhead_s": overhead,
        "reset_s": reset_s,
        "env_steps_per_second_incl_reset": 1.0 / amortised,
        "target_steps_per_second": TARGET_STEPS_PER_SECOND,
        "target_met": met,
    }


def main() -> None:
    """Run the benchmark, print the tables, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="baseline")
    parser.add_argument("--steps", type=int, default=3000, help="env steps (and bare steps)")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument(
        "--world-steps",
        type=int,
        default=4000,
        help="least vector world-steps per B (whole episodes: B = 256 takes one, 43,008)",
    )
    parser.add_argument("--vector-blocks", type=int, default=8)
    parser.add_argument(
        "--profile-steps", type=int, default=168, help="profiled steps from a reset; 0: none"
    )
    parser.add_argument(
        "--vector-only",
        action="store_true",
        help="vector section only, keeping the scalar figures of an existing --out file",
    )
    parser.add_argument("--out", default="benchmarks/results/env_throughput.json")
    args = parser.parse_args()

    out = Path(args.out)
    result: dict[str, Any] = {
        "benchmark": "env_throughput",
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
        },
    }
    if args.vector_only:
        previous = json.loads(out.read_text()) if out.exists() else {}
        result = {**previous, **result}
    else:
        result.update(scalar_section(args))
    result["vector"] = vector_section(
        args.scenario, args.batch_sizes, args.world_steps, args.vector_blocks, args.seed
    )
    if args.profile_steps:
        result["vector"]["profile"] = profile_vector(
            args.scenario, VECTOR_BAR_BATCH, args.profile_steps, args.seed
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
