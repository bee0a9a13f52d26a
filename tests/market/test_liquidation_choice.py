"""Tests for liqnet.market.liquidation_choice: the capital fixed point, and several offers
weighed at once equal to each weighed alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqnet.market import MarketModel
from liqnet.market.liquidation_choice import AFFORD_PASSES, affordable_shares, choose_together
from liqnet.market.participants import Liquidator
from tests.helpers.offers import baseline_world, offer, pool


@pytest.fixture
def model() -> MarketModel:
    """The baseline world with 200 positions per protocol."""
    return baseline_world()


def _every_pass(repay, margin, cap, gas, min_profit, capital):  # type: ignore[no-untyped-def]
    """affordable_shares's fixed point run pass by pass until it repeats (no shortcut)."""
    worth = (margin > 0) & (margin - gas >= min_profit)
    shares, cash = np.zeros(repay.shape), np.full(repay.shape, max(capital, 0.0))
    for _ in range(AFFORD_PASSES):
        share = np.minimum(np.divide(cash, repay, out=np.ones(repay.shape), where=repay > 0), 1.0)
        share = np.where(share < 1.0, np.minimum(share, cap), share)
        new = np.where(worth & (share > 0) & (share * margin - gas >= min_profit), share, 0.0)
        if np.array_equal(new, shares):
            break
        shares = new
        profit = np.where(shares > 0, shares * margin - gas, 0.0)
        cash = max(capital, 0.0) + np.cumsum(profit) - profit
    return shares


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    capital=st.sampled_from([0.0, 1e3, 1e5, 1e7]),
    min_profit=st.sampled_from([0.0, 1.0, 50.0]),
)
def test_affordable_shares_equals_its_fixed_point_pass_by_pass(
    seed: int, n: int, capital: float, min_profit: float
) -> None:
    """Stopping once every worthwhile entry is taken whole changes no share."""
    rng = np.random.default_rng(seed)
    repay = rng.uniform(0.0, 2e5, n) * (rng.random(n) < 0.9)
    margin = rng.normal(500.0, 800.0, n)
    cap = np.where(rng.random(n) < 0.5, rng.uniform(0.1, 1.0, n), 0.0)
    gas = float(rng.uniform(0.0, 100.0))
    got = affordable_shares(repay, margin, cap, gas, min_profit, capital)
    np.testing.assert_array_equal(got, _every_pass(repay, margin, cap, gas, min_profit, capital))


# The world only lends the offers a protocol and the liquidators a model: nothing in it
# changes between examples.
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 5))
def test_offers_weighed_together_equal_each_weighed_alone(
    model: MarketModel, seed: int, count: int
) -> None:
    """choose_together of several offers, liquidators and pools (different lengths,
    divisible or not, keeper work among them) gives each offer the shares its
    liquidator's choose gives it alone, bit for bit."""
    rng = np.random.default_rng(seed)
    liquidators, offers, pools = [], [], []
    for _ in range(count):
        n = int(rng.integers(0, 25))
        repay = rng.uniform(0.0, 5e4, n)
        o = offer(model, list(repay * rng.uniform(0.9, 1.15, n) / 3_000.0), list(repay))
        if rng.random() < 0.2:  # keeper work: nothing repaid or seized, a reward
            o = offer(model, [0.0] * n, [0.0] * n, list(rng.uniform(0.0, 20.0, n)))
        elif rng.random() < 0.5:
            o.partial_cap = np.where(rng.random(n) < 0.7, rng.uniform(0.1, 1.0, n), 0.0)
        offers.append(o)
        capital, gas, floor = rng.choice([1e3, 3e4, 1e7]), rng.uniform(0, 30), rng.uniform(0, 9)
        liquidators.append(Liquidator(model, float(capital), float(gas), float(floor)))
        pools.append(pool(float(rng.uniform(20.0, 2_000.0)), float(rng.uniform(6e4, 6e6))))
    together = choose_together(liquidators, offers, pools)
    for liquidator, o, p, shares in zip(liquidators, offers, pools, together, strict=True):
        np.testing.assert_array_equal(shares, liquidator.choose(o, p))
