"""Tests for liqnet.market.negotiation (liquidity order clearing)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.market.negotiation import (
    MECHANISMS,
    BilateralBargaining,
    CallAuction,
    LiquidityOrders,
    Matches,
    NegotiationMechanism,
    _net_several_orders,
    get_mechanism,
    net_self_orders,
)


def book(*orders: tuple[int, float, float]) -> LiquidityOrders:
    """Build one side of the book from (agent, amount, rate) triples."""
    if not orders:
        return LiquidityOrders.empty()
    agent, amount, rate = zip(*orders, strict=True)
    return LiquidityOrders(np.array(agent), np.array(amount), np.array(rate))


def as_set(m: Matches) -> set[tuple[int, int, float, float]]:
    """Matches as a set of rounded (lender, borrower, amount, rate) tuples."""
    return {
        (int(i), int(j), round(float(a), 9), round(float(r), 12))
        for i, j, a, r in zip(m.lender, m.borrower, m.amount, m.rate, strict=True)
    }


def auction(offers: LiquidityOrders, requests: LiquidityOrders) -> Matches:
    return CallAuction().clear(offers, requests, np.random.default_rng(0))


# --- call auction: golden books ---------------------------------------------------------


def test_auction_rate_is_midpoint_of_marginal_ask_and_bid() -> None:
    """Asks 2% x100, 5% x50; bids 6% x60, 4% x40, 1% x10.

    The 2% ask meets exactly the 6% and 4% bids (Q = 100); the next ask (5%) is above the
    next bid (1%), so any rate in [2%, 4%] clears and the midpoint is 3%.
    """
    m = auction(
        book((0, 100.0, 0.02), (1, 50.0, 0.05)),
        book((2, 60.0, 0.06), (3, 40.0, 0.04), (4, 10.0, 0.01)),
    )
    assert as_set(m) == {(0, 2, 60.0, 0.03), (0, 3, 40.0, 0.03)}
    assert m.total == pytest.approx(100.0)


def test_auction_part_filled_ask_sets_the_rate_and_splits_pro_rata() -> None:
    """Asks 2% x100, 3% x50, 5% x100; bids 6% x80, 4% x60, 1% x100.

    Q = 140: the 3% ask is part-filled (40 of 50), which pins the rate to 3%. The
    borrowers' 80 and 60 are split 100:40 across the two filled lenders.
    """
    m = auction(
        book((0, 100.0, 0.02), (1, 50.0, 0.03), (2, 100.0, 0.05)),
        book((3, 80.0, 0.06), (4, 60.0, 0.04), (5, 100.0, 0.01)),
    )
    assert as_set(m) == {
        (0, 3, round(400 / 7, 9), 0.03),
        (0, 4, round(300 / 7, 9), 0.03),
        (1, 3, round(160 / 7, 9), 0.03),
        (1, 4, round(120 / 7, 9), 0.03),
    }


def test_auction_pro_rata_on_the_long_bid_level() -> None:
    """One 1% ask of 100 against 200 bid at 5%: rate 5%, each bid fills 50%."""
    m = auction(book((0, 100.0, 0.01)), book((1, 60.0, 0.05), (2, 90.0, 0.05), (3, 50.0, 0.05)))
    assert as_set(m) == {(0, 1, 30.0, 0.05), (0, 2, 45.0, 0.05), (0, 3, 25.0, 0.05)}


def test_auction_pro_rata_on_the_long_ask_level() -> None:
    """Asks 1% x40, 2% x30, 2% x90 against a 4% bid of 100: the 2% level gets 60 of 120."""
    m = auction(book((0, 40.0, 0.01), (1, 30.0, 0.02), (2, 90.0, 0.02)), book((3, 100.0, 0.04)))
    assert as_set(m) == {(0, 3, 40.0, 0.02), (1, 3, 15.0, 0.02), (2, 3, 45.0, 0.02)}


def test_auction_unfilled_bid_bounds_the_rate_from_below() -> None:
    """Ask 1% x10, bids 5% x10 and 4% x10: the rejected 4% bid must not beat the rate."""
    m = auction(book((0, 10.0, 0.01)), book((1, 10.0, 0.05), (2, 10.0, 0.04)))
    assert as_set(m) == {(0, 1, 10.0, 0.045)}


def test_auction_touching_quotes_trade_at_that_rate() -> None:
    m = auction(book((0, 10.0, 0.03)), book((1, 4.0, 0.03)))
    assert as_set(m) == {(0, 1, 4.0, 0.03)}


@pytest.mark.parametrize("mechanism", [CallAuction(), BilateralBargaining()])
def test_no_trade_when_every_bid_is_below_every_ask(mechanism: NegotiationMechanism) -> None:
    offers = book((0, 10.0, 0.05), (1, 10.0, 0.06))
    requests = book((2, 10.0, 0.04), (3, 10.0, 0.01))
    m = mechanism.clear(offers, requests, np.random.default_rng(1))
    assert len(m) == 0
    assert m.total == 0.0


@pytest.mark.parametrize("mechanism", [CallAuction(), BilateralBargaining()])
def test_empty_sides(mechanism: NegotiationMechanism) -> None:
    rng = np.random.default_rng(0)
    assert len(mechanism.clear(LiquidityOrders.empty(), book((0, 1.0, 0.1)), rng)) == 0
    assert len(mechanism.clear(book((0, 1.0, 0.1)), LiquidityOrders.empty(), rng)) == 0


# --- self-matching ----------------------------------------------------------------------


def test_net_self_orders_cuts_least_competitive_orders_first() -> None:
    """Agent 0 offers 50@1% and 50@3% and requests 70: the 3% offer goes first."""
    offers, requests = net_self_orders(
        book((0, 50.0, 0.01), (0, 50.0, 0.03), (1, 5.0, 0.02)),
        book((0, 70.0, 0.10), (2, 8.0, 0.04)),
    )
    assert offers.agent.tolist() == [0, 1]
    assert offers.amount.tolist() == [30.0, 5.0]
    assert offers.rate.tolist() == [0.01, 0.02]
    assert requests.agent.tolist() == [2]
    assert requests.amount.tolist() == [8.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1e-3, 1e9), st.floats(0.0, 2.0)), min_size=0, max_size=6),
    st.lists(st.tuples(st.floats(1e-3, 1e9), st.floats(0.0, 2.0)), min_size=0, max_size=6),
    st.randoms(use_true_random=False),
)
def test_one_order_per_agent_nets_as_the_general_rule(
    lend: list[tuple[float, float]], borrow: list[tuple[float, float]], rnd: Any
) -> None:
    """Books with one order per agent and side (what the treasury rule sends) take the
    short path; it gives exactly the general rule's books, dust dropped alike."""
    lenders, borrowers = rnd.sample(range(8), len(lend)), rnd.sample(range(8), len(borrow))
    lent = dict(zip(lenders, (x for x, _ in lend), strict=True))
    for k, agent in enumerate(borrowers):  # an agent's two orders equal, or all but dust
        if agent in lent and rnd.random() < 0.5:
            borrow[k] = (lent[agent] * rnd.choice((1.0, 1.0 + 1e-13)), borrow[k][1])
    offers = book(*((a, x, r) for a, (x, r) in zip(lenders, lend, strict=True)))
    requests = book(*((a, x, r) for a, (x, r) in zip(borrowers, borrow, strict=True)))
    short = net_self_orders(offers, requests)
    general = _net_several_orders(offers, requests)
    for got, want in zip(short, general, strict=True):
        for field in ("agent", "amount", "rate"):
            assert getattr(got, field).tolist() == getattr(want, field).tolist()


@pytest.mark.parametrize(
    ("mechanism", "rate"),
    [(CallAuction(), 0.01), (BilateralBargaining(rounds=2, lender_patience=0.5), 0.03)],
)
def test_agent_never_lends_to_itself(mechanism: NegotiationMechanism, rate: float) -> None:
    """Agent 0 funds its own 30 request from its 100 offer; 70 is left for agent 1.

    The auction has 70 offered against 50 bid, so the rate is pinned to the 1% ask; the
    bargaining lender gets half the 1%-5% surplus.
    """
    offers = book((0, 100.0, 0.01))
    requests = book((0, 30.0, 0.10), (1, 50.0, 0.05))
    m = mechanism.clear(offers, requests, np.random.default_rng(0))
    assert as_set(m) == {(0, 1, 50.0, rate)}


# --- bilateral bargaining ---------------------------------------------------------------


def test_bargaining_golden_book() -> None:
    """Same book as the part-filled auction; 4 rounds at 0.9 give the lender 0.819.

    Borrower 3 (6%) takes 80 from lender 0 (2%); borrower 4 (4%) takes the last 20 from
    lender 0, then 40 from lender 1 (3%); borrower 5 (1%) is below every remaining ask.
    """
    mech = BilateralBargaining()
    assert mech.lender_share() == pytest.approx(0.9 * (1 - 0.9 + 0.9 * 0.9))
    m = mech.clear(
        book((0, 100.0, 0.02), (1, 50.0, 0.03), (2, 100.0, 0.05)),
        book((3, 80.0, 0.06), (4, 60.0, 0.04), (5, 100.0, 0.01)),
        np.random.default_rng(0),
    )
    assert as_set(m) == {
        (0, 3, 80.0, round(0.02 + 0.819 * 0.04, 12)),
        (0, 4, 20.0, round(0.02 + 0.819 * 0.02, 12)),
        (1, 4, 40.0, round(0.03 + 0.819 * 0.01, 12)),
    }


def test_one_round_proposer_takes_all() -> None:
    """With one round the borrower (first proposer) pays exactly the ask."""
    mech = BilateralBargaining(rounds=1, lender_patience=0.99, borrower_patience=0.1)
    assert mech.lender_share() == 0.0
    m = mech.clear(book((0, 10.0, 0.02)), book((1, 10.0, 0.08)), np.random.default_rng(0))
    assert as_set(m) == {(0, 1, 10.0, 0.02)}


@pytest.mark.parametrize(
    ("rounds", "d_lender", "d_borrower", "share"),
    [(2, 0.7, 0.2, 0.7), (3, 0.7, 0.5, 0.7 * 0.5), (4, 0.5, 0.5, 0.5 * 0.75)],
)
def test_lender_share_backward_induction(
    rounds: int, d_lender: float, d_borrower: float, share: float
) -> None:
    mech = BilateralBargaining(rounds, d_lender, d_borrower)
    assert mech.lender_share() == pytest.approx(share)


@pytest.mark.parametrize("rounds", [2, 3, 4, 5, 10])
def test_patient_side_gets_more(rounds: int) -> None:
    grid = np.linspace(0.05, 0.95, 10)
    lender = [BilateralBargaining(rounds, d, 0.6).lender_share() for d in grid]
    borrower = [1 - BilateralBargaining(rounds, 0.6, d).lender_share() for d in grid]
    assert np.all(np.diff(lender) > 0)
    if rounds >= 3:  # with 2 rounds the borrower's patience never enters
        assert np.all(np.diff(borrower) > 0)
    assert all(0.0 <= s <= 1.0 for s in lender + borrower)


def test_bargaining_ties_broken_by_rng_and_deterministic_given_seed() -> None:
    offers = book((0, 10.0, 0.01))
    requests = book((1, 10.0, 0.05), (2, 10.0, 0.05))
    mech = BilateralBargaining()
    winners = {
        int(mech.clear(offers, requests, np.random.default_rng(s)).borrower[0]) for s in range(20)
    }
    assert winners == {1, 2}
    a = mech.clear(offers, requests, np.random.default_rng(7))
    b = mech.clear(offers, requests, np.random.default_rng(7))
    for field in ("lender", "borrower", "amount", "rate"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# --- data classes, validation, registry -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 1], [1.0, -1.0], [0.1, 0.1]), "LiquidityOrders.amount must be > 0"),
        (([0, 1], [1.0, 0.0], [0.1, 0.1]), "LiquidityOrders.amount must be > 0"),
        (([0, 1], [1.0, np.nan], [0.1, 0.1]), "LiquidityOrders.amount must be finite"),
        (([0, 1], [1.0, 1.0], [0.1, -0.1]), "LiquidityOrders.rate must be >= 0"),
        (([0, 1], [1.0, 1.0], [np.nan, 0.1]), "LiquidityOrders.rate must be finite"),
        (([0, 1], [1.0], [0.1, 0.1]), "LiquidityOrders.amount has length 1"),
        (([0, 1], [1.0, 1.0], [0.1]), "LiquidityOrders.rate has length 1"),
        (([0.5, 1], [1.0, 1.0], [0.1, 0.1]), "LiquidityOrders.agent must be a 1-D integer"),
        (([-1, 1], [1.0, 1.0], [0.1, 0.1]), "LiquidityOrders.agent must be non-negative"),
    ],
)
def test_orders_validation(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LiquidityOrders(*(np.array(a) for a in args))


def test_orders_are_frozen_copies() -> None:
    amount = np.array([1.0, 2.0])
    orders = LiquidityOrders(np.array([0, 1]), amount, np.array([0.1, 0.2]))
    amount[0] = 99.0
    assert orders.amount[0] == 1.0
    with pytest.raises(ValueError):
        orders.amount[0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        orders.rate = np.zeros(2)  # type: ignore[misc]


def test_matches_empty_and_total() -> None:
    assert len(Matches.empty()) == 0
    assert Matches.empty().total == 0.0
    assert Matches([0], [1], [2.5], [0.1]).total == 2.5


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
        ({"lender_patience": 1.5}, "lender_patience"),
        ({"borrower_patience": -0.1}, "borrower_patience"),
        ({"borrower_patience": float("nan")}, "borrower_patience"),
    ],
)
def test_bargaining_validation(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BilateralBargaining(**params)


def test_registry_and_plugins() -> None:
    assert MECHANISMS["call_auction"] is CallAuction
    assert MECHANISMS["bilateral_bargaining"] is BilateralBargaining
    mech = get_mechanism("bilateral_bargaining", rounds=2, lender_patience=0.3)
    assert isinstance(mech, BilateralBargaining)
    assert mech.lender_share() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="allowed: bilateral_bargaining, call_auction"):
        get_mechanism("dutch")

    class NoTrade(NegotiationMechanism):
        name = "test_no_trade"

        def clear(self, offers, requests, rng):
            return Matches.empty()

    try:
        assert isinstance(get_mechanism("test_no_trade"), NoTrade)
        with pytest.raises(ValueError, match="already registered"):
            type("Other", (NegotiationMechanism,), {"name": "call_auction", "clear": NoTrade.clear})
    finally:
        MECHANISMS.unregister("test_no_trade")


# --- properties on random books ---------------------------------------------------------

# A coarse rate grid makes equal rates (ties, pro-rata levels) common.
_rate = st.sampled_from([0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1])
_amount = st.floats(0.01, 1000.0, allow_nan=False, allow_subnormal=False)


@st.composite
def books(draw: st.DrawFn, *, one_order_per_agent: bool) -> tuple[LiquidityOrders, ...]:
    """Random (offers, requests); agents overlap unless ``one_order_per_agent``."""
    sides = []
    for side in range(2):
        k = draw(st.integers(0, 6))
        if one_order_per_agent:  # offers from agents 0-5, requests from 10-15
            agent = 10 * side + np.arange(k)
        else:
            agent = np.array(draw(st.lists(st.integers(0, 4), min_size=k, max_size=k)), int)
        amount = draw(st.lists(_amount, min_size=k, max_size=k))
        rate = draw(st.lists(_rate, min_size=k, max_size=k))
        sides.append(LiquidityOrders(agent, np.array(amount), np.array(rate)))
    return tuple(sides)


def per_agent(agent: np.ndarray, amount: np.ndarray) -> dict[int, float]:
    out: dict[int, float] = {}
    for a, x in zip(agent.tolist(), amount.tolist(), strict=True):
        out[a] = out.get(a, 0.0) + x
    return out


def max_volume(offers: LiquidityOrders, requests: LiquidityOrders) -> float:
    """Brute force: the largest min(supply, demand) at any single rate."""
    rates = np.concatenate([offers.rate, requests.rate])
    return max(
        (
            min(offers.amount[offers.rate <= r].sum(), requests.amount[requests.rate >= r].sum())
            for r in rates
        ),
        default=0.0,
    )


@settings(max_examples=150, deadline=None)
@given(books(one_order_per_agent=False), st.sampled_from(["auction", "bargaining"]))
def test_conservation_and_no_self_matches(
    sides: tuple[LiquidityOrders, LiquidityOrders], kind: str
) -> None:
    offers, requests = sides
    mech = CallAuction() if kind == "auction" else BilateralBargaining(3, 0.8, 0.6)
    m = mech.clear(offers, requests, np.random.default_rng(3))
    tol = 1e-9 * (1.0 + offers.amount.sum() + requests.amount.sum())
    assert np.all(m.amount > 0)
    assert not np.any(m.lender == m.borrower)
    # Netting leaves every agent on one side only.
    assert not set(m.lender.tolist()) & set(m.borrower.tolist())
    offered, requested = (
        per_agent(offers.agent, offers.amount),
        per_agent(requests.agent, requests.amount),
    )
    for agent, lent in per_agent(m.lender, m.amount).items():
        assert lent <= offered[agent] + tol
        assert m.rate[m.lender == agent].min() >= offers.rate[offers.agent == agent].min()
    for agent, borrowed in per_agent(m.borrower, m.amount).items():
        assert borrowed <= requested[agent] + tol
        assert m.rate[m.borrower == agent].max() <= requests.rate[requests.agent == agent].max()
    lent_total = sum(per_agent(m.lender, m.amount).values())
    borrowed_total = sum(per_agent(m.borrower, m.amount).values())
    assert lent_total == pytest.approx(borrowed_total, abs=tol)
    assert m.total == pytest.approx(lent_total, abs=tol)


@settings(max_examples=150, deadline=None)
@given(books(one_order_per_agent=True), st.integers(0, 2**32 - 1))
def test_auction_and_bargaining_properties(
    sides: tuple[LiquidityOrders, LiquidityOrders], seed: int
) -> None:
    offers, requests = sides
    tol = 1e-9 * (1.0 + offers.amount.sum() + requests.amount.sum())
    volume = max_volume(offers, requests)

    m = CallAuction().clear(offers, requests, np.random.default_rng(seed))
    assert m.total == pytest.approx(volume, abs=tol)
    assert len(set(m.rate.tolist())) <= 1  # one uniform rate
    if len(m):
        rate = m.rate[0]
        lent, borrowed = per_agent(m.lender, m.amount), per_agent(m.borrower, m.amount)
        # Orders strictly better than the rate fill fully; strictly worse ones not at all.
        for orders, filled, sign in ((offers, lent, 1.0), (requests, borrowed, -1.0)):
            for a, x, r in zip(orders.agent, orders.amount, orders.rate, strict=True):
                got = filled.get(int(a), 0.0)
                if sign * (rate - r) > 0:
                    assert got == pytest.approx(x, abs=tol)
                elif sign * (rate - r) < 0:
                    assert got == 0.0

    mech = BilateralBargaining(4, 0.9, 0.8)
    b = mech.clear(offers, requests, np.random.default_rng(seed))
    assert b.total == pytest.approx(volume, abs=tol)  # the greedy walk reaches Q too
    ask = dict(zip(offers.agent.tolist(), offers.rate.tolist(), strict=True))
    bid = dict(zip(requests.agent.tolist(), requests.rate.tolist(), strict=True))
    for i, j, r in zip(b.lender.tolist(), b.borrower.tolist(), b.rate.tolist(), strict=True):
        assert ask[i] - 1e-15 <= r <= bid[j] + 1e-15
        assert r == pytest.approx(ask[i] + mech.lender_share() * (bid[j] - ask[i]))
    again = mech.clear(offers, requests, np.random.default_rng(seed))
    assert as_set(again) == as_set(b)


def test_bargaining_rounds_are_bounded() -> None:
    # Issue 19: every count is bounded; a 1e15-round game walked 1e15 rounds.
    from liqnet.market.bargaining import BilateralBargaining

    with pytest.raises(ValueError, match=r"rounds must be an integer in \[1, 1000\]"):
        BilateralBargaining(rounds=10**15)
    assert BilateralBargaining(rounds=1000).rounds == 1000
