"""Constant-product AMM pool of one asset against USD (Uniswap v2 style)."""

from __future__ import annotations

import math

import numpy as np


class ConstantProductPool:
    """``x * y = k`` pool with a proportional fee kept in the pool.

    Args:
        asset: Asset name.
        units: Asset reserve.
        usd: USD reserve.
        fee: Fee on the input amount, e.g. 0.003.
    """

    def __init__(self, asset: str, units: float, usd: float, fee: float) -> None:
        if not (units > 0 and usd > 0):  # also rejects NaN
            raise ValueError(f"pool {asset}: reserves must be positive (got {units}, {usd})")
        if not 0.0 <= fee < 1.0:
            raise ValueError(f"pool {asset}: fee = {fee}: must be in [0, 1)")
        self.asset = asset
        self.units = float(units)
        self.usd = float(usd)
        self.fee = float(fee)

    @property
    def price(self) -> float:
        """Marginal price (USD per unit) ignoring the fee."""
        return self.usd / self.units

    def quote_sell(self, units: np.ndarray | float) -> np.ndarray | float:
        """USD received for selling ``units`` (cumulative amounts allowed, vectorised)."""
        effective = np.asarray(units) * (1.0 - self.fee)
        return self.usd * effective / (self.units + effective)

    def sell(self, units: float) -> float:
        """Sell ``units`` of the asset into the pool; returns USD paid out."""
        out = float(self.quote_sell(units))
        self.units += units
        self.usd -= out
        return out

    def buy_with(self, usd: float) -> float:
        """Pay ``usd`` into the pool; returns units paid out."""
        effective = usd * (1.0 - self.fee)
        out = self.units * effective / (self.usd + effective)
        self.usd += usd
        self.units -= out
        return out

    def buy_units(self, units: float) -> float:
        """Buy exactly ``units`` of the asset; returns the USD paid (fee included)."""
        if not 0.0 <= units < self.units:
            raise ValueError(f"pool {self.asset}: cannot buy {units} of {self.units} units")
        usd_in = self.usd * units / (self.units - units) / (1.0 - self.fee)
        self.usd += usd_in
        self.units -= units
        return usd_in

    def units_sellable_above(self, price: np.ndarray) -> np.ndarray:
        """Units that can be sold before the USD paid per extra unit (net of the fee)
        falls to ``price`` (vectorised; 0 where it is already below)."""
        keep = 1.0 - self.fee
        # Marginal proceeds of selling are k (1 - f) / x_e^2 (see arbitrage_trade).
        effective = np.sqrt(self.units * self.usd * keep / np.asarray(price, dtype=float))
        return np.maximum(effective - self.units, 0.0) / keep

    def price_after_sell(self, units: float) -> float:
        """Marginal price after selling ``units`` (negative = buying), without trading.

        Fees stay in the pool: a sale adds all ``units`` to the unit reserve while the
        invariant sees only ``units * (1 - fee)``; a purchase of ``-units`` pays its fee
        in USD on top of what the invariant needs.
        """
        k = self.usd * self.units
        if units >= 0:
            return k / ((self.units + units * (1.0 - self.fee)) * (self.units + units))
        bought = min(-units, (1.0 - 1e-12) * self.units)
        usd_needed = self.usd * bought / (self.units - bought)  # net of the fee
        return (self.usd + usd_needed / (1.0 - self.fee)) / (self.units - bought)

    def arbitrage_trade(self, target_price: float) -> tuple[str, float]:
        """Input that moves the marginal price (net of fee) to ``target_price``.

        Returns ``("buy", usd_in)`` when the pool is cheap, ``("sell", units_in)`` when it
        is expensive, and ``("none", 0.0)`` inside the no-arbitrage band of the fee.
        """
        k = self.units * self.usd
        keep = 1.0 - self.fee
        # Marginal cost of buying is y_e^2 / (k (1 - f)); of selling, k (1 - f) / x_e^2.
        usd_effective = math.sqrt(target_price * k * keep)
        if usd_effective > self.usd:
            return "buy", (usd_effective - self.usd) / keep
        units_effective = math.sqrt(k * keep / target_price)
        if units_effective > self.units:
            return "sell", (units_effective - self.units) / keep
        return "none", 0.0
