"""Step 2, negotiation: the treasury rule, rounds of quotes, credit limits and collateral.

Every live protocol's treasury projects its liquidity over the scenario's horizon
(``Protocol.projected_need`` and ``Protocol.lendable``: expected runs and redemptions,
maturing credit, the buffer target) and quotes in the credit market:

* a lender offers its lendable cash at no less than its funding rate plus
  ``lender_spread`` (its reservation rate);
* a borrower asks for its projected need at no more than its funding rate plus the
  spread plus ``distress_premium`` x urgency (the share of its need its cash cannot
  cover; 1 once withdrawals already go unmet).

The levers move the rule: ``lend``/``borrow`` 0 is the rule, -1 no order, +1 all idle
cash or twice the need; ``lend_rate``/``borrow_rate`` shift the limits by up to half the
rate span. The defaults are 0, so the rule is what a protocol does when nothing else is
said.

Within a step quotes are made in ``rounds``: each side opens shaded away from its limit
and concedes a share of the shading every round; after each round it sees the book
(best unmatched bid and ask) and meets the other side's best quote when that is within
its limit. Each round's book is cleared by the scenario's mechanism (call auction or
bilateral bargaining). A lender caps its unsecured claims on a borrower by
``limits`` (its equity, the borrower's equity ratio and recent losses); what a match
exceeds is lent secured against the borrower's pledgeable assets with
``secured_haircut``, or not at all, and goes back to the book.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from liqnet.core.levers import LEVER_NAMES
from liqnet.market.negotiation import LiquidityOrders, Matches

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel

# Positions of the credit levers in the lever vector.
LEND, LEND_RATE, BORROW, BORROW_RATE = (
    LEVER_NAMES.index(name) for name in ("lend", "lend_rate", "borrow", "borrow_rate")
)
MIN_ORDER_USD = 1.0
"""Orders below one dollar are not placed (round-off of netting and capping)."""


@dataclass
class CreditBook:
    """What every agent sees of the credit market after a step's negotiation.

    Rates are annual; ``None`` where there was nothing (no trade, no order left).
    """

    last_rate: float | None = None
    """Amount-weighted rate of the last step's matches (the last clearing rate seen)."""
    volume_usd: float = 0.0
    """USD matched in the last step."""
    best_ask: float | None = None
    """Lowest ask left unmatched after the last round."""
    best_bid: float | None = None
    """Highest bid left unmatched after the last round."""
    unmatched_need_usd: float = 0.0
    """Borrowing demand left unmatched after the last round."""
    capped_usd: float = 0.0
    """USD of matches cut by credit limits (not lent secured either) in the last step's
    last clearing round."""
    secured_usd: float = 0.0
    """USD lent beyond the credit limits against collateral in the last step."""
    equity_history: list[np.ndarray] = field(default_factory=list)
    """Each protocol's equity over the last horizon of steps (oldest first)."""


@dataclass(frozen=True)
class Quotes:
    """One step's treasury quotes, per protocol index (arrays of length n)."""

    lend: np.ndarray
    ask_limit: np.ndarray
    borrow: np.ndarray
    bid_limit: np.ndarray


def horizon_steps(model: MarketModel) -> int:
    """Steps in the negotiation horizon (at least one)."""
    return max(1, math.ceil(model.scenario.negotiation.horizon_hours / model.dt_hours))


def treasury_quotes(model: MarketModel, levers: dict[str, np.ndarray]) -> Quotes:
    """The treasury rule of every protocol, moved by its levers (see the module docstring)."""
    spec = model.scenario.negotiation
    half_span = 0.5 * (spec.max_rate - spec.min_rate)
    days = horizon_days(model)
    maturing = maturing_within_horizon(model)
    n = len(model.protocols)
    lend, ask, borrow, bid = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    # Every protocol's levers clipped at once, as floats (a clip per protocol cost more
    # than the rule itself). np.clip's Python wrappers cost twice its two ufuncs, and
    # this runs in every world every step.
    clipped = np.minimum(
        np.maximum(np.array([levers[pid] for pid in model.protocols]), -1.0), 1.0
    ).tolist()
    for i, protocol in enumerate(model.protocols.values()):
        if protocol.defaulted:
            continue
        lever = clipped[i]
        reads = type(protocol).treasury_reader()(protocol, days, float(maturing[i]))
        reservation = reads.funding_rate + spec.lender_spread
        lendable = reads.lendable
        if lever[LEND] <= 0.0:
            lend[i] = lendable * (1.0 + lever[LEND])
        else:
            idle = max(lendable, reads.idle)
            lend[i] = lendable + lever[LEND] * (idle - lendable)
        ask[i] = reservation + lever[LEND_RATE] * half_span
        need, cash = reads.need, reads.cash
        borrow[i] = need * (1.0 + lever[BORROW])
        urgency = 1.0 if protocol.liquidity_shortfall > 0 else need / max(need + cash, 1.0)
        bid[i] = reservation + spec.distress_premium * urgency + lever[BORROW_RATE] * half_span
    low, high = spec.min_rate, spec.max_rate
    return Quotes(
        lend, np.minimum(np.maximum(ask, low), high), borrow, np.minimum(np.maximum(bid, low), high)
    )


def horizon_days(model: MarketModel) -> float:
    """The negotiation horizon in days (what the treasuries project over)."""
    return model.scenario.negotiation.horizon_hours / 24.0


def maturing_within_horizon(model: MarketModel) -> np.ndarray:
    """Per protocol: owed on its performing lines falling due within the horizon."""
    if not model.ledger.lines.count:
        return np.zeros(len(model.protocols))
    return model.ledger.maturing(model.step_index + horizon_steps(model))


def borrower_health(model: MarketModel, equity: np.ndarray | None = None) -> np.ndarray:
    """Each protocol's equity ratio over ``limits.healthy_equity_ratio``, in [0, 1]
    (``equity``: each protocol's ``equity()`` now, when the caller has read it)."""
    protocols = model.protocols.values()
    if equity is None:
        equity = np.array([p.equity() for p in protocols])
    ratio = equity / np.maximum([p.total_assets() for p in protocols], 1.0)
    return np.clip(ratio / model.scenario.negotiation.limits.healthy_equity_ratio, 0.0, 1.0)


def credit_limits(
    model: MarketModel, book: CreditBook, equity: np.ndarray | None = None
) -> np.ndarray:
    """``limit[i, j]``: more unsecured USD lender i gives borrower j (n x n, >= 0)
    (``equity``: each protocol's ``equity()`` now, when the caller has read it)."""
    limits = model.scenario.negotiation.limits
    if equity is None:
        equity = np.array([p.equity() for p in model.protocols.values()])
    health = borrower_health(model, equity)
    if book.equity_history:
        peak = np.max(np.vstack(book.equity_history), axis=0)
        loss = np.where(peak > 0, np.clip(1.0 - equity / np.where(peak > 0, peak, 1.0), 0, 1), 1)
        health *= np.clip(1.0 - loss / limits.loss_cutoff, 0.0, 1.0)
    cap = limits.max_exposure_to_equity * np.maximum(equity, 0.0)
    existing = model.ledger.unsecured_exposure() if model.ledger.lines.count else 0.0
    return np.maximum(np.outer(cap, health) - existing, 0.0)


def _round_book(agents: np.ndarray, amount: np.ndarray, rate: np.ndarray) -> LiquidityOrders | None:
    """Orders of the agents with at least a dollar left; None if there are none."""
    keep = amount >= MIN_ORDER_USD
    if not keep.any():
        return None
    return LiquidityOrders(agents[keep], amount[keep], rate[keep])


def _cap(
    matches: Matches,
    limit: np.ndarray,
    pledgeable: np.ndarray,
    haircut: float,
) -> tuple[Matches, np.ndarray, float]:
    """Cut matches to the lenders' limits; the excess is secured if the borrower can pledge.

    Walks the matches in order (a handful per step), updating ``limit`` and
    ``pledgeable`` in place. Returns the matches kept, their collateral and the USD cut.
    """
    amount = matches.amount.copy()
    collateral = np.zeros(len(matches))
    cut = 0.0
    for k in range(len(matches)):
        i, j = int(matches.lender[k]), int(matches.borrower[k])
        bare = min(amount[k], limit[i, j])
        limit[i, j] -= bare
        excess = amount[k] - bare
        if excess > 0 and haircut > 0:
            secured = min(excess, pledgeable[j] * (1.0 - haircut))
            pledgeable[j] -= secured / (1.0 - haircut)
            collateral[k] = secured / (1.0 - haircut)
            excess -= secured
        amount[k] -= excess
        cut += excess
    keep = amount >= MIN_ORDER_USD
    cut += float(amount[~keep].sum())
    kept = Matches(matches.lender[keep], matches.borrower[keep], amount[keep], matches.rate[keep])
    return kept, collateral[keep], cut


def run_rounds(
    model: MarketModel, quotes: Quotes, book: CreditBook, equity: np.ndarray
) -> tuple[Matches, np.ndarray]:
    """Rounds of quotes, clearing and limits; returns all matches and their collateral.

    ``equity`` is each protocol's ``equity()`` now (:func:`remember_equity`'s)."""
    spec = model.scenario.negotiation
    n = len(model.protocols)
    agents = np.arange(n, dtype=np.int64)
    lend, borrow = quotes.lend.copy(), quotes.borrow.copy()
    # Each side opens shaded by a quarter of the rate span and concedes evenly, so the
    # last round quotes the limits themselves.
    shade = 0.25 * (spec.max_rate - spec.min_rate)
    ask = np.minimum(quotes.ask_limit + shade, spec.max_rate)
    bid = np.maximum(quotes.bid_limit - shade, spec.min_rate)
    limit = credit_limits(model, book, equity)
    pledgeable = np.array([p.pledgeable_assets() for p in model.protocols.values()])
    if model.ledger.lines.count:
        pledgeable = np.maximum(pledgeable - model.ledger.pledged(), 0.0)
    parts: list[tuple[Matches, np.ndarray]] = []
    book.capped_usd = book.secured_usd = 0.0
    for r in range(1, spec.rounds + 1):
        if r == spec.rounds:
            ask, bid = quotes.ask_limit.copy(), quotes.bid_limit.copy()
        offers = _round_book(agents, lend, ask)
        requests = _round_book(agents, borrow, bid)
        if offers is None or requests is None:
            break
        matches = model.mechanism.clear(offers, requests, model.negotiation_rng)
        if len(matches):
            matches, collateral, cut = _cap(matches, limit, pledgeable, spec.secured_haircut)
            book.capped_usd = float(cut)  # the same unmet demand is cut again each round
            book.secured_usd += float(collateral.sum()) * (1.0 - spec.secured_haircut)
            lend -= np.bincount(matches.lender, matches.amount, minlength=n)
            borrow -= np.bincount(matches.borrower, matches.amount, minlength=n)
            parts.append((matches, collateral))
        # Seeing the book: the best quotes left on each side.
        open_ask = lend >= MIN_ORDER_USD
        open_bid = borrow >= MIN_ORDER_USD
        best_ask = float(ask[open_ask].min()) if open_ask.any() else None
        best_bid = float(bid[open_bid].max()) if open_bid.any() else None
        book.best_ask, book.best_bid = best_ask, best_bid
        # Revise: concede a share of the shading, and meet the other side's best quote
        # where it is within one's own limit.
        left = 1.0 - r / spec.rounds
        ask = np.maximum(quotes.ask_limit, np.minimum(ask, quotes.ask_limit + left * shade))
        bid = np.minimum(quotes.bid_limit, np.maximum(bid, quotes.bid_limit - left * shade))
        if best_bid is not None:
            ask = np.where(quotes.ask_limit <= best_bid, np.minimum(ask, best_bid), ask)
        if best_ask is not None:
            bid = np.where(quotes.bid_limit >= best_ask, np.maximum(bid, best_ask), bid)
    book.unmatched_need_usd = float(np.maximum(borrow, 0.0)[borrow >= MIN_ORDER_USD].sum())
    if not parts:
        return Matches.empty(), np.zeros(0)
    return (
        Matches(
            np.concatenate([m.lender for m, _ in parts]),
            np.concatenate([m.borrower for m, _ in parts]),
            np.concatenate([m.amount for m, _ in parts]),
            np.concatenate([m.rate for m, _ in parts]),
        ),
        np.concatenate([c for _, c in parts]),
    )


def remember_equity(model: MarketModel, book: CreditBook) -> np.ndarray:
    """Keep each protocol's equity of the last horizon of steps (for the loss signal);
    returns the equity now."""
    equity = np.array([p.equity() for p in model.protocols.values()])
    book.equity_history.append(equity)
    del book.equity_history[: -horizon_steps(model)]
    return equity


MARKET_CREDIT_FEATURES = ("credit.last_rate", "credit.best_bid", "credit.best_ask", "credit.volume")
"""What every agent sees of the credit market (rates annual, 0 where there was none;
volume as a share of the world's total assets at reset)."""
OWN_CREDIT_FEATURES = ("credit.projected_need", "credit.counterparty_health")
"""Each agent's own view: its projected need over the horizon (share of its assets at
reset) and the exposure-weighted health of the protocols it lent to (1 when none)."""


def credit_observation(
    model: MarketModel, scale: Sequence[float]
) -> tuple[list[float], list[list[float]]]:
    """The credit-market part of every agent's observation, as plain floats.

    Returns the market features (:data:`MARKET_CREDIT_FEATURES`) and, per protocol, its
    own (:data:`OWN_CREDIT_FEATURES`), ``scale`` being each protocol's assets at reset.
    Health is a borrower's equity ratio over ``limits.healthy_equity_ratio``, in [0, 1],
    as the lenders' limits read it.
    """
    book = model.credit_book
    market = [
        book.last_rate or 0.0,
        book.best_bid or 0.0,
        book.best_ask or 0.0,
        book.volume_usd / max(math.fsum(scale), 1.0),
    ]
    protocols = list(model.protocols.values())
    days = horizon_days(model)
    maturing = maturing_within_horizon(model).tolist()
    if model.ledger.lines.count:
        claims = model.ledger.liabilities().T  # claims[i, j]: what j owes lender i
        lent = claims.sum(axis=1)
        weighted = claims @ borrower_health(model)
        counterparty = np.where(lent > 0, weighted / np.where(lent > 0, lent, 1.0), 1.0).tolist()
    else:
        counterparty = [1.0] * len(protocols)
    own = [
        [p.projected_need(days, m) / max(s, 1.0), c]
        for p, m, c, s in zip(protocols, maturing, counterparty, scale, strict=True)
    ]
    return market, own
