"""Alternating-offers bilateral bargaining between borrowers and lenders.

A :class:`~liqnet.market.negotiation.NegotiationMechanism` (registered as
``"bilateral_bargaining"``), kept in its own module; :mod:`liqnet.market.negotiation`
imports it so the registry always knows it.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from liqnet.market.negotiation import (
    LiquidityOrders,
    Matches,
    NegotiationMechanism,
    crossed_book,
)


class BilateralBargaining(NegotiationMechanism):
    """Sequential bilateral bargaining between the best remaining counterparties.

    Borrowers in descending order of bid meet lenders in ascending order of ask (ties on
    either side broken by ``rng``); each pair with ask <= bid trades min(remaining
    request, remaining offer). Walking both sorted books this way is the same as cutting
    their cumulative amounts at common breakpoints, so it is done with ``searchsorted``.

    The rate splits the surplus (bid - ask) by finite-horizon alternating offers
    (Rubinstein 1982, solved by backward induction): the borrower proposes first, the
    sides alternate for ``rounds`` rounds, and the last proposer takes all that is left.
    A more patient side (higher discount factor) gets a larger share.

    Args:
        rounds: number of bargaining rounds, >= 1.
        lender_patience: lender's per-round discount factor in [0, 1].
        borrower_patience: borrower's per-round discount factor in [0, 1].
    """

    name = "bilateral_bargaining"

    def __init__(
        self, rounds: int = 4, lender_patience: float = 0.9, borrower_patience: float = 0.9
    ) -> None:
        """Validate the bargaining parameters."""
        # At most 1000 rounds: backward induction walks every round (issue 19: counts are
        # bounded, a 1e15-round game would never return).
        if isinstance(rounds, bool) or not isinstance(rounds, Integral) or not 1 <= rounds <= 1000:
            raise ValueError(f"rounds must be an integer in [1, 1000]; got {rounds!r}")
        for field, value in (
            ("lender_patience", lender_patience),
            ("borrower_patience", borrower_patience),
        ):
            if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be a number in [0, 1]; got {value!r}")
        self.rounds: int = int(rounds)
        self.lender_patience: float = float(lender_patience)
        self.borrower_patience: float = float(borrower_patience)

    def lender_share(self) -> float:
        """The lender's share of the surplus in the subgame-perfect equilibrium.

        Backward induction: the proposer of the last round takes everything; in an
        earlier round the proposer offers the responder exactly the discounted value of
        what the responder would take as next round's proposer, and keeps the rest.
        """
        proposer_share = 1.0
        for t in range(self.rounds - 1, 0, -1):  # rounds are numbered 1..rounds
            # Round t's responder is the proposer of round t + 1; borrower proposes odd t.
            responder_patience = self.lender_patience if t % 2 else self.borrower_patience
            proposer_share = 1.0 - responder_patience * proposer_share
        return 1.0 - proposer_share  # the borrower proposes in round 1

    def clear(
        self, offers: LiquidityOrders, requests: LiquidityOrders, rng: np.random.Generator
    ) -> Matches:
        """Match best bids with best asks pairwise; see the class docstring."""
        book = crossed_book(offers, requests, rng)
        if book is None:
            return Matches.empty()
        offers, requests, ask_order, bid_order, ask_rate, bid_rate, A, B, tol, Q = book
        # Each segment between consecutive breakpoints of the two cumulative curves (up to
        # Q) is one (lender order, borrower order) pair of the sequential walk.
        ends = np.union1d(np.concatenate([A, B]), [Q])
        ends = ends[ends <= Q]
        starts = np.concatenate([[0.0], ends[:-1]])
        amount = ends - starts
        keep = amount > tol  # breakpoints equal up to round-off give dust segments
        mid = 0.5 * (starts + ends)[keep]
        ia = np.searchsorted(A, mid, side="left")
        ib = np.searchsorted(B, mid, side="left")
        ask, bid = ask_rate[ia], bid_rate[ib]
        return Matches(
            lender=offers.agent[ask_order[ia]],
            borrower=requests.agent[bid_order[ib]],
            amount=amount[keep],
            rate=ask + self.lender_share() * (bid - ask),
        )
