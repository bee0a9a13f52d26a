"""Reading recorded runs: rebuild a RunResult from disk, and slice what analysis needs.

Everything here reads tables a run already produced; nothing drives a simulation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from liqnet.core.levers import LEVER_NAMES
from liqnet.core.result import RunResult
from liqnet.core.units import HOURS_PER_YEAR

__all__ = [
    "credit_exposures",
    "first_default_step",
    "lever_actions",
    "load_result",
    "protocol_ids",
    "snapshot_step",
]

_LINE_COLUMNS = ["line", "lender", "borrower", "owed", "rate", "written_off", "in_resolution"]


def load_result(result_dir: str | Path) -> RunResult:
    """Rebuild the :class:`RunResult` that ``RunResult.save(result_dir)`` wrote.

    Same as :meth:`RunResult.load`; see there for what is checked and raised.
    """
    return RunResult.load(result_dir)


def protocol_ids(result: RunResult) -> list[str]:
    """Protocol ids of a run, in scenario order."""
    return [p.id for p in result.scenario.protocols]


def _steps(result: RunResult) -> np.ndarray:
    return result.timeseries["step"].to_numpy(dtype=np.int64)


def resolve_step(result: RunResult, step: int | None) -> int:
    """``step`` checked against the recorded steps; ``None`` means the last one.

    Raises:
        ValueError: ``step`` was not recorded.
    """
    steps = _steps(result)
    if step is None:
        return int(steps[-1])
    if int(step) not in set(steps.tolist()):
        raise ValueError(f"step = {step}: not recorded; allowed {steps[0]}..{steps[-1]}")
    return int(step)


def first_default_step(result: RunResult) -> int | None:
    """The step of the run's first default, or None."""
    return min((int(d["step"]) for d in result.defaults), default=None)


def snapshot_step(result: RunResult) -> int:
    """The most telling step for a contagion snapshot.

    The step before the first default (when the credit exposures that carry the loss are
    still on the books); without defaults, the step with the largest total credit
    exposure; without credit, the last step.
    """
    first = first_default_step(result)
    steps = _steps(result)
    if first is not None:
        return int(max(steps[0], first - 1))
    lent_cols = [f"{pid}.credit_lent" for pid in protocol_ids(result)]
    lent_cols = [c for c in lent_cols if c in result.timeseries]
    if lent_cols:
        total = result.timeseries[lent_cols].sum(axis=1).to_numpy()
        if total.max() > 0.0:
            return int(steps[int(np.argmax(total))])
    return int(steps[-1])


def credit_exposures(result: RunResult, step: int | None = None) -> pd.DataFrame:
    """Credit lines open at the end of ``step``, rebuilt from the ledger history.

    The ledger logs only changes (open, repay, rollover, default, recovery); between
    them a performing line grows at its rate once per step (world step 6, after the
    negotiation that opens lines and before the settlement that closes them), exactly as
    :meth:`CreditLedger.accrue` does. Lines in resolution (borrower defaulted) no longer
    accrue; their ``owed`` is the claim left after write-downs and recoveries.

    Args:
        result: A run.
        step: A recorded step; None for the last.

    Returns:
        One row per line: ``line, lender, borrower, owed, rate, written_off,
        in_resolution``; ``owed`` is the lender's exposure in USD.
    """
    step = resolve_step(result, step)
    history = result.credit
    if history is None or len(history) == 0:
        return pd.DataFrame(columns=_LINE_COLUMNS)
    growth = result.scenario.dt_hours / HOURS_PER_YEAR  # years per step, as the world's
    lines: dict[int, dict] = {}

    def catch_up(line: dict, upto: int) -> None:
        # Bring a performing line's balance to what it owes after accrual at ``upto``.
        if not line["in_resolution"] and upto > line["through"]:
            line["owed"] *= (1.0 + line["rate"] * growth) ** (upto - line["through"])
        line["through"] = max(line["through"], upto)

    for row in history[history["step"] <= step].itertuples(index=False):
        uid, at, kind, amount = int(row.line), int(row.step), row.kind, float(row.amount_usd)
        if kind == "open":
            # Opened in negotiation (world step 2), so it accrues in this same step.
            lines[uid] = {
                "line": uid,
                "lender": row.lender,
                "borrower": row.borrower,
                "owed": amount,
                "rate": float(row.rate),
                "written_off": 0.0,
                "in_resolution": False,
                "through": at - 1,
                "closed": False,
            }
            continue
        line = lines.get(uid)
        if line is None:  # history truncated before the open: nothing to rebuild from
            continue
        catch_up(line, at)
        if kind == "repay":
            line["closed"] = True
        elif kind == "rollover":
            line["owed"] = amount  # the ledger logs the rolled balance: resynchronise
        elif kind == "default":
            # A full write-down leaves exactly 0 in the ledger; our compounded balance may
            # differ from its step-by-step one in the last bits, so snap that residue.
            left = line["owed"] - amount
            line["owed"] = 0.0 if left <= 1e-9 * max(amount, 1.0) else left
            line["written_off"] += amount
            line["in_resolution"] = True
        elif kind == "recovery":
            line["owed"] -= amount
            if line["owed"] <= 1e-9:  # the ledger's own threshold for "paid in full"
                line["closed"] = True
    rows = []
    for line in lines.values():
        if line["closed"]:
            continue
        catch_up(line, step)
        rows.append({k: line[k] for k in _LINE_COLUMNS})
    return pd.DataFrame(rows, columns=_LINE_COLUMNS)


def lever_actions(result: RunResult) -> dict[str, pd.DataFrame]:
    """Each protocol's applied levers over time, for :func:`action_synchrony`.

    The row of step 0 (the initial state, before any action) is dropped.

    Returns:
        ``{protocol id: DataFrame indexed by step, one column per lever}``.
    """
    ts = result.timeseries
    acted = ts[ts["step"] > 0]
    actions = {}
    for pid in protocol_ids(result):
        columns = {lever: f"{pid}.lever.{lever}" for lever in LEVER_NAMES}
        if all(c in acted for c in columns.values()):
            frame = acted[list(columns.values())].set_axis(list(columns), axis=1)
            actions[pid] = frame.set_index(acted["step"].to_numpy())
    return actions
