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
import cProfile  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from liqnet.market.env import LiquidityEnv  # noqa: E402
from liqnet.market.model import MarketModel  # noqa: E402
from liqnet.market.vector_env import VectorLiquidityEnv  # noqa: E402
from liqnet.protocols.base import LEVER_NAMES  # noqa: E402
from liqnet.scenarios.envs import make_env, make_vec_env  # noqa: E402

TARGET_STEPS_PER_SECOND = 2_500.0
VECTOR_BAR_RATIO, VECTOR_BAR_BATCH = 5.0, 64
"""The issue's bar: vector world-steps/s >= 5x MPE simple_spread steps/s at B = 64."""
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


class VectorLoop:
    """Steps a vector env with random actions; autoreset steps are timed apart."""

    def __init__(self, vec: VectorLiquidityEnv, seed: int) -> None:
        self.vec, self.rng = vec, np.random.default_rng(seed)
        start = time.perf_counter()
        vec.reset(seed=seed)
        self.reset_s_per_world = (time.perf_counter() - start) / vec.num_envs
        self.world_steps = 0

    def actions(self) -> np.ndarray:
        """``(B, n_agents, 6)`` uniform in [-1, 1]; lend/borrow levers made >= 0."""
        actions = self.rng.uniform(-1.0, 1.0, self.vec.action_space.shape).astype(np.float32)
        actions[:, :, _NON_NEGATIVE] = np.abs(actions[:, :, _NON_NEGATIVE])
        return actions

    def run(self, steps: int) -> tuple[float, int, float, int]:
        """``steps`` vector steps: (seconds, world-steps) of steps without an ended world,
        then (seconds, world-steps) of steps in which some world ended and was reset."""
        vec = self.vec
        plain_s = reset_s = 0.0
        plain_n = reset_n = 0
        for _ in range(steps):
            actions = self.actions()  # not timed: the learner's job
            running = int(vec.alive.any(axis=1).sum())
            start = time.perf_counter()
            infos = vec.step(actions)[4]
            spent = time.perf_counter() - start
            if infos["_final_obs"].any():
                reset_s, reset_n = reset_s + spent, reset_n + running
            else:
                plain_s, plain_n = plain_s + spent, plain_n + running
        self.world_steps += plain_n + reset_n
        return plain_s, plain_n, reset_s, reset_n


class MpeLoop:
    """PettingZoo MPE ``simple_spread_v3`` (default settings) with random actions."""

    def __init__(self, seed: int) -> None:
        from mpe2 import simple_spread_v3  # optional: the test extra installs it

        self.env = simple_spread_v3.parallel_env()
        self.seed, self.episodes = seed, 0
        self.env.reset(seed=seed)
        for i, agent in enumerate(self.env.possible_agents):
            self.env.action_space(agent).seed(seed + i)
        self.num_agents = len(self.env.possible_agents)

    def run(self, steps: int) -> float:
        """Seconds in ``env.step`` plus the resets at episode ends, over ``steps`` steps."""
        env, spent = self.env, 0.0
        for _ in range(steps):
            actions = {a: env.action_space(a).sample() for a in env.agents}  # not timed
            start = time.perf_counter()
            env.step(actions)
            if not env.agents:
                self.episodes += 1
                env.reset(seed=self.seed + self.episodes)
            spent += time.perf_counter() - start
        return spent


def vector_section(
    scenario: str, batch_sizes: list[int], min_world_steps: int, blocks: int, seed: int
) -> dict[str, Any]:
    """Vector env world-steps/s per ``B`` against MPE steps/s, alternating blocks.

    Each ``B`` runs whole episodes from its first reset (the step cost grows along an
    episode, so every ``B`` must cover the same phases): the fewest episodes giving at
    least ``min_world_steps`` world-steps. Rates are totals over the blocks (blocks are
    different phases, so a median over them would not be the episode's rate).
    """
    mpe = MpeLoop(seed)
    mpe.run(200)  # warm-up
    warm = VectorLoop(make_vec_env(scenario, num_envs=1, seed=seed), seed)
    warm.run(30)  # warm-up: imports, caches (a separate env: phases stay aligned below)
    rows: list[dict[str, Any]] = []
    mpe_s = 0.0
    mpe_n = 0
    horizon = warm.vec.horizon
    for size in batch_sizes:
        vec = make_vec_env(scenario, num_envs=size, seed=seed)
        loop = VectorLoop(vec, seed)
        episodes = max(1, -(-min_world_steps // (size * horizon)))
        bounds = np.linspace(0, episodes * horizon, blocks + 1).round().astype(int)
        plain_s = reset_s = 0.0
        plain_n = reset_n = 0
        block_mpe_s = 0.0
        block_mpe_n = 0
        for steps in np.diff(bounds).tolist():
            if steps == 0:
                continue
            a, b, c, d = loop.run(steps)
            plain_s, plain_n, reset_s, reset_n = plain_s + a, plain_n + b, reset_s + c, reset_n + d
            mpe_steps = min(max(200, steps * size), 1000)
            block_mpe_s += mpe.run(mpe_steps)
            block_mpe_n += mpe_steps
        mpe_s, mpe_n = mpe_s + block_mpe_s, mpe_n + block_mpe_n
        total_s, total_n = plain_s + reset_s, plain_n + reset_n
        rows.append(
            {
                "num_envs": size,
                "episodes_per_world": episodes,
                "vector_steps": episodes * horizon,
                "world_steps": total_n,
                "initial_reset_s_per_world": loop.reset_s_per_world,
                "world_steps_per_second": total_n / total_s,
                "world_steps_per_second_excl_autoreset_steps": plain_n / plain_s,
                "autoreset_steps_s_per_world_step": reset_s / reset_n if reset_n else None,
                "mpe_steps": block_mpe_n,
                "mpe_steps_per_second": block_mpe_n / block_mpe_s,
                "ratio_vs_mpe": (total_n / total_s) / (block_mpe_n / block_mpe_s),
            }
        )
        vec.close()
    bar_row = next((r for r in rows if r["num_envs"] == VECTOR_BAR_BATCH), None)
    met = bool(bar_row and bar_row["ratio_vs_mpe"] >= VECTOR_BAR_RATIO)

    print(f"\nvector env ({scenario}, make_vec_env) vs MPE simple_spread_v3, one core")
    print(
        f"{'B':>5}{'episodes':>9}{'world-steps':>12}{'world-steps/s':>15}{'excl. resets':>14}"
        f"{'MPE steps/s':>13}{'ratio vs MPE':>14}"
    )
    for row in rows:
        print(
            f"{row['num_envs']:>5}{row['episodes_per_world']:>9}{row['world_steps']:>12,}"
            f"{row['world_steps_per_second']:>15,.0f}"
            f"{row['world_steps_per_second_excl_autoreset_steps']:>14,.0f}"
            f"{row['mpe_steps_per_second']:>13,.0f}{row['ratio_vs_mpe']:>13.2f}x"
        )
    print(
        f"whole {horizon}-step episodes per world, autoresets included ('excl. resets': the "
        "steps in which no world ended)"
    )
    mpe_rate = mpe_n / mpe_s
    print(f"MPE simple_spread_v3 (3 agents, discrete, 25-step episodes): {mpe_rate:,.0f} steps/s")
    if bar_row is None:
        print(f"bar (>= {VECTOR_BAR_RATIO:.0f}x MPE at B = {VECTOR_BAR_BATCH}): not measured")
    else:
        verdict = "met" if met else "NOT met"
        print(
            f"bar (>= {VECTOR_BAR_RATIO:.0f}x MPE at B = {VECTOR_BAR_BATCH}, one core): "
            f"{verdict} ({bar_row['ratio_vs_mpe']:.2f}x)"
        )
    return {
        "reference": "mpe2 simple_spread_v3.parallel_env() defaults (N=3, local_ratio=0.5, "
        "max_cycles=25, continuous_actions=False), random actions, resets timed",
        "blocks_per_batch_size": blocks,
        "min_world_steps_per_batch_size": min_world_steps,
        "horizon": horizon,
        "mpe_steps_per_second": mpe_rate,
        "rows": rows,
        "bar": {"ratio": VECTOR_BAR_RATIO, "num_envs": VECTOR_BAR_BATCH, "met": met},
    }


def profile_vector(
    scenario: str, size: int, steps: int, seed: int, top: int = 12
) -> dict[str, Any]:
    """cProfile of ``steps`` vector steps at ``B = size``: top functions by own time and
    the share of the step spent inside ``MarketModel.step``."""
    vec = make_vec_env(scenario, num_envs=size, seed=seed)
    loop = VectorLoop(vec, seed)  # no warm-up: the steps cover an episode from its start
    profiler = cProfile.Profile()
    for _ in range(steps):
        actions = loop.actions()
        profiler.enable()
        vec.step(actions)
        profiler.disable()
    vec.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())

    def name(key: tuple[str, int, str]) -> str:
        path, line, func = key
        parts = Path(path).parts
        short = "/".join(parts[-2:]) if len(parts) > 1 else path
        return f"{short}:{line}({func})" if line else func

    def cumulative(path_end: str, func: str) -> float:
        return sum(
            row[3] for key, row in stats.items() if key[0].endswith(path_end) and key[2] == func
        )

    model_step = cumulative("market/model.py", "step")
    read = cumulative("market/world_batch.py", "_read_worlds")
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    top_rows = [
        {"function": name(key), "calls": row[1], "tottime_s": row[2], "share": row[2] / total}
        for key, row in ranked
    ]
    print(
        f"\ncProfile, vector step at B = {size}, {steps} steps from a reset "
        f"({steps * size:,} world-steps)"
    )
    print(f"{'share':>7}{'calls':>10}  function (own time)")
    for row in top_rows:
        print(f"{row['share']:>7.1%}{row['calls']:>10,}  {row['function']}")
    print(f"top {top} together: {sum(r['share'] for r in top_rows):.1%} of the profiled time")
    rest = total - model_step
    print(
        f"inside MarketModel.step: {model_step / total:.1%}; the rest: {rest / total:.1%} "
        f"(of which WorldBatch._read_worlds {read / total:.1%}); profiled total {total:.2f} s"
    )
    return {
        "num_envs": size,
        "steps": steps,
        "profiled_s": total,
        "market_model_step_share": model_step / total,
        "read_worlds_share": read / total,
        "top_by_tottime": top_rows,
    }


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
