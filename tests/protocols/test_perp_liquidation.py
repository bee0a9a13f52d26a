"""Tests for liqnet.protocols.perp: the liquidation index and the deficit waterfall
(insurance fund, LP vault, auto-deleveraging) and GMX-style ADL."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.protocols.perp import PerpExchange
from tests.helpers.perp_worlds import (
    HOUR,
    SIDES,
    add_position,
    assert_cash_identity,
    assert_running_sums,
    brute_force,
    candidates,
    check_index,
    clean_eth_book,
    perp_of,
    world,
)

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
    # A vault of $1 and no insurance fund: deficits beyond the vault's NAV are ADL'd.
    model = world(seed=2, positions=400, insurance_fund_usd=0.0, vault_usd=1.0)
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
        model.world.transfer("traders", perp, usd=float(margin.sum()))
        assert side.positions.capacity > capacity
    assert_cash_identity(perp)
    check_index(perp, LEVELS)
    # A crash with an empty fund and vault: deficits are taken from profitable shorts.
    model.oracle_prices["ETH"] = 3000.0 * 0.7
    for offer in perp.liquidation_candidates():
        perp.execute_liquidations(offer, np.ones(len(offer), dtype=bool))
    assert perp.adl_usd > 0
    model.oracle_prices["ETH"] = 3000.0
    check_index(perp, (0.7, 0.75, 0.8, 0.9, 1.0, 1.1, 1.3, 1.5, 1.6))
    assert_running_sums(eth.sides["short"])


# -- deficit waterfall -----------------------------------------------------------------


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


def _shorts(perp: PerpExchange, slots: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(size, margin) of the named short slots; (0, 0) once closed."""
    side = perp.markets["ETH"].sides["short"]
    cols, active = side.positions.columns, side.positions.active
    return {
        name: (float(cols["size"][slot]), float(cols["margin"][slot])) if active[slot] else (0, 0)
        for name, slot in slots.items()
    }


def _crash_a_long_into_the_adl_book(
    insurance_fund_usd: float, long_margin: float, vault_usd: float = 100e6
) -> tuple:
    """One 10 ETH long entered at 3,000 with ``long_margin``, liquidated at 2,000 against
    :func:`_adl_book`. Returns ``(perp, shorts, (size, margin) before, after, vault cash
    before, trader cash before, bad debt)``."""
    perp = perp_of(world(insurance_fund_usd=insurance_fund_usd, vault_usd=vault_usd))
    shorts = _adl_book(perp)
    add_position(perp, "ETH", "long", 10.0, 3000.0, long_margin)
    before = _shorts(perp, shorts)
    vault, traders = perp.vault_cash, perp.model.external_cash["traders"]
    bad_debt = liquidate_eth_longs(perp, 2000.0)
    return perp, shorts, before, _shorts(perp, shorts), vault, traders, bad_debt


def test_vault_bears_a_deficit_before_any_winner() -> None:
    # The long's equity at 2000: -3000; no insurance fund. The LP vault is the
    # counterparty: it takes the loss and the winning shorts keep their positions.
    perp, _, before, after, vault, _, bad_debt = _crash_a_long_into_the_adl_book(0.0, 7000.0)
    assert after == before
    assert perp.adl_usd == 0.0 and perp.adl_closed_usd == 0.0
    np.testing.assert_allclose(bad_debt, [3000.0])
    assert perp.realised_bad_debt == pytest.approx(3000.0)
    # The vault books the long's 10,000 loss, pays its 3,000 deficit and the keeper.
    assert perp.vault_cash == pytest.approx(vault + 10_000.0 - 3000.0 - 10.0)
    assert_cash_identity(perp)


def test_waterfall_insurance_then_vault_then_adl_closing_best_ranked_winners() -> None:
    # The long's equity at 2000: -9500. Keeper reward 10 and 990 of the deficit from the
    # fund; the $1 vault's NAV is then 1 + 10,000 (the long's loss) - 5,200 (the shorts'
    # PnL) = 4,801: the vault bears that, and ADL takes the other 8,510 - 4,801 = 3,709.
    perp, _, before, after, vault, traders, bad_debt = _crash_a_long_into_the_adl_book(
        1000.0, 500.0, vault_usd=1.0
    )
    assert perp.insurance_fund == 0.0
    np.testing.assert_allclose(bad_debt, [4801.0])
    assert perp.realised_bad_debt == pytest.approx(4801.0)
    assert perp.adl_usd == pytest.approx(3709.0)
    assert perp.vault_nav() == pytest.approx(0.0, abs=1e-6)
    # Rank (Hyperliquid): s2 3.57 > s3 2.73 > s1 2.31. s2 (profit 2,500) and s3 (1,000)
    # are closed outright, s1 (2,000) in part: 209 / 2000 of it. Positions are reduced,
    # size and margin together; margins are not cut, and the loser is untouched.
    assert after["s2"] == (0, 0) and after["s3"] == (0, 0)
    kept = 1.0 - 209.0 / 2000.0
    assert after["s1"] == pytest.approx((2.0 * kept, 600.0 * kept))
    assert after["loser"] == before["loser"]
    # The closed parts settle at zero profit: their traders get back their margin only.
    returned = 1000.0 + 100.0 + 600.0 * (1.0 - kept)
    assert perp.model.external_cash["traders"] == pytest.approx(traders + returned)
    assert perp.adl_closed_usd == pytest.approx((5.0 + 1.0 + 2.0 * (1 - kept)) * 2000.0)
    # The vault paid the deficit it could bear; the keeper was paid from the fund.
    assert perp.vault_cash == pytest.approx(vault + 10_000.0 - 8510.0)
    side = perp.markets["ETH"].sides["short"]
    assert_running_sums(side)
    assert_cash_identity(perp)
    # The reduced short keeps its liquidation key: the index agrees with a scan.
    check_index(perp, (0.6, 0.7, 0.8, 1.0, 1.2, 1.5))


def test_adl_when_winners_profit_reaches_55_percent_of_the_pool() -> None:
    # GMX v2: ADL from trader PnL at 55% of the pool until it is back to 50%, closing the
    # best-ranked winners at the mark (their profit paid in full).
    perp = perp_of(world(vault_usd=8000.0))
    shorts = _adl_book(perp)
    vault, traders = perp.vault_cash, perp.model.external_cash["traders"]
    assert vault == pytest.approx(8000.0)
    perp.model.oracle_prices["ETH"] = 2000.0
    before = _shorts(perp, shorts)
    # Shorts' PnL 5,200 > 0.55 x 8,000: realise (5,200 - 4,000) / 0.5 = 2,400 of profit
    # from s2 (the top rank, profit 2,500): 96% of it closes.
    perp.accrue(1e-9 * HOUR)
    after = _shorts(perp, shorts)
    assert after["s2"] == pytest.approx((5.0 * 0.04, 1000.0 * 0.04), rel=1e-6)
    assert {k: after[k] for k in ("s1", "s3", "loser")} == {
        k: before[k] for k in ("s1", "s3", "loser")
    }
    assert perp.vault_cash == pytest.approx(vault - 2400.0, rel=1e-6)
    side_pnl = perp.markets["ETH"].sides["short"].pnl(None, 2000.0, 0.0)
    assert side_pnl / perp.vault_cash == pytest.approx(0.5, rel=1e-6)
    paid = 0.96 * (1000.0 + 2500.0)
    assert perp.model.external_cash["traders"] == pytest.approx(traders + paid, rel=1e-6)
    assert perp.adl_usd == 0.0  # nobody forfeited profit
    assert_running_sums(perp.markets["ETH"].sides["short"])
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
