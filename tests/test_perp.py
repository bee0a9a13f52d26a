"""Tests for liqnet.protocols.perp: funding, liquidation index, deficit waterfall, cash, levers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols.perp import PerpExchange, PerpMarket, PerpSide
from liqnet.scenarios import load

HOUR = 1.0 / 8760.0  # one hour in years
SIDES = ("long", "short")


def world(seed: int = 1, positions: int = 200, **perp_params: Any) -> MarketModel:
    """The baseline world, ``positions`` per protocol; ``perp_params`` override dydx."""
    overrides: dict[str, Any] = {f"protocols.{k}.params.positions": positions for k in range(3)}
    overrides.update({f"protocols.2.params.{k}": v for k, v in perp_params.items()})
    return MarketModel(load("baseline", overrides), seed=seed)


def perp_of(model: MarketModel) -> PerpExchange:
    """The perp exchange of the baseline world."""
    perp = model.protocols["dydx"]
    assert isinstance(perp, PerpExchange)
    return perp


def assert_cash_identity(perp: PerpExchange) -> None:
    """``cash == margins + vault_cash + insurance_fund + treasury`` (running sums)."""
    margins = sum(s.sums["margin"] for m in perp.markets.values() for s in m.sides.values())
    total = margins + perp.vault_cash + perp.insurance_fund + perp.treasury
    assert perp.cash == pytest.approx(total, rel=1e-6)


def assert_running_sums(side: PerpSide) -> None:
    """A side's running sums equal sums over its active positions."""
    slots = side.positions.active_slots()
    cols = side.positions.columns
    size = cols["size"][slots]
    expected = {
        "size": size.sum(),
        "size_entry": size @ cols["entry"][slots],
        "size_funding": size @ cols["funding_entry"][slots],
        "margin": cols["margin"][slots].sum(),
    }
    for name, value in expected.items():
        assert side.sums[name] == pytest.approx(value, rel=1e-9, abs=1e-6), name


def brute_force(perp: PerpExchange, market: PerpMarket, side: PerpSide) -> set[int]:
    """Active slots with ``margin + pnl < maintenance_margin * size * price`` (a scan)."""
    price = perp.model.oracle_prices[market.asset]
    slots = side.positions.active_slots()
    cols = side.positions.columns
    equity = cols["margin"][slots] + side.pnl(slots, price, market.funding_index)
    below = equity < market.maintenance_margin * cols["size"][slots] * price
    return set(slots[below].tolist())


def candidates(perp: PerpExchange) -> dict[str, list[int]]:
    """Slots offered per book (``"ETH:long"``, ...), every book present."""
    found: dict[str, list[int]] = {f"{a}:{s}": [] for a in perp.markets for s in SIDES}
    for offer in perp.liquidation_candidates():
        assert offer.protocol is perp
        np.testing.assert_array_equal(offer.repay_usd, 0.0)
        np.testing.assert_array_equal(offer.seize_units, 0.0)
        np.testing.assert_array_equal(offer.reward_usd, perp.params.keeper_reward_usd)
        found[offer.book] = offer.slots.tolist()
    return found


def check_index(perp: PerpExchange, levels: tuple[float, ...]) -> int:
    """Compare the index with a brute-force scan at each price level; count the hits."""
    model = perp.model
    base = dict(model.oracle_prices)
    hits = 0
    for level in levels:
        for asset in perp.markets:
            model.oracle_prices[asset] = base[asset] * level
        found = candidates(perp)
        for asset, market in perp.markets.items():
            for name, side in market.sides.items():
                got = found[f"{asset}:{name}"]
                assert len(got) == len(set(got))
                assert set(got) == brute_force(perp, market, side), (level, asset, name)
                hits += len(got)
    model.oracle_prices.update(base)
    return hits


def only_side(perp: PerpExchange, asset: str, keep: str) -> None:
    """Close every position on the other side of ``asset`` voluntarily at the oracle."""
    close_all(perp, asset, "short" if keep == "long" else "long", perp.model.oracle_prices[asset])


def close_all(perp: PerpExchange, asset: str, side_name: str, price: float) -> None:
    """Close a whole side voluntarily at ``price`` and mark its slots in the index."""
    market = perp.markets[asset]
    side = market.sides[side_name]
    slots = side.positions.active_slots()
    perp._close_voluntarily(market, side, slots, price)
    side.index.mark_dirty(slots)
    assert side.positions.count == 0


def add_position(
    perp: PerpExchange, asset: str, side: str, size: float, entry: float, margin: float
) -> int:
    """Open one hand-made position; the trader's deposit moves into the exchange's cash."""
    s = perp.markets[asset].sides[side]
    before = set(s.positions.active_slots().tolist())
    s.add(
        size=np.array([size]),
        entry=np.array([entry]),
        margin=np.array([margin]),
        funding_entry=np.array([perp.markets[asset].funding_index]),
    )
    perp.cash += margin
    perp.model.external_cash["traders"] -= margin
    (slot,) = set(s.positions.active_slots().tolist()) - before
    return slot


def expected_hourly_rate(perp: PerpExchange, market: PerpMarket) -> float:
    """clamp(skew_premium * skew * price_multiplier + interest_8h, +-cap) / 8."""
    p = perp.params
    longs, shorts = (market.sides[s].sums["size"] for s in SIDES)
    skew = (longs - shorts) / (longs + shorts)
    cap = p.funding_cap_multiple * (market.initial_margin - market.maintenance_margin)
    raw = p.skew_premium * skew * perp.price_multiplier + p.interest_rate_8h
    return min(cap, max(-cap, raw)) / 8.0


# -- funding ---------------------------------------------------------------------------


def test_funding_with_known_skew_and_index_advance() -> None:
    model = world()
    perp = perp_of(model)
    only_side(perp, "ETH", "long")
    eth, btc = perp.markets["ETH"], perp.markets["BTC"]
    perp.accrue(2 * HOUR)
    # Only longs: skew 1, premium 0.01 per 8 h, under the 12% cap.
    assert eth.funding_rate_hourly == pytest.approx(0.01 / 8, rel=1e-12)
    assert eth.funding_index == pytest.approx(0.01 / 8 * 2 * 3000.0, rel=1e-12)
    # BTC keeps both sides: the skew from the running sums.
    longs, shorts = btc.sides["long"].sums["size"], btc.sides["short"].sums["size"]
    assert longs > 0 and shorts > 0
    rate = 0.01 * (longs - shorts) / (longs + shorts) / 8
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
    perp = perp_of(world(interest_rate_8h=0.005))
    only_side(perp, "ETH", "short")  # skew -1: premium -0.01
    perp.apply_levers(np.array([0.0, 1.0, 0, 0, 0, 0]))  # price multiplier 1.05
    perp.accrue(HOUR)
    assert perp.price_multiplier == pytest.approx(1.05)
    expected = (-0.01 * 1.05 + 0.005) / 8
    assert perp.markets["ETH"].funding_rate_hourly == pytest.approx(expected, rel=1e-12)


# -- liquidation index -----------------------------------------------------------------

LEVELS = (1.0, 0.97, 0.93, 0.88, 0.8, 0.65, 1.03, 1.07, 1.12, 1.2, 1.4)


def test_liquidation_candidates_equal_brute_force_through_a_life() -> None:
    # 400 positions: every side starts with more than 64 (see the xfail test below).
    model = world(seed=4, positions=400, skew_premium=0.3)
    perp = perp_of(model)
    rng = np.random.default_rng(99)
    hits = check_index(perp, LEVELS)
    assert candidates(perp) == {f"{a}:{s}": [] for a in perp.markets for s in SIDES}
    for stage in range(6):
        # Traders close and open (dirty slots, reused slots, sometimes a rebuild).
        perp.act_users(5 * 24 * HOUR, rng)
        hits += check_index(perp, LEVELS)
        # Funding accrues: keys are invariant, thresholds move.
        perp.accrue(4 * HOUR)
        hits += check_index(perp, LEVELS)
        # Risk lever moves the maintenance margin (keys are invariant to it too).
        perp.apply_levers(np.array([1.0 if stage % 2 else -1.0, 0, 0, 0, 0, 0]))
        hits += check_index(perp, LEVELS)
        # A liquidation round at a lower price: closes positions, may deleverage.
        for asset in perp.markets:
            model.oracle_prices[asset] *= 0.9 if stage % 2 else 1.08
        for offer in perp.liquidation_candidates():
            perp.execute_liquidations(offer, np.ones(len(offer), dtype=bool))
        hits += check_index(perp, LEVELS)
        for market in perp.markets.values():
            for side in market.sides.values():
                assert_running_sums(side)
                assert brute_force(perp, market, side) == set()
    assert hits > 500  # the comparisons were not all of empty sets


def test_small_seeded_books_are_in_the_index() -> None:
    perp = perp_of(world(positions=100))  # every side seeded with fewer than 64 positions
    for market in perp.markets.values():
        for side in market.sides.values():
            assert 0 < side.positions.count <= 64
    check_index(perp, LEVELS)


def test_index_after_storage_growth_and_adl() -> None:
    model = world(seed=2, positions=400, insurance_fund_usd=0.0)
    perp = perp_of(model)
    eth = perp.markets["ETH"]
    rng = np.random.default_rng(5)
    # Open many positions at once: the storage grows and the index re-sorts everything.
    for name in SIDES:
        side = eth.sides[name]
        capacity = side.positions.capacity
        size = rng.uniform(1.0, 30.0, 400)
        margin = size * 3000.0 * rng.uniform(0.05, 0.5, 400)
        side.add(size=size, entry=np.full(400, 3000.0), margin=margin,
                 funding_entry=np.full(400, eth.funding_index))  # fmt: skip
        perp.cash += float(margin.sum())
        model.external_cash["traders"] -= float(margin.sum())
        assert side.positions.capacity > capacity
    assert_cash_identity(perp)
    check_index(perp, LEVELS)
    # A crash with an empty insurance fund: deficits are taken from profitable shorts.
    model.oracle_prices["ETH"] = 3000.0 * 0.7
    for offer in perp.liquidation_candidates():
        perp.execute_liquidations(offer, np.ones(len(offer), dtype=bool))
    assert perp.adl_usd > 0
    model.oracle_prices["ETH"] = 3000.0
    check_index(perp, (0.7, 0.75, 0.8, 0.9, 1.0, 1.1, 1.3, 1.5, 1.6))
    assert_running_sums(eth.sides["short"])


# -- deficit waterfall -----------------------------------------------------------------


def clean_eth_book(perp: PerpExchange) -> None:
    """Close every ETH position voluntarily at 3,000 (no PnL, books settled)."""
    for side_name in SIDES:
        close_all(perp, "ETH", side_name, 3000.0)


def liquidate_eth_longs(perp: PerpExchange, price: float) -> np.ndarray:
    """Move ETH to ``price`` and liquidate the whole ETH long offer; returns bad debt."""
    perp.model.oracle_prices["ETH"] = price
    (offer,) = [o for o in perp.liquidation_candidates() if o.book == "ETH:long"]
    return perp.execute_liquidations(offer, np.ones(len(offer), dtype=bool)).bad_debt_usd


def test_insurance_fund_covers_a_bankrupt_long_first() -> None:
    perp = perp_of(world())
    clean_eth_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, 1500.0)  # bankrupt below 2850
    short = add_position(perp, "ETH", "short", 4.0, 3000.0, 3000.0)
    assert_cash_identity(perp)
    insurance, vault, cash = perp.insurance_fund, perp.vault_cash, perp.cash
    bad_debt = liquidate_eth_longs(perp, 2000.0)
    # Equity 1500 - 10 * 1000 = -8500: all from the insurance fund, as is the reward.
    np.testing.assert_allclose(bad_debt, [0.0])
    assert perp.insurance_fund == pytest.approx(insurance - 8500.0 - 10.0)
    assert perp.vault_cash == pytest.approx(vault + 10_000.0)  # the long's whole loss
    assert perp.cash == pytest.approx(cash - 10.0)  # only the keeper reward left
    assert perp.realised_bad_debt == 0.0 and perp.adl_usd == 0.0
    assert perp.markets["ETH"].sides["short"].positions.columns["margin"][short] == 3000.0
    assert perp.markets["ETH"].sides["long"].positions.count == 0
    assert_cash_identity(perp)


def test_penalty_goes_to_insurance_when_equity_is_positive() -> None:
    perp = perp_of(world())
    clean_eth_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, 1500.0)
    insurance, traders = perp.insurance_fund, perp.model.external_cash["traders"]
    bad_debt = liquidate_eth_longs(perp, 2880.0)  # equity 300 < 3% x 28,800 = 864
    penalty = 0.015 * 10 * 2880.0  # 432 > 300: capped at the equity
    assert penalty > 300.0
    np.testing.assert_allclose(bad_debt, [0.0])
    assert perp.insurance_fund == pytest.approx(insurance + 300.0 - 10.0)
    assert perp.model.external_cash["traders"] == pytest.approx(traders)  # nothing back
    assert_cash_identity(perp)


def _adl_book(perp: PerpExchange) -> dict[str, int]:
    """Three profitable shorts at 2,000 with distinct ADL ranks, and one losing short.

    rank = (entry / mark) * notional / (margin + pnl):
    s1: 1.5 * 4000 / 2600 = 2.31; s2: 1.25 * 10000 / 3500 = 3.57; s3: 1.5 * 2000 / 1100
    = 2.73; the loser (entry 1900) is never cut.
    """
    clean_eth_book(perp)
    return {
        "s1": add_position(perp, "ETH", "short", 2.0, 3000.0, 600.0),  # pnl +2000
        "s2": add_position(perp, "ETH", "short", 5.0, 2500.0, 1000.0),  # pnl +2500
        "s3": add_position(perp, "ETH", "short", 1.0, 3000.0, 100.0),  # pnl +1000
        "loser": add_position(perp, "ETH", "short", 3.0, 1900.0, 2000.0),  # pnl -300
    }


def _short_margins(perp: PerpExchange, slots: dict[str, int]) -> dict[str, float]:
    margin = perp.markets["ETH"].sides["short"].positions.columns["margin"]
    return {name: float(margin[slot]) for name, slot in slots.items()}


def test_adl_cuts_profitable_shorts_in_rank_order() -> None:
    perp = perp_of(world(insurance_fund_usd=0.0))
    shorts = _adl_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, 7000.0)  # equity at 2000: -3000
    before = _short_margins(perp, shorts)
    vault = perp.vault_cash
    bad_debt = liquidate_eth_longs(perp, 2000.0)
    after = _short_margins(perp, shorts)
    cut = {name: before[name] - after[name] for name in shorts}
    # s2 (rank 3.57) gives its whole 2500 profit, s3 (2.73) the last 500, s1 nothing.
    assert cut == pytest.approx({"s2": 2500.0, "s3": 500.0, "s1": 0.0, "loser": 0.0})
    assert sum(cut.values()) == pytest.approx(3000.0)
    assert perp.adl_usd == pytest.approx(3000.0)
    np.testing.assert_allclose(bad_debt, [0.0])
    assert perp.realised_bad_debt == 0.0
    # The vault books the long's 10,000 loss and pays the keeper (the fund is empty).
    assert perp.vault_cash == pytest.approx(vault + 10_000.0 - 10.0)
    assert_cash_identity(perp)
    assert_running_sums(perp.markets["ETH"].sides["short"])
    # The cut shorts' equity is down by exactly the haircut, and still positive.
    side = perp.markets["ETH"].sides["short"]
    slots = np.array([shorts["s2"], shorts["s3"]])
    equity = side.positions.columns["margin"][slots] + side.pnl(slots, 2000.0, 0.0)
    np.testing.assert_allclose(equity, [1000.0, 600.0])


def test_waterfall_insurance_then_adl_then_vault() -> None:
    perp = perp_of(world(insurance_fund_usd=1000.0))
    shorts = _adl_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, 500.0)  # equity at 2000: -9500
    before = _short_margins(perp, shorts)
    vault = perp.vault_cash
    bad_debt = liquidate_eth_longs(perp, 2000.0)
    after = _short_margins(perp, shorts)
    # Keeper reward 10 from the fund, 990 of the deficit; ADL takes all 5500 of profit;
    # the last 9500 - 990 - 5500 = 3010 is socialised to the vault.
    assert perp.insurance_fund == 0.0
    assert sum(before.values()) - sum(after.values()) == pytest.approx(5500.0)
    assert before["loser"] == after["loser"]
    assert perp.realised_bad_debt == pytest.approx(3010.0)
    np.testing.assert_allclose(bad_debt, [3010.0])
    assert perp.vault_cash == pytest.approx(vault + 10_000.0 - 3010.0)
    assert_cash_identity(perp)


def test_no_profitable_counterparty_becomes_bad_debt() -> None:
    perp = perp_of(world(insurance_fund_usd=0.0))
    clean_eth_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, 1500.0)
    add_position(perp, "ETH", "long", 2.0, 3000.0, 400.0)  # equity -1600
    loser = add_position(perp, "ETH", "short", 3.0, 1900.0, 2000.0)  # losing at 2000
    vault = perp.vault_cash
    bad_debt = liquidate_eth_longs(perp, 2000.0)
    # Deficits 8500 and 1600, nobody to deleverage: all to the vault.
    np.testing.assert_allclose(np.sort(bad_debt), [1600.0, 8500.0])
    assert perp.realised_bad_debt == pytest.approx(10_100.0)
    assert perp.adl_usd == 0.0
    assert perp.vault_cash == pytest.approx(vault + 12_000.0 - 20.0 - 10_100.0)
    margin = perp.markets["ETH"].sides["short"].positions.columns["margin"][loser]
    assert margin == 2000.0
    assert_cash_identity(perp)


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
