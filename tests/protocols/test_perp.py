"""Tests for liqnet.protocols.perp: funding, cash identity, levers and trader flow.

The liquidation index and the deficit waterfall are in ``test_perp_liquidation``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.scenarios import load
from tests.helpers.perp_worlds import (
    HOUR,
    SIDES,
    add_position,
    assert_cash_identity,
    clean_eth_book,
    expected_hourly_rate,
    only_side,
    perp_of,
    world,
)

# -- funding ---------------------------------------------------------------------------


def test_funding_is_the_mark_index_premium_plus_interest() -> None:
    # dYdX v4: 8-hour rate = premium + interest (0.01% per 8 h), paid hourly as 1/8.
    model = world()
    perp = perp_of(model)
    eth = perp.markets["ETH"]
    longs, shorts = (eth.sides[s].sums["size"] for s in ("long", "short"))
    assert longs > 1.1 * shorts  # the default 55/45 book: skew alone no longer pays
    perp.accrue(HOUR)
    # Pool (mark) at the oracle (index): only the interest component, 10.95% a year,
    # inside GMX v2's published 0.95-31.5%/yr (the skew rule gave ~110%/yr here).
    assert eth.funding_rate_hourly == pytest.approx(0.0001 / 8, rel=1e-12)
    assert 0.0095 < eth.funding_rate_hourly * 8760 < 0.315
    # The mark 0.2% above the index: inside the 0.3% impact spread, no premium.
    model.oracle_prices["ETH"] = 3000.0 / 1.002
    perp.accrue(HOUR)
    assert eth.funding_rate_hourly == pytest.approx(0.0001 / 8, rel=1e-12)
    # The mark 1% above the index: longs pay the impact bid's premium.
    model.oracle_prices["ETH"] = 3000.0 / 1.01
    index = eth.funding_index
    perp.accrue(2 * HOUR)
    rate = (1.01 * 0.997 - 1 + 0.0001) / 8
    assert eth.funding_rate_hourly == pytest.approx(rate, rel=1e-9)
    assert eth.funding_index - index == pytest.approx(rate * 2 * 3000.0 / 1.01, rel=1e-9)
    # The mark below the index (a cascade's forced sales on the pool): shorts pay the
    # impact ask's discount, and the price lever scales the premium, not the interest.
    model.oracle_prices["ETH"] = 3000.0 / 0.98
    perp.apply_levers(np.array([0.0, 1.0, 0, 0, 0, 0]))  # price multiplier 1.05
    perp.accrue(HOUR)
    discount = 1 - 0.98 * 1.003
    assert eth.funding_rate_hourly == pytest.approx((-discount * 1.05 + 0.0001) / 8, rel=1e-9)


def test_positions_close_when_funding_carry_exceeds_their_edge() -> None:
    model = world(positions=400)
    perp = perp_of(model)
    eth, btc = perp.markets["ETH"], perp.markets["BTC"]
    counts = {(a, s): m.sides[s].positions.count for a, m in perp.markets.items() for s in SIDES}
    perp.accrue(HOUR)
    perp.act_users(2 * 24 * HOUR, _RecordingRng())  # type: ignore[arg-type]
    # Only the interest component: every trader opened expecting that carry.
    assert counts == {
        (a, s): m.sides[s].positions.count for a, m in perp.markets.items() for s in SIDES
    }
    # The ETH mark 4% above the index: longs now expect to pay the premium (beyond the
    # 0.3% impact spread) / 8 an hour for its persistence (8 h) plus the interest over
    # their 20-day horizon.
    model.oracle_prices["ETH"] = 3000.0 / 1.04
    perp.accrue(HOUR)
    carry = 0.0001 / 8 * 480 + (1.04 * 0.997 - 1) / 8 * 8
    longs = eth.sides["long"]
    edges_before = longs.positions.columns["edge"][longs.positions.active_slots()]
    perp.act_users(2 * 24 * HOUR, _RecordingRng())  # type: ignore[arg-type]  # no churn draws
    edges = longs.positions.columns["edge"][longs.positions.active_slots()]
    assert longs.positions.count == int((edges_before >= carry).sum())
    assert 0 < longs.positions.count < counts[("ETH", "long")]
    assert edges.min() >= carry
    # Shorts receive the premium and BTC's carry did not move: nobody else left.
    assert eth.sides["short"].positions.count == counts[("ETH", "short")]
    assert all(btc.sides[s].positions.count == counts[("BTC", s)] for s in SIDES)
    assert_cash_identity(perp)


def test_skew_term_when_configured() -> None:
    model = world(skew_premium=0.01)
    perp = perp_of(model)
    only_side(perp, "ETH", "long")
    eth, btc = perp.markets["ETH"], perp.markets["BTC"]
    perp.accrue(2 * HOUR)
    # Only longs: skew 1, premium 0.01 per 8 h plus interest, under the 12% cap.
    assert eth.funding_rate_hourly == pytest.approx(0.0101 / 8, rel=1e-12)
    assert eth.funding_index == pytest.approx(0.0101 / 8 * 2 * 3000.0, rel=1e-12)
    # BTC keeps both sides: the skew from the running sums.
    longs, shorts = btc.sides["long"].sums["size"], btc.sides["short"].sums["size"]
    assert longs > 0 and shorts > 0
    rate = (0.01 * (longs - shorts) / (longs + shorts) + 0.0001) / 8
    assert btc.funding_rate_hourly == pytest.approx(rate, rel=1e-12)
    assert btc.funding_index == pytest.approx(rate * 2 * 90_000.0, rel=1e-12)


def test_funding_index_accumulates_rate_hours_price() -> None:
    model = world(interest_rate_8h=0.002)
    perp = perp_of(model)
    eth = perp.markets["ETH"]
    index = 0.0
    for hours, price in ((1.0, 3000.0), (0.25, 2500.0), (6.0, 3300.0)):
        model.oracle_prices["ETH"] = price
        perp.accrue(hours * HOUR)
        rate = expected_hourly_rate(perp, eth)
        assert eth.funding_rate_hourly == pytest.approx(rate, rel=1e-12)
        index += rate * hours * price
        assert eth.funding_index == pytest.approx(index, rel=1e-12)


def test_longs_pay_what_shorts_receive() -> None:
    model = world()
    perp = perp_of(model)
    eth = perp.markets["ETH"]
    longs, shorts = eth.sides["long"], eth.sides["short"]
    before = {n: s.pnl(None, 3000.0, eth.funding_index) for n, s in eth.sides.items()}
    perp.accrue(3 * HOUR)
    delta_f = eth.funding_index
    assert delta_f > 0  # baseline has 55% longs: positive skew
    after = {n: s.pnl(None, 3000.0, eth.funding_index) for n, s in eth.sides.items()}
    assert after["long"] - before["long"] == pytest.approx(-longs.sums["size"] * delta_f)
    assert after["short"] - before["short"] == pytest.approx(shorts.sums["size"] * delta_f)


@pytest.mark.parametrize(("keep", "sign"), [("long", 1.0), ("short", -1.0)])
def test_dydx_large_cap_cap_is_12_percent_per_8h(keep: str, sign: float) -> None:
    perp = perp_of(world(skew_premium=0.5))
    only_side(perp, "ETH", keep)
    eth = perp.markets["ETH"]
    assert (eth.initial_margin, eth.maintenance_margin) == (0.05, 0.03)
    perp.accrue(HOUR)
    # 600% x (5% - 3%) = 12% per 8 h = 1.5% per hour.
    assert eth.funding_rate_hourly == pytest.approx(sign * 0.015, rel=1e-12)
    assert eth.funding_index == pytest.approx(sign * 0.015 * 3000.0, rel=1e-12)


def test_mid_cap_tier_cap_is_30_percent_per_8h() -> None:
    model = MarketModel(
        load(
            "baseline",
            {
                **{f"protocols.{k}.params.positions": 200 for k in range(3)},
                "protocols.2.params.skew_premium": 1.0,
                "protocols.2.params.markets.ETH.initial_margin": 0.10,
                "protocols.2.params.markets.ETH.maintenance_margin": 0.05,
            },
        ),
        seed=1,
    )
    perp = perp_of(model)
    only_side(perp, "ETH", "long")
    perp.accrue(HOUR)
    assert perp.markets["ETH"].funding_rate_hourly == pytest.approx(0.30 / 8, rel=1e-12)


def test_interest_and_price_multiplier_inside_the_clamp() -> None:
    perp = perp_of(world(interest_rate_8h=0.005, skew_premium=0.01))
    only_side(perp, "ETH", "short")  # skew -1: premium -0.01
    perp.apply_levers(np.array([0.0, 1.0, 0, 0, 0, 0]))  # price multiplier 1.05
    perp.accrue(HOUR)
    assert perp.price_multiplier == pytest.approx(1.05)
    expected = (-0.01 * 1.05 + 0.005) / 8
    assert perp.markets["ETH"].funding_rate_hourly == pytest.approx(expected, rel=1e-12)


# -- cash identity ---------------------------------------------------------------------


def test_cash_identity_through_every_phase() -> None:
    model = world(seed=6, insurance_fund_usd=20_000.0)
    perp = perp_of(model)
    rng = np.random.default_rng(3)
    assert_cash_identity(perp)
    # LPs funded vault, fund and treasury; traders paid margins and opening fees.
    assert model.external_cash["lps"] == pytest.approx(-(100e6 + 20_000.0 + 1e6))
    margins = sum(s.sums["margin"] for m in perp.markets.values() for s in m.sides.values())
    fees = perp.treasury - 1e6
    assert fees == pytest.approx(0.0005 * 150e6, rel=1e-9)
    assert model.external_cash["traders"] == pytest.approx(-(margins + fees), rel=1e-12)
    for level in (0.9, 0.8, 1.15, 1.3):
        perp.act_users(2 * 24 * HOUR, rng)
        assert_cash_identity(perp)
        perp.accrue(6 * HOUR)
        assert_cash_identity(perp)
        for asset in perp.markets:
            model.oracle_prices[asset] *= level
        offers = perp.liquidation_candidates()
        assert offers
        for offer in offers:
            perp.execute_liquidations(offer, np.arange(len(offer)) % 2 == 0)
            assert_cash_identity(perp)
    assert perp.realised_bad_debt > 0 or perp.adl_usd > 0  # the waterfall was exercised


def test_cash_identity_and_conservation_over_model_steps() -> None:
    model = MarketModel(
        load(
            "flash_crash",
            {f"protocols.{k}.params.positions": 200 for k in range(3)},
        ),
        seed=2,
    )
    perp = perp_of(model)
    total = model.total_cash()
    scale = max(abs(v) for v in model.external_cash.values())
    liquidated = 0.0
    for _ in range(40):
        model.step()
        liquidated += perp.liquidated_usd_step
        assert_cash_identity(perp)
        assert model.total_cash() == pytest.approx(total, abs=1e-9 * scale)
    assert liquidated > 0


# -- levers ----------------------------------------------------------------------------


def test_risk_lever_moves_margins_by_risk_step_keeping_the_gap() -> None:
    perp = perp_of(world())
    perp.apply_levers(np.array([1.0, 0, 0, 0, 0, 0]))
    for market in perp.markets.values():
        assert market.maintenance_margin == pytest.approx(0.032)
        assert market.initial_margin == pytest.approx(0.052)
    perp.apply_levers(np.array([-0.5, 0, 0, 0, 0, 0]))
    eth = perp.markets["ETH"]
    assert eth.maintenance_margin == pytest.approx(0.031)
    assert eth.initial_margin - eth.maintenance_margin == pytest.approx(0.02)
    perp.apply_levers(np.array([7.0, 0, 0, 0, 0, 0]))  # clipped to +1
    assert eth.maintenance_margin == pytest.approx(0.033)


@pytest.mark.parametrize(("lever", "bound"), [(1.0, 0.25), (-1.0, 0.005)])
def test_risk_lever_is_bounded(lever: float, bound: float) -> None:
    perp = perp_of(world(skew_premium=0.5))
    for _ in range(200):
        perp.apply_levers(np.array([lever, 0, 0, 0, 0, 0]))
    for market in perp.markets.values():
        assert market.maintenance_margin == pytest.approx(bound)
        assert market.initial_margin == pytest.approx(bound + 0.02)
    # The funding cap depends on the unchanged gap: still 12% per 8 h.
    only_side(perp, "ETH", "long")
    perp.accrue(HOUR)  # premium 0.5 per 8 h, capped at 6 x 0.02
    assert perp.markets["ETH"].funding_rate_hourly == pytest.approx(0.015)


@pytest.mark.parametrize(("lever", "bound"), [(1.0, 3.0), (-1.0, 0.5)])
def test_price_lever_is_bounded(lever: float, bound: float) -> None:
    perp = perp_of(world())
    perp.apply_levers(np.array([0.0, lever, 0, 0, 0, 0]))
    assert perp.price_multiplier == pytest.approx(1.0 + 0.05 * lever)
    for _ in range(100):
        perp.apply_levers(np.array([0.0, lever, 0, 0, 0, 0]))
    assert perp.price_multiplier == pytest.approx(bound)
    for market in perp.markets.values():  # the price lever leaves margins alone
        assert (market.initial_margin, market.maintenance_margin) == (0.05, 0.03)


# -- trader flow -----------------------------------------------------------------------


class _RecordingRng:
    """Stands in for a Generator: records Poisson means and draws nothing (zero events)."""

    def __init__(self) -> None:
        self.means: list[float] = []

    def poisson(self, lam: float) -> int:
        self.means.append(float(lam))
        return 0


def test_trader_turnover_is_per_position_and_follows_market_share() -> None:
    perp = perp_of(world())
    rng = _RecordingRng()
    days = 2.0
    perp.act_users(days * 24 * HOUR, rng)  # type: ignore[arg-type]
    turnover = perp.params.trader_turnover_per_day
    long_share = perp.params.long_share
    expected = []
    for market, spec in zip(perp.markets.values(), perp.params.markets.values(), strict=True):
        for side in market.sides.values():
            side_share = long_share if side.is_long else 1 - long_share
            expected.append(turnover * days * side.positions.count)  # closes
            expected.append(turnover * days * perp.params.positions * spec.share * side_share)
    assert rng.means == pytest.approx(expected, rel=1e-9)


def test_voluntary_close_settles_pnl_through_the_vault() -> None:
    perp = perp_of(world())
    clean_eth_book(perp)
    slot = add_position(perp, "ETH", "long", 2.0, 3000.0, 1000.0)
    eth = perp.markets["ETH"]
    perp.apply_levers(np.array([0.0, 1.0, 0, 0, 0, 0]))  # fees x 1.05
    vault, treasury, traders = perp.vault_cash, perp.treasury, perp.model.external_cash["traders"]
    perp._close_voluntarily(eth, eth.sides["long"], np.array([slot]), 3300.0)
    fee = 0.0005 * 1.05 * 2 * 3300.0
    assert perp.vault_cash == pytest.approx(vault - 600.0)
    assert perp.treasury == pytest.approx(treasury + fee)
    assert perp.model.external_cash["traders"] == pytest.approx(traders + 1600.0 - fee)
    assert math.isclose(eth.sides["long"].sums["size"], 0.0, abs_tol=1e-9)
    assert_cash_identity(perp)


def test_revenue_counts_from_step_zero_not_the_opening_book() -> None:
    model = world()
    dydx = model.protocols["dydx"]
    # The opening book's fees went to the treasury but are not income of the run.
    assert dydx.revenue == 0.0 and dydx.treasury > dydx.params.treasury_usd
    model.step()
    assert dydx.revenue >= 0.0
