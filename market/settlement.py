"""Negotiation (step 2) and settlement (step 8) of inter-protocol credit.

Negotiation turns each protocol's ``lend``/``lend_rate`` and ``borrow``/``borrow_rate``
levers into orders, clears them with the scenario's mechanism and opens credit lines.
Settlement repays or rolls over maturing lines, recognises defaults (negative equity or
a missed repayment) and, with feedback on, clears the credit network with Eisenberg-Noe:
claims on defaulted borrowers are written down to what the clearing vector pays, so
losses travel along the ledger to the lenders (and may default them in turn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from liqnet.market.clearing import eisenberg_noe
from liqnet.market.negotiation import LiquidityOrders

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel
    from liqnet.protocols.base import Protocol

LEND, LEND_RATE, BORROW, BORROW_RATE = 2, 3, 4, 5  # positions in the lever vector
_MIN_ORDER_USD = 1.0
_INSOLVENCY_TOLERANCE = 1e-9


def lever_share(lever: float) -> float:
    """Map a lever in [-1, 1] to a share in [0, 1] (-1 = nothing, +1 = everything)."""
    return min(1.0, max(0.0, 0.5 * (float(lever) + 1.0)))


def sync_credit(model: MarketModel) -> None:
    """Copy each protocol's claims and debts on the ledger onto its balance sheet."""
    if not model.ledger.lines.count:
        # No credit at all (the common case without negotiation): write zeros directly.
        for protocol in model.protocols.values():
            protocol.credit_lent = protocol.credit_borrowed = 0.0
        return
    lent, borrowed = model.ledger.lent_and_borrowed()
    for i, protocol in enumerate(model.protocols.values()):
        protocol.credit_lent = float(lent[i])
        protocol.credit_borrowed = float(borrowed[i])


def _pay(model: MarketModel, protocol: Protocol, amount: float) -> None:
    """``protocol`` pays ``amount`` USD of credit (checked: its cash falls by that)."""
    model.world.call(protocol, "pay_cash", protocol.pay_cash, amount, usd=-amount)


def _receive(model: MarketModel, protocol: Protocol, amount: float) -> None:
    """``protocol`` takes in ``amount`` USD of credit (checked: its cash rises by that)."""
    model.world.call(protocol, "receive_cash", protocol.receive_cash, amount, usd=amount)


def _orders(
    model: MarketModel, levers: dict[str, np.ndarray]
) -> tuple[LiquidityOrders, LiquidityOrders] | None:
    spec = model.scenario.negotiation
    span = spec.max_rate - spec.min_rate
    # Columns (agent index, amount, rate) of each side, filled per protocol; the agent
    # column becomes int64 below.
    offer: tuple[list[float], list[float], list[float]] = ([], [], [])
    request: tuple[list[float], list[float], list[float]] = ([], [], [])
    for i, (pid, protocol) in enumerate(model.protocols.items()):
        if protocol.defaulted:
            continue
        lever = levers[pid]
        # A zero share (lever at -1, the default) needs no balance-sheet look-up.
        lend_share = lever_share(lever[LEND])
        lend = lend_share * protocol.idle_liquidity() if lend_share > 0.0 else 0.0
        if lend >= _MIN_ORDER_USD:
            for column, value in zip(
                offer, (i, lend, spec.min_rate + span * lever_share(lever[LEND_RATE])), strict=True
            ):
                column.append(value)
        borrow_share = lever_share(lever[BORROW])
        borrow = borrow_share * protocol.liquidity_need() if borrow_share > 0.0 else 0.0
        if borrow >= _MIN_ORDER_USD:
            bid = spec.min_rate + span * lever_share(lever[BORROW_RATE])
            for column, value in zip(request, (i, borrow, bid), strict=True):
                column.append(value)
    if not offer[0] or not request[0]:
        return None  # nothing can match: skip building (and validating) the books
    return (
        LiquidityOrders(np.array(offer[0], dtype=np.int64), np.array(offer[1]), np.array(offer[2])),
        LiquidityOrders(
            np.array(request[0], dtype=np.int64), np.array(request[1]), np.array(request[2])
        ),
    )


def negotiate(model: MarketModel, levers: dict[str, np.ndarray]) -> None:
    """Clear this step's liquidity orders and open the matched credit lines."""
    books = _orders(model, levers)
    if books is None:
        return
    offers, requests = books
    matches = model.mechanism.clear(offers, requests, model.negotiation_rng)
    if len(matches) == 0:
        return
    protocols = list(model.protocols.values())
    paid = np.bincount(matches.lender, matches.amount, minlength=len(protocols))
    received = np.bincount(matches.borrower, matches.amount, minlength=len(protocols))
    for i, protocol in enumerate(protocols):
        if paid[i] > 0:
            _pay(model, protocol, float(paid[i]))
        if received[i] > 0:
            _receive(model, protocol, float(received[i]))
    model.ledger.open(matches, model.step_index, model.scenario.negotiation.maturity_steps)
    sync_credit(model)


def _repay_or_roll(model: MarketModel) -> set[int]:
    """Settle maturing lines; returns borrowers that missed a repayment while insolvent."""
    ledger, step = model.ledger, model.step_index
    protocols = list(model.protocols.values())
    missed: set[int] = set()
    for slot in ledger.due(step):
        borrower = protocols[int(ledger.lines["borrower"][slot])]
        lender = protocols[int(ledger.lines["lender"][slot])]
        owed = float(ledger.lines["owed"][slot])
        if borrower.available_cash() >= owed:
            _pay(model, borrower, owed)
            _receive(model, lender, owed)
            ledger.close(np.array([slot]), step, "repay", np.array([owed]))
        elif borrower.equity() > 0.0:
            # Illiquid but solvent: the lender rolls the line over for another term.
            ledger.roll_over(np.array([slot]), step, model.scenario.negotiation.maturity_steps)
        else:
            missed.add(int(ledger.lines["borrower"][slot]))
    return missed


def _collect_recoveries(model: MarketModel) -> None:
    """Pay lenders what defaulted borrowers can on lines in resolution, pro rata.

    A winding-down borrower pays, every step, what its cash allows but no more than its
    net worth left for other protocols (assets beyond its depositors' senior claims,
    Elsinger 2009), shared across its lines in proportion to what each is owed
    (Eisenberg-Noe's proportional rule), so no lender is paid first.
    """
    ledger, protocols = model.ledger, list(model.protocols.values())
    active = ledger.active_slots()
    slots = active[ledger.in_resolution[active]]
    owed = ledger.lines["owed"][slots]
    slots, owed = slots[owed > 0], owed[owed > 0]
    if slots.size == 0:
        return
    borrowers = ledger.lines["borrower"][slots].astype(np.int64)
    total = np.bincount(borrowers, owed, minlength=len(protocols))
    share = np.zeros(len(protocols))
    for i in np.flatnonzero(total):
        borrower = protocols[i]
        junior = borrower.own_equity() + borrower.credit_lent  # net worth before credit
        amount = min(float(total[i]), max(0.0, borrower.available_cash()), max(0.0, junior))
        if amount > 0:
            _pay(model, borrower, amount)
            share[i] = amount / float(total[i])
    if not share.any():
        return
    amounts = owed * share[borrowers]
    lenders = ledger.lines["lender"][slots].astype(np.int64)
    received = np.bincount(lenders, amounts, minlength=len(protocols))
    for j in np.flatnonzero(received):
        _receive(model, protocols[j], float(received[j]))
    ledger.collect(slots, amounts, model.step_index)


def _clear_network(model: MarketModel) -> set[int]:
    """Eisenberg-Noe over all protocols; write down claims; returns clearing defaults."""
    protocols = list(model.protocols.values())
    liabilities = model.ledger.liabilities()
    own = np.array([p.own_equity() for p in protocols])
    result = eisenberg_noe(liabilities, np.maximum(own, 0.0), np.maximum(-own, 0.0))
    obligations = liabilities.sum(axis=1)
    ledger = model.ledger
    active = ledger.active_slots()
    borrowers = ledger.lines["borrower"][active].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(obligations > 0, result.payments / obligations, 1.0)
    short = ratio[borrowers] < 1.0 - 1e-12
    if short.any():
        slots = active[short]
        losses = ledger.write_down(slots, ratio[borrowers[short]], model.step_index)
        lenders = ledger.lines["lender"][slots].astype(np.int64)
        for lender, loss in zip(lenders, losses, strict=True):
            model.credit_losses[protocols[lender].protocol_id] += float(loss)
    return set(np.flatnonzero(result.defaulted).tolist())


def settle(model: MarketModel) -> None:
    """Step 8: maturities, recoveries, defaults and (with feedback) loss passing."""
    ledger = model.ledger
    protocols = list(model.protocols.values())
    missed = _repay_or_roll(model) if ledger.lines.count else set()
    if ledger.in_resolution.any():
        _collect_recoveries(model)
    sync_credit(model)
    causes: dict[int, str] = {}
    for i, protocol in enumerate(protocols):
        if protocol.defaulted:
            continue
        # A relative tolerance keeps round-off (equity of -1e-9 USD) from defaulting anyone.
        if protocol.equity() < -_INSOLVENCY_TOLERANCE * max(protocol.total_assets(), 1.0):
            causes[i] = "negative equity"
        elif i in missed:
            causes[i] = "missed credit repayment"
    if not causes:
        return
    for i in causes:
        protocols[i].defaulted = True
    if model.feedback and ledger.lines.count:
        for i in _clear_network(model):
            if not protocols[i].defaulted:
                protocols[i].defaulted = True
                causes[i] = "contagion through credit lines"
        sync_credit(model)
    # Every debt of a new defaulter falls due and stops accruing; its lenders collect
    # pro rata as it winds down (_collect_recoveries), with or without feedback.
    if ledger.lines.count:
        ledger.accelerate(np.fromiter(causes, dtype=np.int64), model.step_index)
    for i, cause in causes.items():
        model.defaults.append(
            {
                "step": model.step_index,
                "protocol": protocols[i].protocol_id,
                "equity_usd": protocols[i].equity(),
                "cause": cause,
            }
        )
