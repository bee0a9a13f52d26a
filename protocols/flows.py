"""Depositors' and LPs' flows: inflows, withdrawals and runs, written once for all protocols."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from liqnet.protocols.base import Protocol


def run_flows(
    protocol: Protocol,
    account: str,
    balance: float,
    signal: float,
    days: float,
    turnover_per_day: float,
    run_sensitivity: float,
    memory_days: float,
    available: Callable[[], float],
    book: Callable[[float], None] | None = None,
) -> tuple[float, float]:
    """Serve ``account``'s inflow and withdrawals on ``balance`` this step; returns both.

    The protocol's ``perceived_risk`` moves toward ``signal`` with an exponential memory;
    inflows dry up and wanted withdrawals grow with it (a run when the fear is high).
    Inflows arrive before withdrawals are served, as within one block of time; at most
    ``available()`` (asked after the inflow) is paid, and what is not sets
    ``liquidity_shortfall``. Returns ``(inflow, paid)``: the protocol books the change of
    its own liability (deposits, vault shares), or passes ``book``, which is called with
    the inflow before ``available()`` is asked and with minus the payment after it.
    """
    memory = 1.0 - math.exp(-days / memory_days)
    protocol.perceived_risk += memory * (signal - protocol.perceived_risk)
    balance = max(balance, 0.0)
    inflow = turnover_per_day * days * balance * math.exp(-5.0 * protocol.perceived_risk)
    share = days * (turnover_per_day + run_sensitivity * protocol.perceived_risk)
    wanted = balance * min(1.0, share)
    world = protocol.world
    world.transfer(account, protocol, usd=inflow)
    if book is not None:
        book(inflow)
    paid = min(wanted, available())
    world.transfer(protocol, account, usd=paid)
    if book is not None:
        book(-paid)
    protocol.liquidity_shortfall = wanted - paid
    return inflow, paid
