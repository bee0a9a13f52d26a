"""The units of work of the convergence experiment: train a member, run a level.

Each function is a Ray task of :func:`liqnet.scenarios.experiment.run_experiment` and
takes plain data, so the same code runs in the driver, on a local Ray or on a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liqnet.analysis.convergence import response_similarity
from liqnet.analysis.graphs import contagion_graph, debtrank_by_protocol
from liqnet.analysis.similarity import policy_similarity, structural_similarity
from liqnet.core.io import atomic_write
from liqnet.core.result import RunResult
from liqnet.scenarios.evaluate import assign, run_metrics
from liqnet.scenarios.loader import load
from liqnet.scenarios.model_cards import model_cards
from liqnet.scenarios.policies import resolve_policies, run_with_policies
from liqnet.scenarios.probes import probe_states
from liqnet.scenarios.run import run

if TYPE_CHECKING:
    from liqnet.scenarios.experiment import ExperimentConfig

__all__ = ["Member", "evaluate_level", "level_similarity", "save_untrained", "train_member"]

RULES = ("static", "bayesian")
"""Controls that are policy specs themselves, not trained members."""

TRACE_WINDOW = 12
"""Steps after the crash over which the mechanism trace is measured."""

TIGHTEN = 0.01
"""Rise of the risk lever in one step that counts as tightening (of its [-1, 1] range)."""


@dataclass(frozen=True)
class Member:
    """One policy of the population: its reward, seed, architecture and training crashes."""

    name: str
    reward: str
    seed: int
    hidden: tuple[int, ...]
    shocks: tuple[tuple[float, int], ...]
    """(return, step) of every training variant it sees."""


def variant_file(root: Path, scenario: str, shock: float, step: int, steps: int, asset: str) -> str:
    """Write one training variant (the base world with one crash) as a scenario file."""
    name = f"exp_{'m' if shock < 0 else 'p'}{abs(shock):.3f}_s{step}".replace(".", "p")
    path = root / "variants" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = str(Path(scenario).resolve()) if Path(scenario).suffix == ".toml" else scenario
    text = (
        f'name = "{name}"\nbase = "{base}"\nsteps = {steps}\n\n'
        f'[[shocks]]\nstep = {step}\nasset = "{asset}"\nreturn = {shock!r}\n'
    )
    # Atomic: members training at once write the same file while others read it.
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return str(path)


def _overrides(cfg: ExperimentConfig, n: int) -> dict[str, Any]:
    positions = {f"protocols.{k}.params.positions": cfg.positions for k in range(n)}
    return {**positions, **cfg.extra}


def train_member(member: Member, cfg: ExperimentConfig, root: str | Path) -> str:
    """Train one member in this process (a Ray task); returns its checkpoint directory."""
    from liqnet.agents.mappo import MAPPOConfig
    from liqnet.scenarios.train import train

    out = Path(root)
    files = [variant_file(out, cfg.scenario, s, t, cfg.steps, cfg.asset) for s, t in member.shocks]
    n = len(load(cfg.scenario).protocols)
    config = MAPPOConfig(seed=member.seed, hidden_sizes=member.hidden)
    target = out / "checkpoints" / member.name
    train(
        files,
        steps=cfg.member_steps,
        config=config,
        overrides=_overrides(cfg, n),
        horizon=cfg.steps,
        out=target,
        use_ray=False,
        team_weight=1.0 if member.reward == "team" else 0.0,
    )
    return str(target)


def save_untrained(cfg: ExperimentConfig, root: str | Path, shock: tuple[float, int]) -> str:
    """The base member's starting weights as a checkpoint (the "untrained" control)."""
    from liqnet.agents.checkpoint import save_checkpoint
    from liqnet.agents.mappo import MAPPO, MAPPOConfig
    from liqnet.scenarios.envs import make_env

    n = len(load(cfg.scenario).protocols)
    env = make_env(
        variant_file(Path(root), cfg.scenario, *shock, cfg.steps, cfg.asset),
        overrides=_overrides(cfg, n),
    )
    agents = tuple(env.possible_agents)
    obs_dim = env.observation_space(agents[0]).shape[0]
    config = MAPPOConfig(seed=cfg.seeds[0], hidden_sizes=cfg.architectures[0])
    learner = MAPPO(config, obs_dim, len(agents), env.action_space(agents[0]).shape[0])
    target = Path(root) / "checkpoints" / "untrained"
    names = tuple(getattr(env, "observation_names", ()))
    save_checkpoint(target, learner.net, config, agents, names, {"untrained": True})
    return str(target)


def _specs(scenario_ids: list[str], members: list[str], checkpoints: dict[str, str]) -> dict:
    return {
        pid: m if m in RULES else f"mappo:{checkpoints[m]}"
        for pid, m in zip(scenario_ids, members, strict=True)
    }


def trace(result: RunResult, shock_step: int) -> dict[str, float]:
    """The mechanism trace after the crash: synchronised tightening, simultaneous
    liquidations, fire-sale volume (each over :data:`TRACE_WINDOW` steps)."""
    series = result.timeseries
    window = series[(series["step"] >= shock_step) & (series["step"] < shock_step + TRACE_WINDOW)]
    ids = [p.id for p in result.scenario.protocols]
    risk = np.stack([window[f"{p}.lever.risk"].to_numpy() for p in ids])
    moves = np.diff(risk, axis=1)
    tightening = moves > TIGHTEN
    # Share of protocols tightening in the same step, on steps where anyone tightens.
    active = tightening.any(axis=0)
    sync = float(tightening[:, active].mean()) if active.any() else 0.0
    liquidating = np.stack([window[f"{p}.liquidated"].to_numpy() > 0 for p in ids])
    events = result.events
    sales = events[(events["kind"] == "liquidation") & (events["step"] >= shock_step)]
    sales = sales[sales["step"] < shock_step + TRACE_WINDOW]
    return {
        "tightening_sync": sync,
        "simultaneous_liquidations": float((liquidating.sum(axis=0) >= 2).sum()),
        "fire_sale_usd": float(sales["proceeds_usd"].sum()),
    }


def _system_drawdown(result: RunResult) -> float:
    series = result.timeseries
    equity = sum(series[f"{p.id}.equity"] for p in result.scenario.protocols)
    peak = equity.cummax()
    return float(((peak - equity) / peak.where(peak > 0)).max(skipna=True) or 0.0)


def evaluate_level(
    level: str,
    members: list[str],
    checkpoints: dict[str, str],
    scenario: str,
    overrides: dict[str, Any],
    shock: float,
    cfg: ExperimentConfig,
) -> list[dict[str, Any]]:
    """Run one level against one held-out crash on every evaluation seed (a Ray task)."""
    world = load(scenario, overrides)
    ids = [p.id for p in world.protocols]
    world = assign(world, _specs(ids, members, checkpoints))
    static = all(m == "static" for m in members)
    policies = None if static else resolve_policies(world)
    rows = []
    for seed in cfg.seed_list:
        if policies is None:
            result = run(world, seed=seed)
        else:
            result = run_with_policies(world, seed, None, None, policies=policies)
        ranks = debtrank_by_protocol(contagion_graph(result))
        row = {"level": level, "shock": shock, "seed": seed, **run_metrics(result)}
        row["liquidated_usd"] = float(result.summary["liquidated_usd"])
        row["liquidations"] = float(result.summary["liquidations"])
        row["drawdown"] = _system_drawdown(result)
        row["debtrank"] = float(ranks["debtrank"].mean()) if len(ranks) else 0.0
        row.update(trace(result, cfg.eval_shock_step))
        rows.append(row)
    return rows


def _actor(path: str) -> tuple[Any, Any]:
    """A checkpoint's acting function and its first-hidden-layer representation."""
    import torch

    from liqnet.agents.checkpoint import load_checkpoint

    net = load_checkpoint(path).net
    actor = net.actors[0]
    first = torch.nn.Sequential(*list(actor.children())[:2])  # first Linear + activation

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = net.obs_norm.normalize(torch.as_tensor(obs, dtype=torch.float32))
            return actor(x).clamp(-1.0, 1.0).numpy()

    def hidden(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = net.obs_norm.normalize(torch.as_tensor(obs, dtype=torch.float32))
            return first(x).numpy()

    return act, hidden


def level_similarity(
    members: list[str],
    checkpoints: dict[str, str],
    cfg: ExperimentConfig,
    eval_variants: dict[float, dict[str, Any]],
) -> dict[str, float]:
    """Measured similarity of a level: behaviour and representations on held-out crash
    probes, structure from the model cards (NaN where undefined: static levers)."""
    scenario = load(cfg.scenario, next(iter(eval_variants.values())))
    ids = [p.id for p in scenario.protocols]
    structure = structural_similarity(
        model_cards(assign(scenario, _specs(ids, members, checkpoints)))
    )
    out = {"similarity_structure": structure["same_model"]}
    if any(m in RULES for m in members):
        # Static levers do not respond to states; a Bayesian manager responds to its own
        # history, not to a probe: neither has a response function to compare.
        return out | {"similarity_behaviour": math.nan, "similarity_cka": math.nan}
    worlds = [load(cfg.scenario, o) for o in eval_variants.values()]
    probes = probe_states(worlds, cfg.probes, seed=cfg.eval_seed_base, worlds=2)
    acts = {f"{pid}": _actor(checkpoints[m]) for pid, m in zip(ids, members, strict=True)}
    behaviour = response_similarity({k: a for k, (a, _) in acts.items()}, probes, batched=True)
    hidden = policy_similarity({k: h for k, (_, h) in acts.items()}, probes, batched=True)
    return out | {
        "similarity_behaviour": behaviour.mean_correlation,
        "similarity_cka": hidden.mean,
    }
