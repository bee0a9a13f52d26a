"""One collateral type's vaults (Maker's ``vat`` urns of one ilk) as arrays, with indexes.

A vault holds ``ink`` collateral units and normalised debt ``art``; its debt is
``art x rate`` with ``rate`` the type's accumulator (vat.sol ``Ilk.rate``, grown by
jug.sol ``drip``), so fee accrual is O(1) and never reorders vaults. A vault is unsafe
(vat.sol: ``ink x spot < art x rate`` with ``spot = price / mat``) when its key
``art / ink`` exceeds ``price / (mat x rate)``: one ``searchsorted`` on the sorted index
(:class:`~liqnet.protocols.positions.LiquidationIndex`), no scan. A second index holds
only the owners who watch their vault (awake ones), for top-ups near the limit.
"""

from __future__ import annotations

import numpy as np

from liqnet.protocols.cdp_params import CdpCollateralParams
from liqnet.protocols.positions import LiquidationIndex, PositionArrays


class VaultBook:
    """The vaults of one collateral type: arrays, running totals, rate and two indexes.

    Columns: ``ink`` (collateral units), ``art`` (normalised debt), ``asleep`` (1: the
    owner never acts), ``repays`` (1: an awake owner repays debt; 0: adds collateral).
    """

    def __init__(self, asset: str, params: CdpCollateralParams) -> None:
        self.asset = asset
        self.liquidation_ratio = params.liquidation_ratio  # mat
        self.penalty = params.penalty  # chop - 1
        self.stability_fee = params.stability_fee  # annual, compounded (jug duty)
        self.debt_ceiling = params.debt_ceiling_usd  # line
        self.lump = params.lump_units
        self.hole = params.hole_usd
        self.rate = 1.0  # vat.sol Ilk.rate
        self.positions = PositionArrays(("ink", "art", "asleep", "repays"))
        self.total_ink = 0.0
        self.total_art = 0.0
        self.index = LiquidationIndex(self.positions, self.key, value_columns=("ink", "art"))
        self.awake = LiquidationIndex(self.positions, self.awake_key)

    # -- keys ----------------------------------------------------------------------------
    def key(self, slots: np.ndarray) -> np.ndarray:
        """Normalised debt per collateral unit: invariant to price, mat and rate."""
        ink = self.positions["ink"][slots]
        art = self.positions["art"][slots]
        return np.divide(art, ink, out=np.full(art.shape, np.inf), where=ink > 0)

    def awake_key(self, slots: np.ndarray) -> np.ndarray:
        """The key for owners who watch their vault; ``-inf`` (never selected) if asleep."""
        keys = self.key(slots)
        return np.where(self.positions["asleep"][slots] > 0.0, -np.inf, keys)

    def threshold(self, price: float, ratio: float) -> float:
        """The key above which a vault's collateral ratio is below ``ratio``."""
        return price / (ratio * self.rate)

    # -- queries -------------------------------------------------------------------------
    @property
    def debt(self) -> float:
        """Debt of all vaults, stable units (``Art x rate``)."""
        return self.total_art * self.rate

    def unsafe(self, price: float) -> np.ndarray:
        """Vaults whose ratio is below the liquidation ratio (vat.sol not-safe)."""
        return self.index.select(self.threshold(price, self.liquidation_ratio), above=True)

    def near_limit(self, price: float, trigger: float) -> np.ndarray:
        """Awake owners' vaults whose ratio is below ``trigger x mat``."""
        return self.awake.select(self.threshold(price, trigger * self.liquidation_ratio), True)

    def underwater_shortfall(self, price: float) -> float:
        """Debt above collateral value, summed over vaults with ratio below 1."""
        sums = self.index.tail_sums(self.threshold(price, 1.0), above=True)
        return max(0.0, sums["art"] * self.rate - sums["ink"] * price)

    # -- edits ---------------------------------------------------------------------------
    def add(
        self, ink: np.ndarray, art: np.ndarray, asleep: np.ndarray, repays: np.ndarray
    ) -> np.ndarray:
        """Open vaults; returns their slots (both indexes marked)."""
        slots = self.positions.add(ink=ink, art=art, asleep=asleep, repays=repays)
        self.total_ink += float(ink.sum())
        self.total_art += float(art.sum())
        self._mark(slots)
        return slots

    def set(self, slots: np.ndarray, ink: np.ndarray, art: np.ndarray) -> None:
        """Replace the collateral and normalised debt of open vaults."""
        columns = self.positions.columns
        self.total_ink += float((ink - columns["ink"][slots]).sum())
        self.total_art += float((art - columns["art"][slots]).sum())
        columns["ink"][slots] = ink
        columns["art"][slots] = art
        self._mark(slots)

    def close(self, slots: np.ndarray) -> None:
        """Close vaults (their collateral and debt leave the book)."""
        self.total_ink -= float(self.positions["ink"][slots].sum())
        self.total_art -= float(self.positions["art"][slots].sum())
        self.positions.close(slots)
        self._mark(slots)

    def _mark(self, slots: np.ndarray) -> None:
        self.index.mark_dirty(slots)
        self.awake.mark_dirty(slots)

    def rebuild(self) -> None:
        """Sort both indexes from scratch (after the seeded book is written)."""
        self.index.rebuild(full=True)
        self.awake.rebuild(full=True)
