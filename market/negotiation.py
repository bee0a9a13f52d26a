"""Clearing of inter-protocol liquidity orders into bilateral credit lines.

Each world step every protocol agent may offer idle cash at a minimum annual rate (an
*offer*, or ask) and request credit at a maximum annual rate (a *request*, or bid). A
`NegotiationMechanism` turns both order books into bilateral `Matches`.

Self-matching is excluded by construction: `net_self_orders` first nets an agent's own
offers against its own requests (it funds its own need from its own idle cash, which
beats lending and borrowing at a spread), so after netting no agent is on both sides.
Every built-in mechanism calls it; a plug-in mechanism should too.

New mechanisms plug in by subclassing `NegotiationMechanism` with a class attribute
``name``; the subclass registers itself in `MECHANISMS` and `get_mechanism` finds it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from liqnet.core.registry import Registry

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

# Quantities closer than this (relative to the larger book) are treated as equal, so that
# cumulative-sum round-off cannot decide whether an order level is exhausted or rationed.
_QTY_RTOL = 1e-12


def _freeze(obj: object, **arrays: NDArray) -> None:
    """Check that ``arrays`` share one length, then store them read-only on ``obj``."""
    cls = type(obj).__name__
    first = next(iter(arrays))
    n = arrays[first].shape[0]
    for field, arr in arrays.items():
        if arr.shape != (n,):
            raise ValueError(
                f"{cls}.{field} has length {arr.shape[0]} but {cls}.{first} has length {n}; "
                "they must match"
            )
        arr.setflags(write=False)  # the dataclass is frozen; its arrays should be too
        object.__setattr__(obj, field, arr)


def _int_array(value: ArrayLike, field: str) -> IntArray:
    """Convert to a 1-D non-negative int64 array or raise a ValueError naming ``field``."""
    arr = np.array(value)
    if arr.size == 0:
        arr = arr.astype(np.int64)  # np.array([]) is float; an empty book is fine
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"{field} must be a 1-D integer array; got {arr.dtype} {arr.shape}")
    # (ndarray methods, not np.any/np.all: books are built every clearing round, and
    # the functions' wrappers cost more than the checks on a handful of orders.)
    if (arr < 0).any():
        raise ValueError(f"{field} must be non-negative agent indices")
    return arr.astype(np.int64)


def _float_array(value: ArrayLike, field: str, *, positive: bool) -> FloatArray:
    """Convert to a 1-D finite float array, >= 0 (or > 0 with ``positive``)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} must be a 1-D numeric array") from exc
    if arr.ndim != 1:
        raise ValueError(f"{field} must be a 1-D array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{field} must be finite (no NaN or inf)")
    if (arr <= 0).any() if positive else (arr < 0).any():
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{field} must be {bound}; smallest entry is {arr.min()!r}")
    return arr


@dataclass(frozen=True, eq=False)
class LiquidityOrders:
    """One side of the book, as struct-of-arrays (arrays are copied and read-only).

    Attributes:
        agent: (k,) integer index of the agent placing each order; an agent may place
            several orders.
        amount: (k,) USD, > 0.
        rate: (k,) annual rate, >= 0: the minimum accepted for an offer, the maximum
            paid for a request.
    """

    agent: IntArray
    amount: FloatArray
    rate: FloatArray

    def __post_init__(self) -> None:
        """Validate and copy the arrays; raise ValueError naming the bad field."""
        _freeze(
            self,
            agent=_int_array(self.agent, "LiquidityOrders.agent"),
            amount=_float_array(self.amount, "LiquidityOrders.amount", positive=True),
            rate=_float_array(self.rate, "LiquidityOrders.rate", positive=False),
        )

    def __len__(self) -> int:
        """Number of orders."""
        return int(self.agent.shape[0])

    @classmethod
    def empty(cls) -> LiquidityOrders:
        """A book side with no orders."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


@dataclass(frozen=True, eq=False)
class Matches:
    """Bilateral credit lines produced by a mechanism (struct-of-arrays, read-only).

    A (lender, borrower) pair may appear in several rows (bargaining gives one row per
    pair of orders); `CallAuction` aggregates to one row per pair.

    Attributes:
        lender: (m,) agent index of the lender.
        borrower: (m,) agent index of the borrower.
        amount: (m,) USD lent.
        rate: (m,) annual rate agreed.
    """

    lender: IntArray
    borrower: IntArray
    amount: FloatArray
    rate: FloatArray

    def __post_init__(self) -> None:
        """Normalise dtypes and check that all four arrays have one length."""
        _freeze(
            self,
            lender=_int_array(self.lender, "Matches.lender"),
            borrower=_int_array(self.borrower, "Matches.borrower"),
            amount=_float_array(self.amount, "Matches.amount", positive=False),
            rate=_float_array(self.rate, "Matches.rate", positive=False),
        )

    def __len__(self) -> int:
        """Number of bilateral matches."""
        return int(self.lender.shape[0])

    @property
    def total(self) -> float:
        """Total USD matched."""
        return float(self.amount.sum())

    @classmethod
    def empty(cls) -> Matches:
        """No matches."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


def _reduce_per_agent(
    orders: LiquidityOrders, agents: IntArray, cut: FloatArray, first_key: FloatArray
) -> LiquidityOrders:
    """Remove ``cut[k]`` USD from the orders of ``agents[k]``, smallest ``first_key`` first."""
    member = np.isin(orders.agent, agents)
    idx = np.flatnonzero(member)
    # Group the affected orders by agent, within an agent in the order they are cut.
    idx = idx[np.lexsort((first_key[idx], orders.agent[idx]))]
    group = np.searchsorted(agents, orders.agent[idx])
    amount = orders.amount[idx]
    before = np.cumsum(amount) - amount  # cumulative amount before each order, all groups
    group_start = np.searchsorted(group, np.arange(agents.size))
    before -= before[group_start][group]  # ... made relative to the order's own group
    taken = np.clip(cut[group] - before, 0.0, amount)
    new_amount = orders.amount.copy()
    new_amount[idx] = amount - taken
    # Drop fully netted orders, and round-off dust left by the subtraction.
    keep = new_amount > _QTY_RTOL * orders.amount
    return LiquidityOrders(orders.agent[keep], new_amount[keep], orders.rate[keep])


def net_self_orders(
    offers: LiquidityOrders, requests: LiquidityOrders
) -> tuple[LiquidityOrders, LiquidityOrders]:
    """Net each agent's offers against its own requests so no agent is on both sides.

    An agent offering O and requesting R uses min(O, R) of its own idle cash for its own
    need. The cut is taken from its least competitive orders first (highest asks, lowest
    bids), so the quotes it keeps in the book are its best ones.

    Args:
        offers: lending side.
        requests: borrowing side.

    Returns:
        The netted ``(offers, requests)``; unchanged when no agent is on both sides.
    """
    lenders, borrowers = offers.agent.tolist(), requests.agent.tolist()
    if len(set(lenders)) == len(lenders) and len(set(borrowers)) == len(borrowers):
        # One order per agent and side (the treasury rule's books): the same cuts with
        # a few Python floats instead of some twenty NumPy calls on arrays of a handful.
        offered = dict(zip(lenders, offers.amount.tolist(), strict=True))
        requested = dict(zip(borrowers, requests.amount.tolist(), strict=True))
        cut = {a: min(offered[a], requested[a]) for a in offered.keys() & requested.keys()}
        if not cut:
            return offers, requests
        return _cut_single_orders(offers, lenders, cut), _cut_single_orders(
            requests, borrowers, cut
        )
    return _net_several_orders(offers, requests)


def _cut_single_orders(
    orders: LiquidityOrders, agents: list[int], cut: dict[int, float]
) -> LiquidityOrders:
    """Take ``cut[agent]`` off each agent's one order, as :func:`_reduce_per_agent` does
    (the whole cut falls on it), dropping what is left as dust."""
    amount = orders.amount - np.array([cut.get(agent, 0.0) for agent in agents])
    keep = amount > _QTY_RTOL * orders.amount
    return LiquidityOrders(orders.agent[keep], amount[keep], orders.rate[keep])


def _net_several_orders(
    offers: LiquidityOrders, requests: LiquidityOrders
) -> tuple[LiquidityOrders, LiquidityOrders]:
    """:func:`net_self_orders` for books where an agent may have several orders a side."""
    both = np.intersect1d(offers.agent, requests.agent)
    if both.size == 0:
        return offers, requests

    def totals(orders: LiquidityOrders) -> FloatArray:
        mask = np.isin(orders.agent, both)
        pos = np.searchsorted(both, orders.agent[mask])
        return _weighted_bincount(pos, orders.amount[mask], both.size)

    cut = np.minimum(totals(offers), totals(requests))
    return (
        _reduce_per_agent(offers, both, cut, -offers.rate),
        _reduce_per_agent(requests, both, cut, requests.rate),
    )


def _sort_book(
    offers: LiquidityOrders, requests: LiquidityOrders, rng: np.random.Generator | None
) -> tuple[IntArray, IntArray]:
    """Orders of asks by ascending and bids by descending rate; ``rng`` shuffles ties."""
    if rng is None:
        return np.argsort(offers.rate, kind="stable"), np.argsort(-requests.rate, kind="stable")
    # Shuffle, then stable-sort: equal rates end up in a random (seeded) order.
    ask_perm, bid_perm = rng.permutation(len(offers)), rng.permutation(len(requests))
    return (
        ask_perm[np.argsort(offers.rate[ask_perm], kind="stable")],
        bid_perm[np.argsort(-requests.rate[bid_perm], kind="stable")],
    )


def _cross(
    A: FloatArray, ask_rate: FloatArray, B: FloatArray, bid_rate: FloatArray, tol: float
) -> float:
    """Crossing volume Q of sorted asks and bids, given their cumulative amounts A and B.

    Unit q of supply costs ``a(q)`` (non-decreasing) and unit q of demand pays ``b(q)``
    (non-increasing), so the tradeable units are exactly (0, Q] and Q is one of the
    cumulative-amount breakpoints of either side: test them all with ``searchsorted``.

    Returns:
        Q, or 0.0 when no unit trades (every bid below every ask).
    """
    cap = min(A[-1], B[-1])
    candidates = np.concatenate([A, B])
    candidates = candidates[candidates <= cap + tol]
    feasible = (
        ask_rate[np.searchsorted(A, candidates - tol)]
        <= bid_rate[np.searchsorted(B, candidates - tol)]
    )
    return min(float(candidates[feasible].max(initial=0.0)), float(cap))


def _level_fills(
    amount: FloatArray, rate: FloatArray, marginal: float, better: NDArray[np.bool_], volume: float
) -> FloatArray:
    """Fill orders strictly better than the marginal level fully, the level pro rata."""
    at = rate == marginal
    full = np.where(better, amount, 0.0)
    level = amount[at].sum()
    share = np.clip((volume - full.sum()) / level, 0.0, 1.0) if level > 0 else 0.0
    return np.where(at, amount * share, full)


def _weighted_bincount(index: NDArray[np.intp], weights: FloatArray, size: int) -> FloatArray:
    """Sums of ``weights`` per value of ``index`` in ``[0, size)`` (``np.bincount``)."""
    # With weights np.bincount returns float64; NumPy's stubs type every result as intp.
    return cast(FloatArray, np.bincount(index, weights=weights, minlength=size))


def _per_agent(agent: IntArray, fill: FloatArray) -> tuple[IntArray, FloatArray]:
    """Sum fills by agent, keeping agents with a positive fill."""
    ids, inverse = np.unique(agent, return_inverse=True)
    totals = _weighted_bincount(inverse.ravel(), fill, ids.size)
    keep = totals > 0
    return ids[keep], totals[keep]


class CrossedBook(NamedTuple):
    """Both books netted, sorted best first, with cumulative amounts and crossing size."""

    offers: LiquidityOrders
    requests: LiquidityOrders
    ask_order: IntArray
    bid_order: IntArray
    ask_rate: FloatArray
    bid_rate: FloatArray
    cum_offers: FloatArray
    cum_requests: FloatArray
    tol: float
    quantity: float


def crossed_book(
    offers: LiquidityOrders, requests: LiquidityOrders, rng: np.random.Generator | None
) -> CrossedBook | None:
    """The common first stage of every mechanism; None when nothing can trade."""
    offers, requests = net_self_orders(offers, requests)
    if len(offers) == 0 or len(requests) == 0:
        return None
    ask_order, bid_order = _sort_book(offers, requests, rng)
    ask_rate, bid_rate = offers.rate[ask_order], requests.rate[bid_order]
    A, B = np.cumsum(offers.amount[ask_order]), np.cumsum(requests.amount[bid_order])
    tol = _QTY_RTOL * max(A[-1], B[-1])
    Q = _cross(A, ask_rate, B, bid_rate, tol)
    if Q == 0.0:
        return None
    return CrossedBook(offers, requests, ask_order, bid_order, ask_rate, bid_rate, A, B, tol, Q)


class NegotiationMechanism(abc.ABC):
    """Turns one step's liquidity offers and requests into bilateral matches.

    Subclasses set the class attribute ``name``; defining the subclass registers it in
    `MECHANISMS`. Implementations must never match an agent with itself (call
    `net_self_orders` first) and must keep each agent's matched totals within its orders.
    """

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register concrete subclasses that define their own ``name``."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        existing = MECHANISMS.available().get(name)
        # Re-defining the same class (e.g. a module reload) is fine; shadowing is not.
        if isinstance(existing, type) and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"negotiation mechanism name {name!r} is already registered")
        MECHANISMS.register(name, cls)

    @abc.abstractmethod
    def clear(
        self, offers: LiquidityOrders, requests: LiquidityOrders, rng: np.random.Generator
    ) -> Matches:
        """Match offers with requests.

        Args:
            offers: lending orders (rate = minimum accepted).
            requests: borrowing orders (rate = maximum paid).
            rng: the world's generator, for any tie-breaking.

        Returns:
            Bilateral matches.
        """


MECHANISMS: Registry[type[NegotiationMechanism]] = Registry(
    "negotiation mechanism", entry_point_group="liqnet.mechanisms"
)
"""Mechanisms by name: subclasses register themselves; packages may add entry points."""


def get_mechanism(name: str, **params: Any) -> NegotiationMechanism:
    """Instantiate the registered mechanism ``name`` with ``params``.

    Raises:
        liqnet.core.UnknownNameError: A ``ValueError`` listing the allowed names.
    """
    return MECHANISMS.get(name)(**params)


class CallAuction(NegotiationMechanism):
    """Uniform-price double auction for credit; one clearing rate for every match.

    Rule: asks sorted ascending and bids descending are crossed at the volume-maximising
    quantity Q. Let a_Q, b_Q be the rates of the marginal accepted ask and bid, and a+, b+
    of the first ask and bid with unfilled quantity (dropped when that side is filled).
    Every rate in [max(a_Q, b+), min(b_Q, a+)] clears the market with no filled order
    wanting out and no unfilled order wanting in; the clearing rate is its midpoint. So
    with both sides cleanly cut it is the midpoint of the marginal ask and bid, and a
    rationed price level pins the rate to that level. Orders strictly better than the
    rate fill fully, the marginal level fills pro rata. Each borrower's fill is then split
    across lenders in proportion to their fills. Deterministic: ``rng`` is unused.
    """

    name = "call_auction"

    def clear(
        self, offers: LiquidityOrders, requests: LiquidityOrders, rng: np.random.Generator
    ) -> Matches:
        """Clear the book at one uniform rate; see the class docstring."""
        book = crossed_book(offers, requests, None)
        if book is None:
            return Matches.empty()
        offers, requests, _, _, ask_rate, bid_rate, A, B, tol, Q = book
        # Marginal accepted orders hold unit Q; the first unfilled ones hold the unit after
        # Q (the same order when it is only part-filled). tol absorbs cumsum round-off.
        a_q, b_q = ask_rate[np.searchsorted(A, Q - tol)], bid_rate[np.searchsorted(B, Q - tol)]
        a_idx, b_idx = np.searchsorted(A, Q + tol, "right"), np.searchsorted(B, Q + tol, "right")
        a_next = ask_rate[a_idx] if a_idx < A.size else np.inf
        b_next = bid_rate[b_idx] if b_idx < B.size else -np.inf
        rate = 0.5 * (max(a_q, b_next) + min(b_q, a_next))

        ask_fill = _level_fills(offers.amount, offers.rate, a_q, offers.rate < a_q, Q)
        bid_fill = _level_fills(requests.amount, requests.rate, b_q, requests.rate > b_q, Q)
        lenders, lent = _per_agent(offers.agent, ask_fill)
        borrowers, borrowed = _per_agent(requests.agent, bid_fill)
        # Dividing by the lenders' total (not Q) makes each borrower's total exact.
        amount = np.outer(lent, borrowed) / lent.sum()
        li, bj = np.nonzero(amount > 0)
        return Matches(
            lender=lenders[li],
            borrower=borrowers[bj],
            amount=amount[li, bj],
            rate=np.full(li.size, rate),
        )


# Imported last: the module subclasses NegotiationMechanism defined above, and importing
# it here registers "bilateral_bargaining" whenever this module is loaded.
from liqnet.market.bargaining import BilateralBargaining  # noqa: E402

__all__ = [
    "MECHANISMS",
    "BilateralBargaining",
    "CallAuction",
    "LiquidityOrders",
    "Matches",
    "NegotiationMechanism",
    "get_mechanism",
    "net_self_orders",
]
