"""Valuing an option vault's book: marks per listed series, stress corners, book stress.

The vault (:mod:`liqnet.protocols.options.vault`) keeps its contracts in a
:class:`~liqnet.protocols.positions.PositionArrays` with the columns :data:`BOOK_FIELDS`;
this module prices them. Options are priced once per listed series (expiry hour, strike
step, kind) and scattered back to positions, so valuing the book is O(n) vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqnet.core.units import HOURS_PER_YEAR
from liqnet.protocols.options.pricing import black_scholes
from liqnet.protocols.options.stress import StressGrid, StressResult, portfolio_stress_loss
from liqnet.protocols.options.surface import NeuralSurface, SVISurface
from liqnet.protocols.positions import PositionArrays

BOOK_FIELDS: tuple[str, ...] = ("quantity", "strike", "expiry", "kind", "premium", "margin")
"""Columns of the vault's book (``kind`` 1 = call, 0 = put; ``expiry`` in years)."""


@dataclass
class Marks:
    """The book valued at one (spot, time, surface, book) state; per-slot arrays align."""

    slots: np.ndarray
    quantity: np.ndarray
    margin: np.ndarray
    price: np.ndarray  # option value per unit
    stress_unit: np.ndarray  # worst grid loss per unit of a short position
    series: tuple[np.ndarray, ...]  # net vault quantity, strike, expiry, call, vol
    option_delta: float  # the vault's delta from options (it is short ``quantity``)
    liability: float  # value of options written
    claims: float  # what the vault owes writing accounts (their equity, >= 0)
    margins: float  # margin held for writing accounts


def short_stress(
    spot: float,
    grid: StressGrid,
    strike: np.ndarray,
    tau: np.ndarray,
    vol: np.ndarray,
    call: np.ndarray,
    price: np.ndarray,
) -> np.ndarray:
    """Worst grid loss per unit of a short option: the grid's worst corner.

    A vanilla option's value rises with volatility and moves one way with spot, so a
    short position's worst scenario is the largest vol rise with the largest spot move
    against it: one repricing instead of the whole grid (tests check this equality).
    """
    moves, vol_up = grid.price_moves, 1.0 + grid.vol_moves.max()
    shocked = spot * (1.0 + np.where(call, moves.max(), moves.min()))
    corner = black_scholes(shocked, strike, tau, 0.0, vol * vol_up, call).price
    return np.maximum(corner - price, 0.0)


def value_book(
    book: PositionArrays,
    spot: float,
    now: float,
    surface: SVISurface | NeuralSurface,
    strike_unit: float,
    grid: StressGrid,
) -> Marks:
    """Mark every active contract of ``book`` at ``spot`` and time ``now`` (years)."""
    slots = book.active_slots()
    q, K, E, kind, m = (book[f][slots] for f in BOOK_FIELDS if f != "premium")
    # Listed series: one price per (expiry hour, strike step, kind), scattered back.
    code = (np.round(E * HOURS_PER_YEAR).astype(np.int64) << 22) + (
        (np.round(K / strike_unit).astype(np.int64) << 1) + kind.astype(np.int64)
    )
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    Ks, call = K[first], kind[first] > 0.5
    tau = np.maximum(E[first] - now, 0.0)
    vol = surface.implied_vol(Ks, tau, spot)
    g = black_scholes(spot, Ks, tau, 0.0, vol, call)
    net_short = np.bincount(inverse, q, minlength=first.size)
    price = g.price[inverse]
    writer = q < 0
    return Marks(
        slots=slots,
        quantity=q,
        margin=m,
        price=price,
        stress_unit=short_stress(spot, grid, Ks, tau, vol, call, g.price)[inverse],
        series=(-net_short, Ks, tau, call, vol),
        option_delta=-float(net_short @ g.delta),
        liability=float(np.sum(np.where(writer, 0.0, q * price))),
        claims=float(np.sum(np.maximum(np.where(writer, m + q * price, 0.0), 0.0))),
        margins=float(m[writer].sum()),
    )


def book_stress(
    marks: Marks, units: float, spot: float, grid: StressGrid, greeks_approximation: bool
) -> StressResult:
    """Stress test of a whole book (options at their series' vols) plus a linear hedge.

    Per-series vols enter as total variance with unit vol (exact at rate 0). The hedge
    of ``units`` is linear, so both engines add the same ``-units x dS`` to each
    scenario's loss.
    """
    qty, K, tau, call, vol = marks.series
    res = portfolio_stress_loss(
        qty, K, vol**2 * tau, call, spot, 1.0, grid, greeks_approximation=greeks_approximation
    )
    losses = res.scenario_losses - units * spot * grid.scenario_price_moves
    return StressResult.from_losses(losses, res.portfolio_value + units * spot, res.method, grid)


def settle_expired(
    book: PositionArrays, now: float, spot: float
) -> tuple[np.ndarray, float, float]:
    """Cash settlement of the options expired by ``now`` at ``spot``.

    Returns ``(slots, paid, bad_debt)``: the expired slots, what the vault pays out (to
    buyers their payoff, to writers their margin left) and what writers' margin did not
    cover.
    """
    slots = book.active_slots()
    done = slots[book["expiry"][slots] <= now + 1e-12]
    q, strike = book["quantity"][done], book["strike"][done]
    sign = np.where(book["kind"][done] > 0.5, 1.0, -1.0)
    owed = np.abs(q) * np.maximum(sign * (spot - strike), 0.0)
    margin = book["margin"][done]
    collected = np.minimum(owed, margin)
    paid = float(np.sum(np.where(q > 0, owed, margin - collected)))
    return done, paid, float(np.sum(np.where(q < 0, owed - collected, 0.0)))
