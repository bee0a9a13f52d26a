"""Hand-made liquidation offers and pools for the liquidators' tests."""

from __future__ import annotations

import numpy as np

from liqnet.market import MarketModel
from liqnet.market.amm import ConstantProductPool
from liqnet.protocols.base import LiquidationOffer
from liqnet.scenarios import load

FEE = 0.003


def baseline_world() -> MarketModel:
    """The baseline world with 200 positions per protocol (it lends offers a protocol)."""
    overrides = {f"protocols.{k}.params.positions": 200 for k in range(3)}
    return MarketModel(load("baseline", overrides), seed=1)


def pool(units: float = 1_000.0, usd: float = 3e6) -> ConstantProductPool:
    """An ETH pool, 3,000 USD per unit unless told otherwise."""
    return ConstantProductPool("ETH", units, usd, FEE)


def offer(
    model: MarketModel, seize: list[float], repay: list[float], reward: list[float] | None = None
) -> LiquidationOffer:
    """A hand-made offer of ETH collateral against USD repayments."""
    n = len(seize)
    return LiquidationOffer(
        model.protocols["aave"],
        "ETH",
        "ETH",
        np.arange(n),
        np.asarray(repay, dtype=float),
        np.asarray(seize, dtype=float),
        np.zeros(n) if reward is None else np.asarray(reward, dtype=float),
    )


def proceeds(x: float, y: float, units: list[float]) -> np.ndarray:
    """USD for selling ``units`` one after another, priced from the cumulative quote."""
    cumulative = np.cumsum(units) * (1 - FEE)
    quotes = y * cumulative / (x + cumulative)
    return np.diff(np.concatenate(([0.0], quotes)))
