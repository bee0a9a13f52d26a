"""The vector section of ``env_throughput.py``: the vector env against MPE simple_spread.

See ``env_throughput.py``'s docstring for what is measured; this module holds the loops,
the table and the profile so that script stays one idea per module.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import numpy as np

from liqnet.market.vector_env import VectorLiquidityEnv
from liqnet.protocols.base import LEVER_NAMES
from liqnet.scenarios.envs import make_vec_env

VECTOR_BAR_RATIO, VECTOR_BAR_BATCH = 5.0, 64
"""The issue's bar: vector world-steps/s >= 5x MPE simple_spread steps/s at B = 64."""
_NON_NEGATIVE = [LEVER_NAMES.index("lend"), LEVER_NAMES.index("borrow")]


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
    the share of the step spent stepping the worlds (``step_together``: each world's
    phases, the batch's users phase and its cascade rounds)."""
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

    # The world step of a batch, and in it the users phase and the cascade of all worlds.
    users = cumulative("market/users.py", "run_together")
    cascade = cumulative("market/cascade.py", "run_cascades")
    model_step = cumulative("market/model.py", "step_together")
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
        f"inside the world step: {model_step / total:.1%} (of which the users phase of all "
        f"worlds {users / total:.1%}, their cascade {cascade / total:.1%}); the rest: "
        f"{rest / total:.1%} (of which "
        f"WorldBatch._read_worlds {read / total:.1%}); profiled total {total:.2f} s"
    )
    return {
        "num_envs": size,
        "steps": steps,
        "profiled_s": total,
        "market_model_step_share": model_step / total,
        "users_phase_share": users / total,
        "cascade_share": cascade / total,
        "read_worlds_share": read / total,
        "top_by_tottime": top_rows,
    }
