"""Running a scenario to completion and packaging what happened."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.market.accounting import realised_bad_debt, unrealised_bad_debt
from liqnet.market.model import MarketModel
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios.loader import load


def summarise(model: MarketModel, timeseries: pd.DataFrame, events: pd.DataFrame) -> dict:
    """Headline figures of a finished run.

    ``bad_debt_usd`` is realised bad debt plus the shortfall of loans still underwater at
    the end (losses the protocols carry but have not written off yet).
    """
    realised, unrealised = realised_bad_debt(model), unrealised_bad_debt(model)
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
        "credit_losses_total_usd": math.fsum(model.credit_losses.values()),
        "revenue_usd": {pid: p.revenue for pid, p in model.protocols.items()},
        # Winners' profit taken by auto-deleveraging, per perp exchange.
        "adl_usd": {
            pid: p.adl_usd for pid, p in model.protocols.items() if isinstance(p, PerpExchange)
        },
        # Claims depositors/LPs of defaulted protocols gave up in the pro-rata wind-down.
        "haircut_usd": {pid: p.haircut_usd for pid, p in model.protocols.items()},
        "haircut_total_usd": math.fsum(p.haircut_usd for p in model.protocols.values()),
        # Liquidations per protocol: cascade liquidations plus auctions kicked (barks).
        "liquidations_by_protocol": {
            pid: int((liquidations["protocol"] == pid).sum())
            + sum(a.kicks_by_protocol.get(pid, 0) for a in model.auction_history)
            for pid in model.protocols
        },
        # Collateral sold for (about) nothing: deals whose winning bid was < 1e-6 of the
        # tab, valued at the oracle price when dealt (Black Thursday's zero bids).
        "zero_bid_collateral_usd": sum(a.zero_bid_collateral_usd for a in model.auction_history),
        # All collateral keepers won in auctions, valued the same way (zero bids included).
        "auctioned_collateral_usd": sum(a.sold_collateral_usd for a in model.auction_history),
        "auctions": {
            name: sum(getattr(a, name) for a in model.auction_history)
            for name in ("kicks", "bids", "deals", "takes", "restarts", "zero_bid_deals")
        },
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
