"""The common action levers and observation features every protocol shares."""

from __future__ import annotations

LEVER_NAMES: tuple[str, ...] = ("risk", "price", "lend", "lend_rate", "borrow", "borrow_rate")
"""The common action levers, in action-vector order (see the architecture map)."""

DEFAULT_LEVERS: dict[str, float] = {
    "risk": 0.0,
    "price": 0.0,
    "lend": 0.0,
    "lend_rate": 0.0,
    "borrow": 0.0,
    "borrow_rate": 0.0,
}
"""Levers of a protocol no agent acts for: parameters stay, and its treasury rule lends
idle cash and borrows for its projected need (``liqnet.market.treasury``)."""

DEFAULT_STANDING_LEVERS: tuple[float, ...] = tuple(DEFAULT_LEVERS[n] for n in LEVER_NAMES)
""":data:`DEFAULT_LEVERS` as a vector in :data:`LEVER_NAMES` order."""

FEATURE_NAMES: tuple[str, ...] = (
    "equity_to_assets",
    "cash_to_assets",
    "utilization",
    "liquidity_shortfall",
    "reserves_to_assets",
    "bad_debt_to_assets",
    "risk_parameter",
    "price_parameter",
    "open_interest_to_assets",
    "funding_rate",
    "liquidated_to_assets",
    "credit_lent_to_assets",
    "credit_borrowed_to_assets",
)
"""Protocol-specific observation features, each a dimensionless ratio (fixed order)."""
