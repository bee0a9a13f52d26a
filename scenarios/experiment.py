"""``liqnet experiment convergence``: does model convergence amplify shocks?

Reads top to bottom, as the experiment runs:

1. **Crash distribution.** Training variants of the base world: an ``asset`` crash of
   each size in ``train_shocks`` at each step in ``train_shock_steps`` (domain
   randomisation over size and timing; each training env runs one variant). The
   evaluation variants are held out: other sizes (``eval_shocks``), another step
   (``eval_shock_step``) and seeds from ``eval_seed_base`` up, none used in training.
2. **Population with controlled similarity.** For each reward (``"equity"``: each
   protocol its own equity change, self-interested; ``"team"``: the mean over protocols),
   MAPPO policies that differ from the base member in **one factor at a time**: the
   seed, the architecture (hidden sizes) or the training data (one crash size only).
   Each member is a Ray task (a local Ray by default, a cluster with ``address``).
3. **Similarity levels.** Each protocol gets one member: ``identical`` (all run the base
   member: one model), ``seeds`` / ``architectures`` / ``data`` (a different member each,
   differing in that factor only); controls ``static`` (standing levers), ``bayesian``
   (the rule-based Bayesian risk manager) and ``untrained`` (the base member's starting
   weights: what training itself added). The ``identical`` level against the controls is
   also the generalisation test: one policy trained on the crash distribution, met with
   held-out crashes and seeds.
   Each level's similarity is measured, not assumed: behaviour (mean response
   correlation on a common probe set of held-out crash states), representations (mean
   linear CKA of the first hidden layer) and structure (share of pairs running the same
   model).
4. **Matched shocks.** Every level meets every evaluation crash on the same seeds (so
   exogenous paths are identical across levels); losses, liquidations, drawdown,
   DebtRank and the mechanism trace per run (``scenarios.experiment_runs``).
5. **Report** (``analysis.experiment``): per level and shock, means with bootstrap CIs,
   the fitted effect of behavioural similarity on losses with its CI, and the trace.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from liqnet.core.io import atomic_write
from liqnet.scenarios.experiment_runs import (
    Member,
    evaluate_level,
    level_similarity,
    save_untrained,
    train_member,
)
from liqnet.scenarios.loader import ScenarioError, load
from liqnet.scenarios.ray_connect import ray_connection
from liqnet.scenarios.rollout import HELD_OUT_SEEDS_FROM

__all__ = ["ExperimentConfig", "Member", "levels", "population", "run_experiment"]

REWARD_MODES = ("equity", "team")


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings of the convergence experiment; each field is a ``--flag`` of the command.

    The defaults finish in minutes on 2 cores; ``scale`` multiplies the training steps
    and the evaluation seeds for a cluster run.
    """

    scenario: str = "baseline"
    """Base world the crashes hit (built-in name or TOML path); three protocols or more."""
    asset: str = "ETH"
    """Asset that crashes."""
    steps: int = 48
    """Steps per episode, in training and evaluation."""
    train_shocks: tuple[float, ...] = (-0.15, -0.30, -0.45)
    """Crash sizes (returns) of the training distribution."""
    train_shock_steps: tuple[int, ...] = (12, 30)
    """Crash steps of the training distribution (1-based)."""
    eval_shocks: tuple[float, ...] = (-0.20, -0.35, -0.50)
    """Held-out crash sizes of the evaluation."""
    eval_shock_step: int = 21
    """Held-out crash step of the evaluation."""
    eval_seeds: int = 6
    """Evaluation seeds per level and crash (times ``scale``)."""
    eval_seed_base: int = HELD_OUT_SEEDS_FROM
    """First evaluation seed (training episodes never use seeds from here on)."""
    train_steps: int = 6_144
    """Environment steps of training per member (times ``scale``)."""
    positions: int = 300
    """Positions per protocol (the book size; small keeps the default run short)."""
    rewards: tuple[str, ...] = REWARD_MODES
    """Training rewards: "equity" (self-interested) and/or "team" (mean equity)."""
    architectures: tuple[tuple[int, ...], ...] = ((64, 64), (32,), (128, 128))
    """Hidden sizes: the base member's first, then the ``architectures`` level's others."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Policy seeds: the base member's first, then the ``seeds`` level's others."""
    probes: int = 512
    """Probe states for behavioural and representational similarity."""
    bootstrap: int = 2_000
    """Bootstrap resamples of every confidence interval."""
    scale: float = 1.0
    """Multiplies ``train_steps`` and ``eval_seeds`` (e.g. 10 on a cluster)."""
    address: str | None = None
    """Ray cluster address (default: ``RAY_ADDRESS``, else a local Ray)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Dotted-key overrides applied to every variant (e.g. a pool depth)."""

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if isinstance(value, bool) or not value > 0 or not math.isfinite(value):
                raise ValueError(f"experiment: {name} must be positive, got {value!r}")

        for name in ("steps", "eval_seeds", "train_steps", "positions", "probes", "bootstrap"):
            positive(name, getattr(self, name))
        positive("scale", self.scale)
        unknown = sorted(set(self.rewards) - set(REWARD_MODES))
        if unknown or not self.rewards:
            raise ValueError(f"experiment: rewards = {unknown or '()'}; allowed {REWARD_MODES}")
        for name, sizes in (("train_shocks", self.train_shocks), ("eval_shocks", self.eval_shocks)):
            if not sizes or not all(-0.95 <= s < 0.0 for s in sizes):
                raise ValueError(f"experiment: {name} must be returns in [-0.95, 0), got {sizes}")
        steps = (*self.train_shock_steps, self.eval_shock_step)
        if not self.train_shock_steps or not all(1 <= s <= self.steps for s in steps):
            raise ValueError(f"experiment: shock steps must lie in [1, steps={self.steps}]")
        if len(self.architectures) < 2 or len(self.seeds) < 2:
            raise ValueError("experiment: architectures and seeds need at least two entries")

    @property
    def seed_list(self) -> list[int]:
        """The evaluation seeds (held out from training)."""
        count = max(2, round(self.eval_seeds * self.scale))
        return list(range(self.eval_seed_base, self.eval_seed_base + count))

    @property
    def member_steps(self) -> int:
        """Training steps per member."""
        return max(1, round(self.train_steps * self.scale))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON), as written to ``experiment.json``."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "seeds_eval": self.seed_list
        }


def _variant(cfg: ExperimentConfig, shock: float, step: int) -> dict[str, Any]:
    """Overrides of one crash variant of the base world."""
    positions = {f"protocols.{k}.params.positions": cfg.positions for k in range(_n(cfg))}
    crash = [{"step": step, "asset": cfg.asset, "return": shock}]
    return {"steps": cfg.steps, "shocks": crash, **positions, **cfg.extra}


def _n(cfg: ExperimentConfig) -> int:
    return len(load(cfg.scenario).protocols)


def population(cfg: ExperimentConfig) -> list[Member]:
    """The members to train: per reward, the base member and one-factor variations."""
    base_seed, base_arch = cfg.seeds[0], cfg.architectures[0]
    every = tuple((s, t) for s in cfg.train_shocks for t in cfg.train_shock_steps)
    members = []
    for reward in cfg.rewards:
        members.append(Member(f"{reward}-base", reward, base_seed, base_arch, every))
        members += [Member(f"{reward}-seed{s}", reward, s, base_arch, every) for s in cfg.seeds[1:]]
        members += [
            Member(f"{reward}-arch{'x'.join(map(str, a))}", reward, base_seed, a, every)
            for a in cfg.architectures[1:]
        ]
        # Training data: one crash size each (every timing), the base member sees them all.
        for size in (cfg.train_shocks[0], cfg.train_shocks[-1]):
            only = tuple((size, t) for t in cfg.train_shock_steps)
            members.append(Member(f"{reward}-data{size:+.2f}", reward, base_seed, base_arch, only))
    return members


def levels(cfg: ExperimentConfig, n_protocols: int) -> dict[str, list[str]]:
    """Similarity level -> the member each protocol runs; the controls ``static``,
    ``bayesian`` (each protocol its own online Bayesian risk manager) and ``untrained``."""
    out: dict[str, list[str]] = {
        "static": ["static"] * n_protocols,
        "bayesian": ["bayesian"] * n_protocols,
        "untrained": ["untrained"] * n_protocols,
    }
    by_reward = {r: [m for m in population(cfg) if m.reward == r] for r in cfg.rewards}
    for reward, members in by_reward.items():
        base = members[0].name

        def spread(
            kind: str, members: list[Member] = members, base: str = base, reward: str = reward
        ) -> list[str]:
            names = [base] + [m.name for m in members if m.name.startswith(f"{reward}-{kind}")]
            return [names[k % len(names)] for k in range(n_protocols)]

        out[f"{reward}/identical"] = [base] * n_protocols
        out[f"{reward}/seeds"] = spread("seed")
        out[f"{reward}/architectures"] = spread("arch")
        out[f"{reward}/data"] = spread("data")
    return out


def run_experiment(
    cfg: ExperimentConfig,
    out: str | Path,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Run the whole experiment into ``out``; returns the report's path.

    Writes ``experiment.json`` (the settings), ``checkpoints/<member>/``,
    ``runs.parquet`` (one row per level, crash and seed), ``similarity.csv`` (per level)
    and the report (``report.html`` with figures and tables).

    Raises:
        ScenarioError: The base scenario or a variant is invalid, or has < 3 protocols.
        ValueError: Invalid settings (see :class:`ExperimentConfig`).
    """
    import ray

    from liqnet.analysis.experiment import write_experiment_report

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    n = _n(cfg)
    if n < 2:
        raise ScenarioError(f"experiment: scenario {cfg.scenario!r} needs >= 2 protocols, has {n}")
    say = on_progress or (lambda _text: None)
    text = json.dumps(cfg.to_dict(), indent=2, default=list)
    atomic_write(root / "experiment.json", lambda p: p.write_text(text, encoding="utf-8"))
    members = population(cfg)
    eval_variants = {s: _variant(cfg, s, cfg.eval_shock_step) for s in cfg.eval_shocks}
    with ray_connection(cfg.address):
        train_task = ray.remote(num_cpus=1)(train_member)
        pending = {train_task.remote(m, cfg, str(root.resolve())): m for m in members}
        checkpoints = {"untrained": save_untrained(cfg, root, members[0].shocks[0])}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            member = pending.pop(ready[0])
            checkpoints[member.name] = ray.get(ready[0])
            say(f"trained {member.name}")
        assignment = levels(cfg, n)
        eval_task = ray.remote(num_cpus=1)(evaluate_level)
        jobs = [
            eval_task.remote(level, specs, checkpoints, cfg.scenario, overrides, shock, cfg)
            for level, specs in assignment.items()
            for shock, overrides in eval_variants.items()
        ]
        rows: list[dict[str, Any]] = []
        while jobs:
            ready, jobs = ray.wait(jobs, num_returns=1)
            rows += ray.get(ready[0])
            say(f"evaluated {rows[-1]['level']} at {rows[-1]['shock']:+.2f}")
    runs = pd.DataFrame(rows).sort_values(["level", "shock", "seed"]).reset_index(drop=True)
    similarity = pd.DataFrame(
        [
            {"level": level, **level_similarity(specs, checkpoints, cfg, eval_variants)}
            for level, specs in assignment.items()
        ]
    )
    runs = runs.merge(similarity, on="level", how="left")
    runs["family"] = [lv.split("/")[0] if "/" in lv else "control" for lv in runs["level"]]
    atomic_write(root / "runs.parquet", lambda p: runs.to_parquet(p, index=False))
    similarity.to_csv(root / "similarity.csv", index=False)
    say("writing the report")
    return write_experiment_report(root, runs, similarity, asdict(cfg), bootstrap=cfg.bootstrap)
