"""Perpetual-exchange parameters and per-market position books (long and short sides).

The liquidation keys and running sums documented in :mod:`liqnet.protocols.perp` live
here; :class:`~liqnet.protocols.perp.PerpExchange` composes them.
"""

from __future__ import annotations

from typing import overload

import numpy as np
from pydantic import Field, field_validator, model_validator

from liqnet.core.schema import (
    MAX_MULTIPLIER,
    MAX_POSITIONS,
    MAX_USD,
    MIN_USD,
    check_bounds,
)
from liqnet.protocols.base import ProtocolParams
from liqnet.protocols.distributions import AnyDistribution, Distribution, Lognormal, check_range
from liqnet.protocols.position_stack import PositionStack
from liqnet.protocols.positions import LiquidationIndex, PositionArrays


class PerpMarketParams(ProtocolParams):
    """Margin tier of one market (defaults: dYdX v4 large-cap tier)."""

    initial_margin: float = Field(0.05, ge=1e-4, lt=1.0)
    maintenance_margin: float = Field(0.03, ge=1e-4, lt=1.0)
    share: float = Field(
        1.0, ge=1e-6, le=MAX_MULTIPLIER, description="share of open interest in this market"
    )


class PerpParams(ProtocolParams):
    """Parameters of a :class:`PerpExchange` (scenario table ``protocols.params``)."""

    markets: dict[str, PerpMarketParams] = Field(
        default_factory=lambda: {"ETH": PerpMarketParams()}, min_length=1
    )
    vault_usd: float = Field(
        100e6, ge=MIN_USD, le=MAX_USD, description="LP vault (counterparty) capital"
    )
    insurance_fund_usd: float = Field(5e6, ge=0.0, le=MAX_USD)
    treasury_usd: float = Field(1e6, ge=0.0, le=MAX_USD)
    positions: int = Field(10_000, ge=2, le=MAX_POSITIONS)
    open_interest_usd: float = Field(
        150e6, ge=MIN_USD, le=MAX_USD, description="initial total notional"
    )
    long_share: float = Field(0.55, gt=0.0, lt=1.0)
    leverage_median: float = Field(5.0, ge=1.0, le=200.0)
    leverage_dispersion: float = Field(0.5, ge=0.0, le=3.0)
    # Leverage fitted to data (quantiles, a histogram or a lognormal table); when given,
    # leverage_median and leverage_dispersion are unused.
    leverage_distribution: Distribution | None = Field(
        None, description="opening leverage in [1, 200] (clipped to 1 / initial_margin)"
    )
    liquidation_penalty: float = Field(0.015, ge=0.0, le=0.2)  # dYdX v4 maximum
    keeper_reward_usd: float = Field(10.0, ge=0.0, le=1e6)
    spot_flow_share: float = Field(
        0.05, ge=0.0, le=1.0, description="share of liquidated size that hits the spot market"
    )
    trading_fee: float = Field(0.0005, ge=0.0, le=0.05)
    # Funding is the mark/index premium plus interest (dYdX v4, see perp_funding); the
    # open-interest-skew term is off by default (at 0.01 it gave ~110%/yr at a 55/45
    # book, far above the 0.95-31.5%/yr GMX v2 publishes).
    skew_premium: float = Field(0.0, ge=0.0, le=1.0, description="premium per unit of skew")
    impact_spread: float = Field(
        0.003, ge=0.0, le=0.1, description="impact bid/ask half-spread around the mark"
    )  # the default AMM pool fee: arbitrage leaves the pool anywhere within it
    # dYdX v4 interest rate component: 0.01% per 8 h (default_funding_ppm = 100).
    interest_rate_8h: float = Field(0.0001, ge=-0.01, le=0.01)
    funding_cap_multiple: float = Field(6.0, ge=0.0, le=1e3)  # dYdX: 600% x (IMF - MMF) per 8h
    trader_turnover_per_day: float = Field(0.05, ge=0.0, le=5.0)
    trader_edge_mean: float = Field(
        0.05, ge=0.0, le=10.0, description="mean edge over carry, share of notional per holding"
    )
    premium_persistence_hours: float = Field(
        8.0, ge=0.0, le=8760.0, description="how long traders expect a funding premium to last"
    )
    # GMX v2 config/markets.ts: ADL from trader PnL at 55% of the pool, back down to 50%.
    adl_pnl_trigger: float = Field(0.55, gt=0.0, le=10.0, description="side PnL / vault cash")
    adl_pnl_target: float = Field(0.50, ge=0.0, lt=1.0, description="ratio ADL brings it to")
    churn_interval_hours: float = Field(
        4.0, ge=1.0 / 60.0, le=168.0, description="positions open/close in batches this often"
    )
    lp_turnover_per_day: float = Field(0.02, ge=0.0, le=1.0)
    lp_run_sensitivity: float = Field(3.0, ge=0.0, le=100.0)
    liquidity_buffer_days: float = Field(
        1.0, ge=0.0, le=30.0, description="cash kept back: days of user turnover"
    )
    risk_memory_days: float = Field(0.5, gt=0.0, le=30.0)
    vault_reserve_ratio: float = Field(0.1, ge=0.0, le=1.0, description="of OI kept back")
    risk_step: float = Field(0.002, ge=0.0, le=0.05, description="max margin move per step")
    price_step: float = Field(0.05, ge=0.0, le=1.0, description="max fee multiplier move")
    maintenance_margin_bounds: tuple[float, float] = (0.005, 0.25)
    price_multiplier_bounds: tuple[float, float] = (0.5, 3.0)

    @field_validator("leverage_distribution")
    @classmethod
    def _opening_leverage(cls, dist: AnyDistribution | None) -> AnyDistribution | None:
        if dist is not None:
            check_range(dist, 1.0, 200.0, 0.0, "opening leverage, as leverage_median")
        return dist

    def leverages(self) -> AnyDistribution:
        """The opening leverage's distribution (lognormal by default)."""
        if self.leverage_distribution is not None:
            return self.leverage_distribution
        return Lognormal(median=self.leverage_median, dispersion=self.leverage_dispersion)

    @model_validator(mode="after")
    def _adl_target_below_trigger(self) -> PerpParams:
        if self.adl_pnl_target >= self.adl_pnl_trigger:
            raise ValueError("adl_pnl_target must be below adl_pnl_trigger")
        # Levers move a parameter by bounded steps inside its bounds; bounds that are
        # inverted or miss the starting value would snap it in one step.
        check_bounds(
            "maintenance_margin_bounds",
            self.maintenance_margin_bounds,
            (1e-4, 0.999),
            {
                f"markets.{a}.maintenance_margin": m.maintenance_margin
                for a, m in self.markets.items()
            },
        )
        check_bounds(
            "price_multiplier_bounds",
            self.price_multiplier_bounds,
            (0.0, MAX_MULTIPLIER),
            {"the starting price multiplier": 1.0},
        )
        return self

    def referenced_assets(self) -> list[str]:
        """The perpetual markets' underlying assets."""
        return list(self.markets)


_SUMS_OF_COLUMNS = (
    ("size_entry", "entry", True),
    ("margin", "margin", False),
    ("size_funding", "funding_entry", True),
)
"""Running sums other than ``size``: (sum name, column, weighted by size)."""


SIDE_FIELDS = ("size", "entry", "margin", "funding_entry", "edge")
"""Columns of a side's positions (``edge`` last: blocks keep the first four together)."""


class PerpSide:
    """Positions on one side of one market, with running sums for O(1) aggregates."""

    def __init__(self, is_long: bool, stack: PositionStack | None = None) -> None:
        self.is_long = is_long
        self.sign = 1.0 if is_long else -1.0
        """+1 for longs, -1 for shorts: the sign of a price move's PnL."""
        # ``edge``: the trader's expected return on notional over the holding horizon
        # (perp_funding); last, so blocks keep size, entry, margin, funding_entry first.
        self.positions = PositionArrays(SIDE_FIELDS, stack=stack)
        self.sums = {"size": 0.0, "size_entry": 0.0, "size_funding": 0.0, "margin": 0.0}
        self.index = LiquidationIndex(self.positions, self.key, stacked=True)
        self.edge_floor = np.inf
        """At most the smallest ``edge`` of an open position (every open lowers it, a
        funding scan raises it to the least edge left): a churn whose carry does not
        exceed it has no position to close for funding, so it skips the O(n) scan."""

    def lower_edge_floor(self, edges: np.ndarray | float) -> None:
        """Note the edges of positions just opened (:attr:`edge_floor`)."""
        low = float(np.minimum.reduce(edges, axis=None)) if np.size(edges) else np.inf
        self.edge_floor = min(self.edge_floor, low)

    def key(self, slots: np.ndarray) -> np.ndarray:
        """Liquidation key (see the module docstring)."""
        cols = self.positions.columns
        size = cols["size"][slots]
        margin = cols["margin"][slots]
        per_unit = np.divide(margin, size, out=np.full(margin.shape, np.inf), where=size != 0)
        if self.is_long:
            return cols["entry"][slots] - cols["funding_entry"][slots] - per_unit
        return cols["entry"][slots] + per_unit - cols["funding_entry"][slots]

    @staticmethod
    def stacked_keys(
        data: np.ndarray, is_long: np.ndarray, rows: np.ndarray, slots: np.ndarray
    ) -> np.ndarray:
        """:meth:`key` of ``slots`` of sides stored as ``rows`` of a stack's ``data``
        (``is_long`` by row), element by element as each side's own key."""
        size, entry, margin, funding_entry = data[rows, :4, slots].T  # one gather
        per_unit = np.divide(margin, size, out=np.full(margin.shape, np.inf), where=size != 0)
        return np.where(
            is_long[rows], entry - funding_entry - per_unit, entry + per_unit - funding_entry
        )

    def _update_sums(self, block: np.ndarray, sign: float) -> None:
        """Add (``sign=+1``) or remove positions given as a (fields, k) block."""
        block = block[:4]  # rows: size, entry, margin, funding_entry (not edge)
        totals = np.add.reduce(block, axis=1)  # (no ndarray.sum wrapper: a hot path)
        weighted = block @ block[0]
        self.sums["size"] += sign * float(totals[0])
        self.sums["size_entry"] += sign * float(weighted[1])
        self.sums["margin"] += sign * float(totals[2])
        self.sums["size_funding"] += sign * float(weighted[3])

    def add(
        self, mark: bool = True, *, size: np.ndarray, **columns: np.ndarray | float
    ) -> np.ndarray:
        """Open positions; ``mark=False`` leaves marking the index to the caller.

        ``size`` is an array; the other columns may be arrays or scalars (e.g. one entry
        price for the whole batch). A position given no ``edge`` never closes for funding.
        """
        columns.setdefault("edge", np.inf)
        slots = self.positions.add(size=size, **columns)
        self.lower_edge_floor(columns["edge"])
        total_size = float(np.add.reduce(size))
        for sum_name, name, weighted in _SUMS_OF_COLUMNS:
            value = columns.get(name, 0.0)
            # Scalar columns (one entry price for the whole batch) need no gather or dot.
            if isinstance(value, np.ndarray):
                total = float(size @ value) if weighted else float(np.add.reduce(value))
            else:
                total = float(value) * (total_size if weighted else slots.size)
            self.sums[sum_name] += total
        self.sums["size"] += total_size
        if mark:
            self.index.mark_dirty(slots)
        return slots

    def close(self, slots: np.ndarray, mark: bool = True, block: np.ndarray | None = None) -> None:
        """Close positions; ``mark=False`` leaves marking the index to the caller.

        ``block`` is ``positions.block(slots)`` when the caller already gathered it.
        """
        self._update_sums(self.positions.block(slots) if block is None else block, -1.0)
        self.positions.close(slots)
        if mark:
            self.index.mark_dirty(slots)

    def reduce(self, slots: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Close ``fraction`` of each position (1: all of it); returns the closed parts as
        a block (size, entry, margin, funding_entry, edge).

        Size and margin shrink together, so a partly closed position keeps its liquidation
        key (margin per unit) and its entry; fully closed slots leave the book.
        """
        closed = self.positions.block(slots)
        closed[0] *= fraction
        closed[2] *= fraction
        self._update_sums(closed, -1.0)
        cols = self.positions.columns
        keep = 1.0 - fraction
        cols["size"][slots] *= keep
        cols["margin"][slots] *= keep
        self.positions.close(slots[fraction >= 1.0])
        self.index.mark_dirty(slots)
        return closed

    @overload
    def pnl(self, slots: None, price: float, funding: float) -> float: ...
    @overload
    def pnl(self, slots: np.ndarray, price: float, funding: float) -> np.ndarray: ...
    def pnl(self, slots: np.ndarray | None, price: float, funding: float) -> np.ndarray | float:
        """Unrealised PnL incl. funding: per slot, or for the whole side when ``None``."""
        if slots is None:
            s = self.sums
            price_pnl = price * s["size"] - s["size_entry"]
            funding_pnl = funding * s["size"] - s["size_funding"]
            return self.sign * (price_pnl - funding_pnl)
        return self.block_pnl(self.positions.block(slots), price, funding)

    def block_pnl(self, block: np.ndarray, price: float, funding: float) -> np.ndarray:
        """Unrealised PnL of positions given as ``positions.block(slots)``."""
        size, entry, _, funding_entry = block[:4]
        price_pnl = size * (price - entry)
        funding_pnl = size * (funding - funding_entry)
        return self.sign * (price_pnl - funding_pnl)


class PerpMarket:
    """One perpetual market: margins, funding index and both sides."""

    def __init__(
        self, asset: str, params: PerpMarketParams, stack: PositionStack | None = None
    ) -> None:
        self.asset = asset
        self.initial_margin = params.initial_margin
        self.maintenance_margin = params.maintenance_margin
        self.funding_index = 0.0
        self.funding_rate_hourly = 0.0
        # Both sides are rows of ``stack`` when given (one per world: every exchange's
        # books, so the exchanges' trader churn is one array program).
        self.sides = {"long": PerpSide(True, stack), "short": PerpSide(False, stack)}
