"""Depositors' and LPs' flows: inflows, withdrawals and runs, written once for all protocols.

The same routine winds a defaulted protocol down (see :func:`run_flows`): a protocol that
defaulted keeps running, as insolvent DeFi pools do (Aave and Compound have no default
state: their contracts, liquidation engine included, keep working, and suppliers withdraw
whatever cash there is), but what it pays out is shared pro rata, as a bankrupt estate's
assets are (Eisenberg and Noe 2001, Management Science 47(2): each claimant receives the
same share of its claim). Morpho Blue books a pool's bad debt the same way: it cuts
``totalSupplyAssets``, so every supplier's share loses the same fraction (Morpho Blue
``liquidate``, "realize bad debt ... socialized to lenders").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from liqnet.core.units import DAYS_PER_YEAR

if TYPE_CHECKING:
    from liqnet.protocols.base import Protocol


class FlowOutlook(NamedTuple):
    """The latest flow state of one account: its balance and its daily rates at today's fear."""

    balance: float
    """USD balance of the account (deposits, LP NAV, vault shares)."""
    withdrawal_share_per_day: float
    """Share of the balance users want back per day (turnover plus run)."""
    inflow_usd_per_day: float
    """USD per day flowing in at today's fear."""

    def net_outflow(self, days: float) -> float:
        """Expected USD leaving over ``days`` if the fear stays where it is (>= 0)."""
        out = self.balance * min(1.0, days * self.withdrawal_share_per_day)
        return max(0.0, out - days * self.inflow_usd_per_day)


class TreasuryReads(NamedTuple):
    """What a protocol's treasury rule reads of it in a step's negotiation, in USD and
    annual rates (:meth:`~liqnet.protocols.base.Protocol.treasury_reads`)."""

    funding_rate: float
    """Its cost of funds (``funding_rate()``)."""
    lendable: float
    """Idle cash left after the horizon's outflows and maturing credit (``lendable``)."""
    idle: float
    """All its idle cash (``idle_liquidity()``)."""
    need: float
    """USD it needs over the horizon (``projected_need``)."""
    cash: float
    """Cash it can pay out now (``available_cash()``)."""


def lendable_usd(idle: float, outflows: float, maturing_usd: float) -> float:
    """Idle cash left after ``outflows`` and ``maturing_usd`` (``Protocol.lendable``)."""
    return max(0.0, idle - outflows - maturing_usd)


def needed_usd(
    shortfall: float, buffer: float, outflows: float, maturing_usd: float, cash: float
) -> float:
    """Unmet outflows now plus what restoring ``buffer`` after ``outflows`` and
    ``maturing_usd`` takes beyond ``cash`` (``Protocol.projected_need``)."""
    return shortfall + max(0.0, buffer + outflows + maturing_usd - cash)


def recovery_ratio(claim: float, assets: float) -> float:
    """Share of ``claim`` that ``assets`` cover, in [0, 1] (1 when nothing is claimed)."""
    if claim <= 0.0:
        return 1.0
    return min(1.0, max(0.0, assets / claim))


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
    recovery: float = 1.0,
) -> tuple[float, float]:
    """Serve ``account``'s inflow and withdrawals on ``balance`` this step; returns both.

    The protocol's ``perceived_risk`` moves toward ``signal`` with an exponential memory;
    inflows dry up and wanted withdrawals grow with it (a run when the fear is high).
    Inflows arrive before withdrawals are served, as within one block of time; at most
    ``available()`` (asked after the inflow) is paid, and what is not sets
    ``liquidity_shortfall``. Returns ``(inflow, redeemed)``: the protocol books the
    change of its own liability (deposits, vault shares), or passes ``book``, which is
    called with the inflow before ``available()`` is asked and with minus the cash paid
    after it.

    Wind-down: once the protocol has defaulted no money comes in, fear is at its
    maximum (the signal is 1), and each USD of claim withdrawn is paid ``recovery`` USD
    (the share of the claim the protocol's assets cover, :func:`recovery_ratio`), so
    every claimant gets the same share whenever it withdraws. The part not paid,
    ``redeemed - paid``, is the claimants' loss: it is added to the protocol's
    ``haircut_usd``, and ``redeemed`` (the claim given up) is what the protocol takes
    off its liability. While ``recovery`` is 0 nothing is paid and no claim is given up.
    """
    winding_down = protocol.defaulted
    if winding_down:
        signal = 1.0
    memory = 1.0 - math.exp(-days / memory_days)
    protocol.perceived_risk += memory * (signal - protocol.perceived_risk)
    balance = max(balance, 0.0)
    inflow = turnover_per_day * days * balance * math.exp(-5.0 * protocol.perceived_risk)
    if winding_down:
        inflow = 0.0  # nobody puts new money into a defaulted protocol
    share = days * (turnover_per_day + run_sensitivity * protocol.perceived_risk)
    wanted = balance * min(1.0, share)
    # What the same fear would make users do over the coming days (the protocol's own
    # projection of its outflows, read by negotiation: Protocol.projected_outflows).
    protocol.flow_outlook[account] = (
        FlowOutlook(
            balance, turnover_per_day + run_sensitivity * protocol.perceived_risk, inflow / days
        )
        if days > 0
        else FlowOutlook(balance, 0.0, 0.0)
    )
    recovery = min(1.0, max(0.0, recovery)) if winding_down else 1.0
    world = protocol.world
    world.transfer(account, protocol, usd=inflow)
    if book is not None:
        book(inflow)
    paid = min(wanted * recovery, available())
    world.transfer(protocol, account, usd=paid)
    if book is not None:
        book(-paid)
    redeemed = paid / recovery if recovery > 0.0 else 0.0
    protocol.haircut_usd += redeemed - paid
    protocol.liquidity_shortfall = (wanted - redeemed) * recovery
    return inflow, redeemed


def churn_then_flows(
    churn: Callable[..., None], flows: Callable[[Any, float], None]
) -> classmethod[Any, Any, None]:
    """An ``act_users_stacked`` for a built-in: the position churn of every protocol due
    for one (``churn(protocols, days, rngs)``, one call for all), then each protocol's
    aggregate flows (``flows(protocol, days)``), as ``act_users`` of each in turn would
    (a protocol's churn touches only its own books and accounts)."""

    def act_users_stacked(
        cls: type, protocols: Sequence[Any], dt_years: float, rngs: Sequence[np.random.Generator]
    ) -> None:
        days = dt_years * DAYS_PER_YEAR
        due = []
        for protocol, rng in zip(protocols, rngs, strict=True):
            batch_days = protocol.churn_days(days, protocol.params.churn_interval_hours)
            if batch_days:
                due.append((protocol, batch_days, rng))
        if due:
            churn(*zip(*due, strict=True))
        for protocol in protocols:
            flows(protocol, days)

    act_users_stacked.__doc__ = churn_then_flows.__doc__
    return classmethod(act_users_stacked)
