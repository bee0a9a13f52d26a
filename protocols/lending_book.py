"""One collateral asset's loan book in a lending pool: positions, index, running totals.

See :mod:`liqnet.protocols.lending` for the liquidation key.
"""

from __future__ import annotations

import numpy as np

from liqnet.protocols.lending_params import CollateralParams
from liqnet.protocols.position_stack import PositionStack
from liqnet.protocols.positions import LiquidationIndex, PositionArrays

BOOK_FIELDS = ("collateral", "scaled_debt")
"""Columns of a collateral book's positions."""


class LendingBook:
    """One collateral asset's positions, index and running totals."""

    def __init__(
        self, asset: str, params: CollateralParams, stack: PositionStack | None = None
    ) -> None:
        self.asset = asset
        self.liquidation_threshold = params.liquidation_threshold
        self.ltv = params.ltv
        self.bonus = params.liquidation_bonus
        self.protocol_fee = params.liquidation_protocol_fee
        # Collateral the pool owns itself: liquidation protocol fees (Aave sends them to
        # its treasury as aTokens). Held, marked at the oracle, never a borrower's.
        self.treasury_units = 0.0
        # A row of ``stack`` when given (one per world: every pool's books, so the pools'
        # borrower churn is one array program).
        self.positions = PositionArrays(BOOK_FIELDS, stack=stack)
        self.total_collateral = 0.0
        self.total_scaled_debt = 0.0
        self.index = LiquidationIndex(
            self.positions, self.key, value_columns=BOOK_FIELDS, stacked=True
        )

    def key(self, slots: np.ndarray) -> np.ndarray:
        """Scaled debt per unit of collateral: invariant to price, LT and borrow index."""
        collateral = self.positions["collateral"][slots]
        debt = self.positions["scaled_debt"][slots]
        # np.divide with ``where`` instead of np.errstate: the context manager costs more
        # than the division for the handful of slots marked at a time.
        return np.divide(debt, collateral, out=np.full(debt.shape, np.inf), where=collateral > 0)

    @staticmethod
    def stacked_keys(data: np.ndarray, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """:meth:`key` of ``slots`` of books stored as ``rows`` of a stack's ``data``."""
        collateral, debt = data[rows, :2, slots].T  # one gather for both fields
        return np.divide(debt, collateral, out=np.full(debt.shape, np.inf), where=collateral > 0)

    def add(self, collateral: np.ndarray, scaled_debt: np.ndarray, mark: bool = True) -> np.ndarray:
        """Open loans; ``mark=False`` leaves marking the index to the caller."""
        slots = self.positions.add(collateral=collateral, scaled_debt=scaled_debt)
        self.total_collateral += float(collateral.sum())
        self.total_scaled_debt += float(scaled_debt.sum())
        if mark:
            self.index.mark_dirty(slots)
        return slots

    def close(self, slots: np.ndarray, mark: bool = True) -> None:
        """Close loans; ``mark=False`` leaves marking the index to the caller."""
        self.total_collateral -= float(self.positions["collateral"][slots].sum())
        self.total_scaled_debt -= float(self.positions["scaled_debt"][slots].sum())
        self.positions.close(slots)
        if mark:
            self.index.mark_dirty(slots)
