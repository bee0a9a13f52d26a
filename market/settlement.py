"""Negotiation (step 2) and settlement (step 8) of inter-protocol credit.

Negotiation (``liqnet.market.treasury``) turns each protocol's treasury rule, moved by
its ``lend``/``borrow`` levers, into rounds of orders, clears them with the scenario's
mechanism under the lenders' credit limits and opens credit lines (secured ones carry
collateral: a senior claim on the borrower's assets if it defaults).
Settlement repays or rolls over maturing lines, recognises defaults (negative equity or
a missed repayment) and, with feedback on, clears the credit network with Eisenberg-Noe:
claims on defaulted borrowers are written down to what the clearing vector pays, so
losses travel along the ledger to the lenders (and may default them in turn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from liqnet.market.clearing import eisenberg_noe
from liqnet.market.treasury import MIN_ORDER_USD, remember_equity, run_rounds, treasury_quotes

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel
    from liqnet.protocols.base import Protocol

_INSOLVENCY_TOLERANCE = 1e-9


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


def negotiate(model: MarketModel, levers: dict[str, np.ndarray]) -> None:
    """Step 2: treasury quotes, rounds of clearing under credit limits, new credit lines."""
    book = model.credit_book
    # Read before any quote, and nothing moves money until the rounds have run: the
    # credit limits use the same equity.
    equity = remember_equity(model, book)
    book.volume_usd = book.secured_usd = book.capped_usd = 0.0
    if not model.scenario.negotiation.enabled:
        return
    quotes = treasury_quotes(model, levers)
    if not (quotes.lend >= MIN_ORDER_USD).any() or not (quotes.borrow >= MIN_ORDER_USD).any():
        book.best_ask = book.best_bid = None
        book.unmatched_need_usd = float(quotes.borrow[quotes.borrow >= MIN_ORDER_USD].sum())
        return  # nothing can match: skip building (and validating) the books
    matches, collateral = run_rounds(model, quotes, book, equity)
    if len(matches) == 0:
        return
    book.volume_usd = matches.total
    book.last_rate = float(np.average(matches.rate, weights=matches.amount))
    protocols = list(model.protocols.values())
    paid = np.bincount(matches.lender, matches.amount, minlength=len(protocols))
    received = np.bincount(matches.borrower, matches.amount, minlength=len(protocols))
    for i, protocol in enumerate(protocols):
        if paid[i] > 0:
            _pay(model, protocol, float(paid[i]))
        if received[i] > 0:
            _receive(model, protocol, float(received[i]))
    model.ledger.open(
        matches, model.step_index, model.scenario.negotiation.maturity_steps, collateral
    )
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
    """Pay lenders what defaulted borrowers can on lines in resolution.

    Secured claims (what is owed up to the collateral) come first and out of all the
    borrower's cash, as a repo lender takes its collateral ahead of other claimants
    (the US Bankruptcy Code's safe harbour, 11 U.S.C. 559). The rest is paid every step
    as far as the cash allows but no further than the borrower's net worth left for
    other protocols (assets beyond its depositors' senior claims, Elsinger 2009), shared
    across its lines in proportion to what each is owed (Eisenberg-Noe's proportional
    rule), so no unsecured lender is paid first.
    """
    ledger, protocols = model.ledger, list(model.protocols.values())
    active = ledger.active_slots()
    slots = active[ledger.in_resolution[active]]
    owed = ledger.lines["owed"][slots]
    slots, owed = slots[owed > 0], owed[owed > 0]
    if slots.size == 0:
        return
    senior = ledger.secured_claims(slots)
    borrowers = ledger.lines["borrower"][slots].astype(np.int64)
    n = len(protocols)
    total_senior = np.bincount(borrowers, senior, minlength=n)
    total_junior = np.bincount(borrowers, owed - senior, minlength=n)
    senior_share, junior_share = np.zeros(n), np.zeros(n)
    for i in np.flatnonzero(total_senior + total_junior):
        borrower = protocols[i]
        cash = max(0.0, borrower.available_cash())
        secured = min(float(total_senior[i]), cash)
        # Net worth before credit, less what the secured lenders just took.
        junior_cap = max(0.0, borrower.own_equity() + borrower.credit_lent - secured)
        unsecured = min(float(total_junior[i]), cash - secured, junior_cap)
        if secured + unsecured > 0:
            _pay(model, borrower, secured + unsecured)
        if total_senior[i] > 0:
            senior_share[i] = secured / float(total_senior[i])
        if total_junior[i] > 0:
            junior_share[i] = unsecured / float(total_junior[i])
    amounts = senior * senior_share[borrowers] + (owed - senior) * junior_share[borrowers]
    if not amounts.any():
        return
    lenders = ledger.lines["lender"][slots].astype(np.int64)
    received = np.bincount(lenders, amounts, minlength=n)
    for j in np.flatnonzero(received):
        _receive(model, protocols[j], float(received[j]))
    ledger.collect(slots, amounts, model.step_index)


def _clear_network(model: MarketModel) -> set[int]:
    """Eisenberg-Noe over all protocols; write down claims; returns clearing defaults.

    Secured claims are valued first and in full as far as the borrower's assets reach
    (pro rata among its secured lenders when they do not): the lender's collateral is
    senior even to the borrower's depositors, as it is when the pool pays it out of cash
    (``_collect_recoveries``). What they receive adds to the lenders' own assets and
    comes off the borrower's net worth; the unsecured rest of every line is then cleared
    by Eisenberg-Noe.
    """
    protocols = list(model.protocols.values())
    ledger = model.ledger
    n = len(protocols)
    active = ledger.active_slots()
    borrowers = ledger.lines["borrower"][active].astype(np.int64)
    lenders = ledger.lines["lender"][active].astype(np.int64)
    owed = ledger.lines["owed"][active]
    senior = ledger.secured_claims(active)
    own = np.array([p.own_equity() for p in protocols])
    assets = np.array([max(p.total_assets(), 0.0) for p in protocols])
    total_senior = np.bincount(borrowers, senior, minlength=n)
    covered = np.divide(
        np.minimum(total_senior, assets),
        total_senior,
        out=np.ones(n),
        where=total_senior > 0,
    )
    senior_paid = senior * covered[borrowers]
    own = own - np.bincount(borrowers, senior_paid, minlength=n)
    own += np.bincount(lenders, senior_paid, minlength=n)
    liabilities = np.zeros((n, n))
    np.add.at(liabilities, (borrowers, lenders), owed - senior)
    result = eisenberg_noe(liabilities, np.maximum(own, 0.0), np.maximum(-own, 0.0))
    obligations = liabilities.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(obligations > 0, result.payments / obligations, 1.0)
    recovered = senior_paid + (owed - senior) * ratio[borrowers]
    short = recovered < owed * (1.0 - 1e-12)
    if short.any():
        slots = active[short]
        losses = ledger.write_down(slots, recovered[short] / owed[short], model.step_index)
        for lender, loss in zip(lenders[short], losses, strict=True):
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
    # Every equity once (defaulted protocols' too), for the insolvency test here and the
    # step's data collection and observations after it (MarketModel.closing_equity).
    model.closing_equity = equities = [protocol.equity() for protocol in protocols]
    causes: dict[int, str] = {}
    for i, protocol in enumerate(protocols):
        if protocol.defaulted:
            continue
        # A relative tolerance keeps round-off (equity of -1e-9 USD) from defaulting anyone.
        if equities[i] < -_INSOLVENCY_TOLERANCE * max(protocol.total_assets(), 1.0):
            causes[i] = "negative equity"
        elif i in missed:
            causes[i] = "missed credit repayment"
    if not causes:
        return
    _default(model, protocols, causes)
    # Defaults move credit (accelerated lines, loss passing): read the equities again.
    model.closing_equity = [protocol.equity() for protocol in protocols]


def _default(model: MarketModel, protocols: list[Protocol], causes: dict[int, str]) -> None:
    """Default the protocols of ``causes`` (by index), with contagion under feedback."""
    ledger = model.ledger
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
