"""Tests for liqnet.market.amm: the constant-product pool with the fee kept in the pool."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liqnet.market.amm import ConstantProductPool

FEE = 0.003


def make_pool(units: float = 1_000.0, usd: float = 3e6, fee: float = FEE) -> ConstantProductPool:
    """A pool at 3,000 USD per unit unless told otherwise."""
    return ConstantProductPool("ETH", units, usd, fee)


def sell_out(x: float, y: float, dx: float, f: float) -> float:
    """Closed form: USD out for ``dx`` units in, ``y * dx (1-f) / (x + dx (1-f))``."""
    return y * dx * (1.0 - f) / (x + dx * (1.0 - f))


def test_k_never_decreases_and_grows_by_the_retained_fee() -> None:
    pool = make_pool()
    rng = np.random.default_rng(11)
    k = pool.units * pool.usd
    for _ in range(200):
        if rng.random() < 0.5:
            pool.sell(float(rng.uniform(0.01, 50.0)))
        else:
            pool.buy_with(float(rng.uniform(10.0, 150_000.0)))
        k_new = pool.units * pool.usd
        assert k_new > k  # strictly: every trade leaves its fee in the pool
        k = k_new
    assert k > 1_000.0 * 3e6 * 1.001  # 200 trades of that size add well over 0.1%


def test_k_is_constant_without_fee() -> None:
    pool = make_pool(fee=0.0)
    k0 = pool.units * pool.usd
    pool.sell(37.5)
    pool.buy_with(250_000.0)
    pool.sell(3.25)
    assert pool.units * pool.usd == pytest.approx(k0, rel=1e-12)


@pytest.mark.parametrize("dx", [1e-6, 0.5, 10.0, 400.0, 5_000.0])
def test_sell_matches_closed_form_and_moves_reserves(dx: float) -> None:
    pool = make_pool()
    x, y = pool.units, pool.usd
    out = pool.sell(dx)
    assert out == pytest.approx(sell_out(x, y, dx, FEE), rel=1e-12)
    assert pool.units == pytest.approx(x + dx, rel=1e-15)  # the whole input, fee included
    assert pool.usd == pytest.approx(y - out, rel=1e-15)
    assert out < dx * y / x  # slippage plus fee: below the marginal price


@pytest.mark.parametrize("dy", [1.0, 30_000.0, 1e6, 2e7])
def test_buy_with_matches_closed_form(dy: float) -> None:
    pool = make_pool()
    x, y = pool.units, pool.usd
    out = pool.buy_with(dy)
    assert out == pytest.approx(x * dy * (1 - FEE) / (y + dy * (1 - FEE)), rel=1e-12)
    assert pool.usd == pytest.approx(y + dy, rel=1e-15)
    assert pool.units == pytest.approx(x - out, rel=1e-15)


def test_golden_sell_number() -> None:
    # 10 units into 1,000 / 3,000,000 at 0.3%: 3e6 * 9.97 / 1009.97.
    assert make_pool().sell(10.0) == pytest.approx(29_614.741031911838, rel=1e-12)


def test_quote_sell_cumulative_vector_is_one_aggregated_sale() -> None:
    pool = make_pool()
    units = np.array([3.0, 0.5, 12.0, 7.25])
    quotes = pool.quote_sell(np.cumsum(units))
    for total, quote in zip(np.cumsum(units), quotes, strict=True):
        assert quote == pytest.approx(make_pool().sell(float(total)), rel=1e-13)
    assert pool.units == 1_000.0 and pool.usd == 3e6  # quoting does not trade


def test_quote_sell_increments_equal_sequential_sells_without_fee() -> None:
    units = np.array([3.0, 0.5, 12.0, 7.25, 40.0])
    increments = np.diff(np.concatenate(([0.0], make_pool(fee=0.0).quote_sell(np.cumsum(units)))))
    pool = make_pool(fee=0.0)
    sequential = np.array([pool.sell(float(u)) for u in units])
    np.testing.assert_allclose(increments, sequential, rtol=1e-11)


def test_sequential_sells_pay_less_than_cumulative_quote_with_fee() -> None:
    """With the fee kept in the pool, a later sale sees a larger unit reserve.

    The second of two sales pays ``y x e2 / ((x + e1)(x + u1 + e2))`` against the
    cumulative quote's ``y x e2 / ((x + e1)(x + e1 + e2))`` (``e = u (1-f)``).
    """
    x, y, u1, u2 = 1_000.0, 3e6, 30.0, 20.0
    e1, e2 = u1 * (1 - FEE), u2 * (1 - FEE)
    q1, q2 = make_pool().quote_sell(np.array([u1, u1 + u2]))
    pool = make_pool()
    s1, s2 = pool.sell(u1), pool.sell(u2)
    assert s1 == pytest.approx(q1, rel=1e-13)
    assert s2 == pytest.approx(y * x * e2 / ((x + e1) * (x + u1 + e2)), rel=1e-12)
    assert q2 - q1 == pytest.approx(y * x * e2 / ((x + e1) * (x + e1 + e2)), rel=1e-10)
    assert s2 < q2 - q1


@pytest.mark.parametrize("ratio", [1.5, 1.05, 1.004, 0.996, 0.95, 0.5])
def test_arbitrage_trade_is_the_optimal_single_trade(ratio: float) -> None:
    pool = make_pool()
    x, y, k = pool.units, pool.usd, pool.units * pool.usd
    target = pool.price * ratio
    direction, amount = pool.arbitrage_trade(target)
    assert amount > 0
    if ratio > 1:
        assert direction == "buy"
        y_e = y + amount * (1 - FEE)
        # Marginal cost of the last dollar's units: y_e^2 / (k (1-f)) = target.
        assert y_e**2 / (k * (1 - FEE)) == pytest.approx(target, rel=1e-9)
        pool.buy_with(amount)
        # Virtual (fee-free) price left behind: y_e / (k / y_e) = target (1-f).
        assert (pool.usd - FEE * amount) / pool.units == pytest.approx(target * (1 - FEE), 1e-9)
        assert pool.price <= target  # never beyond the reference
    else:
        assert direction == "sell"
        x_e = x + amount * (1 - FEE)
        assert k * (1 - FEE) / x_e**2 == pytest.approx(target, rel=1e-9)
        pool.sell(amount)
        assert pool.usd / (pool.units - FEE * amount) == pytest.approx(target / (1 - FEE), 1e-9)
        assert pool.price >= target


@pytest.mark.parametrize("ratio", [1.05, 0.95])
def test_arbitrage_amount_maximises_profit(ratio: float) -> None:
    pool = make_pool()
    target = pool.price * ratio
    direction, amount = pool.arbitrage_trade(target)

    def profit(a: float) -> float:
        if direction == "buy":
            return make_pool().buy_with(a) * target - a
        return make_pool().sell(a) - a * target

    best = profit(amount)
    assert best > 0
    for factor in (0.98, 0.999, 1.001, 1.02):
        assert profit(amount * factor) < best


@pytest.mark.parametrize("ratio", [1.0, 1.002, 1.0 / (1 - FEE) - 1e-9, 0.998, (1 - FEE) + 1e-9])
def test_arbitrage_trade_none_inside_fee_band(ratio: float) -> None:
    pool = make_pool()
    assert pool.arbitrage_trade(pool.price * ratio) == ("none", 0.0)


def test_arbitrage_trade_just_outside_fee_band() -> None:
    pool = make_pool()
    assert pool.arbitrage_trade(pool.price / (1 - FEE) * (1 + 1e-6))[0] == "buy"
    assert pool.arbitrage_trade(pool.price * (1 - FEE) * (1 - 1e-6))[0] == "sell"


def test_price_after_sell_zero_and_fee_free_match_actual() -> None:
    pool = make_pool()
    assert pool.price_after_sell(0.0) == pytest.approx(pool.price, rel=1e-15)
    free = make_pool(fee=0.0)
    predicted = free.price_after_sell(125.0)
    free.sell(125.0)
    assert predicted == pytest.approx(free.price, rel=1e-12)
    assert predicted == pytest.approx(3e6 * 1000.0 / 1125.0**2, rel=1e-12)


@pytest.mark.parametrize("units", [100.0, -100.0])
def test_price_after_sell_matches_actual_trade_with_fee(units: float) -> None:
    pool = make_pool()
    predicted = pool.price_after_sell(units)
    if units > 0:
        pool.sell(units)
    else:  # buy exactly -units out of the pool
        x, y = pool.units, pool.usd
        pool.buy_with((x * y / (x + units) - y) / (1 - FEE))
        assert pool.units == pytest.approx(x + units, rel=1e-12)
    assert predicted == pytest.approx(pool.price, rel=1e-9)


@pytest.mark.parametrize(
    ("units", "usd", "fee", "field"),
    [
        (0.0, 1e6, FEE, "reserves"),
        (-1.0, 1e6, FEE, "reserves"),
        (10.0, 0.0, FEE, "reserves"),
        (10.0, -5.0, FEE, "reserves"),
        (10.0, 1e6, -0.01, "fee"),
        (10.0, 1e6, 1.0, "fee"),
        (10.0, 1e6, math.nan, "fee"),
    ],
)
def test_bad_constructor_input_names_the_field(
    units: float, usd: float, fee: float, field: str
) -> None:
    with pytest.raises(ValueError, match=rf"pool ETH: {field}"):
        ConstantProductPool("ETH", units, usd, fee)


@pytest.mark.parametrize(("units", "usd"), [(math.nan, 1e6), (10.0, math.nan)])
def test_nan_reserves_rejected(units: float, usd: float) -> None:
    with pytest.raises(ValueError, match="reserves"):
        ConstantProductPool("ETH", units, usd, FEE)
