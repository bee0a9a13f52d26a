"""Running a scenario to completion and packaging what happened."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from liqnet.market.model import MarketModel
from liqnet.protocols.lending import LendingPool
from liqnet.scenarios.loader import load
from liqnet.scenarios.schema import Scenario


@dataclass
class RunResult:
    """Everything a run produced.

    Attributes:
        scenario: The validated scenario that ran.
        seed: The seed used.
        feedback: Whether price impact and loss passing were on.
        timeseries: One row per step (and the initial state), from Mesa's DataCollector.
        events: Every liquidation, with its step and cascade round.
        summary: Headline figures (see :func:`summarise`).
        defaults: Each default with its step and cause.
        credit: Every credit-line event (open, repay, rollover, default, recovery).
        credit_lines: Credit lines still open at the end.
        protocol_types: Registered type of each protocol, by id.
    """

    scenario: Scenario
    seed: int
    feedback: bool
    timeseries: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any]
    defaults: list[dict[str, Any]] = field(default_factory=list)
    credit: pd.DataFrame = field(default_factory=pd.DataFrame)
    credit_lines: pd.DataFrame = field(default_factory=pd.DataFrame)
    protocol_types: dict[str, str] = field(default_factory=dict)

    def save(self, out_dir: str | Path, figure: bool = True) -> Path:
        """Write ``timeseries.parquet``, ``events.parquet``, ``summary.json`` (and a PNG).

        Files are written to temporary names and renamed, so an interrupted save never
        leaves a half-written file under a final name.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "timeseries.parquet", lambda p: self.timeseries.to_parquet(p))
        atomic_write(out / "events.parquet", lambda p: self.events.to_parquet(p))
        atomic_write(out / "credit.parquet", lambda p: self.credit.to_parquet(p))
        atomic_write(out / "credit_lines.parquet", lambda p: self.credit_lines.to_parquet(p))
        payload = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "feedback": self.feedback,
            "summary": self.summary,
            "defaults": self.defaults,
            "protocol_types": self.protocol_types,
        }
        text = json.dumps(payload, indent=2, default=float)
        atomic_write(out / "summary.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
        scenario_json = self.scenario.model_dump_json(indent=2, by_alias=True)
        atomic_write(out / "scenario.json", lambda p: Path(p).write_text(scenario_json))
        if figure:
            from liqnet.analysis.figures import plot_run

            atomic_write(out / "run.png", lambda p: plot_run(self, p))
        return out


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write ``path`` through ``write(tmp_path)`` then rename: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600 files; give the result the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unrealised_bad_debt(model: MarketModel) -> float:
    """Shortfall of loans still underwater: losses carried but not yet written off, USD."""
    return sum(
        p.underwater_shortfall() for p in model.protocols.values() if isinstance(p, LendingPool)
    )


def summarise(model: MarketModel, timeseries: pd.DataFrame, events: pd.DataFrame) -> dict:
    """Headline figures of a finished run.

    ``bad_debt_usd`` is realised bad debt plus the shortfall of loans still underwater at
    the end (losses the protocols carry but have not written off yet).
    """
    realised = sum(p.realised_bad_debt for p in model.protocols.values())
    unrealised = unrealised_bad_debt(model)
    drawdowns = {}
    for asset in model.asset_names:
        path = timeseries[f"{asset}.reference"]
        drawdowns[asset] = float((1.0 - path / path.cummax()).max())
    rounds = [len(r) for r in model.cascade_history]
    liquidations = events[events["kind"] == "liquidation"]
    hedges = events[events["kind"] == "hedge"]
    credit = model.ledger.history()
    initial = timeseries.iloc[0]
    return {
        "steps": model.step_index,
        "bad_debt_usd": realised + unrealised,
        "realised_bad_debt_usd": realised,
        "unrealised_bad_debt_usd": unrealised,
        "liquidated_usd": float(liquidations["repaid_usd"].sum()),
        "liquidated_notional_usd": sum(
            float(timeseries[f"{p}.liquidated"].sum()) for p in model.protocols
        ),
        "liquidations": len(liquidations),
        "hedge_trades": len(hedges),
        "hedged_usd": float(hedges["proceeds_usd"].abs().sum()),
        "max_cascade_rounds": max(rounds, default=0),
        "cascade_steps": sum(1 for r in rounds if r >= 2),
        "max_drawdown": max(drawdowns.values()),
        "max_drawdown_by_asset": drawdowns,
        "defaults": len(model.defaults),
        "liquidity_shortfall_usd": sum(
            float(timeseries[f"{p}.shortfall"].sum()) for p in model.protocols
        ),
        "equity_change_usd": {
            p: float(timeseries[f"{p}.equity"].iloc[-1] - initial[f"{p}.equity"])
            for p in model.protocols
        },
        "min_equity_usd": {p: float(timeseries[f"{p}.equity"].min()) for p in model.protocols},
        "oracle_updates": sum(o.updates for o in model.oracles.values()),
        "credit_opened_usd": float(credit.loc[credit["kind"] == "open", "amount_usd"].sum()),
        "credit_losses_usd": dict(model.credit_losses),
        "revenue_usd": {pid: p.revenue for pid, p in model.protocols.items()},
    }


def run(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    feedback: bool | None = None,
    steps: int | None = None,
) -> RunResult:
    """Run a scenario to its horizon.

    Protocols whose ``policy`` is not ``"static"`` are acted for by their policies through
    :class:`~liqnet.market.env.LiquidityEnv`
    (:func:`liqnet.scenarios.policies.run_with_policies`); an all-static scenario runs
    the bare ``MarketModel`` (fastest, and the same trajectory).

    Args:
        scenario: A validated :class:`Scenario`, a built-in name or a TOML path.
        seed: Overrides the scenario's seed.
        feedback: Overrides the scenario's ``feedback`` switch (the counterfactual twin).
        steps: Overrides the horizon.

    Returns:
        The :class:`RunResult`.
    """
    if not isinstance(scenario, Scenario):
        scenario = load(scenario)
    if any(spec.policy != "static" for spec in scenario.protocols):
        # Imported here: policies import this module, and may pull in torch.
        from liqnet.scenarios.policies import run_with_policies

        return run_with_policies(scenario, seed=seed, feedback=feedback, steps=steps)
    model = MarketModel(scenario, seed=seed, feedback=feedback)
    for _ in range(scenario.steps if steps is None else steps):
        model.step()
    return _result_from_model(model, scenario)


def _result_from_model(model: MarketModel, scenario: Scenario) -> RunResult:
    """Package a finished world as a :class:`RunResult` (shared by every run path)."""
    timeseries = model.timeseries()
    events = model.events.to_frame()
    return RunResult(
        scenario=scenario,
        seed=model.seed_value,
        feedback=model.feedback,
        timeseries=timeseries,
        events=events,
        summary=summarise(model, timeseries, events),
        defaults=list(model.defaults),
        credit=model.ledger.history(),
        credit_lines=model.ledger.open_lines(),
        protocol_types={pid: p.type_name for pid, p in model.protocols.items()},
    )
