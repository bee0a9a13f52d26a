"""Lending pool: Aave v3 health factor, close factor and bonus arithmetic; accrual."""

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols.lending import LendingPool
from tests.helpers.worlds import Small


@pytest.fixture
def pool(small: Small) -> LendingPool:
    return MarketModel(small()).protocols["aave"]


def test_health_factor_above_0_95_closes_half(pool: LendingPool) -> None:
    # HF = 10 * 1000 * 0.83 / 8500 = 0.976 -> close factor 50%.
    repay, seize = pool.liquidation_amounts(
        np.array([10.0]), np.array([8500.0]), 1000.0, 0.83, 0.05
    )
    assert repay[0] == pytest.approx(4250.0)
    assert seize[0] == pytest.approx(4250.0 * 1.05 / 1000.0)  # 4.4625 ETH


def test_health_factor_at_or_below_0_95_closes_all(pool: LendingPool) -> None:
    # HF = 10 * 1000 * 0.83 / 9000 = 0.922.
    repay, seize = pool.liquidation_amounts(
        np.array([10.0]), np.array([9000.0]), 1000.0, 0.83, 0.05
    )
    assert repay[0] == pytest.approx(9000.0)
    assert seize[0] == pytest.approx(9.45)


def test_small_position_closes_all(pool: LendingPool) -> None:
    # HF = 2 * 1000 * 0.83 / 1700 = 0.976 but the debt is under $2,000.
    repay, _ = pool.liquidation_amounts(np.array([2.0]), np.array([1700.0]), 1000.0, 0.83, 0.05)
    assert repay[0] == pytest.approx(1700.0)


def test_seizure_capped_by_collateral(pool: LendingPool) -> None:
    # 11,000 debt against 10 ETH at 1,000: at most 10 ETH for 10,000 / 1.05 repaid.
    repay, seize = pool.liquidation_amounts(
        np.array([10.0]), np.array([11000.0]), 1000.0, 0.83, 0.05
    )
    assert seize[0] == pytest.approx(10.0)
    assert repay[0] == pytest.approx(10000.0 / 1.05)


def test_exhausted_collateral_becomes_bad_debt(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    book = pool.books["ETH"]
    before_bad, before_reserves = pool.realised_bad_debt, pool.reserves
    # Crash the oracle: nearly every ETH position is deeply underwater.
    model.oracle_prices["ETH"] *= 0.3
    offers = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    assert offers and len(offers[0]) > 0.9 * book.positions.count
    offer = offers[0]
    debt = book.positions["scaled_debt"][offer.slots] * pool.borrow_index
    # Collateral runs out when the whole debt plus bonus exceeds it: the rest is bad debt.
    # (The liquidator's part plus the protocol fee is what the borrower loses.)
    assert offer.fee_units is not None
    seized = offer.seize_units + offer.fee_units
    exhausted = np.isclose(seized, book.positions["collateral"][offer.slots])
    assert exhausted.any()
    outcome = pool.execute_liquidations(offer, np.ones(len(offer), dtype=bool))
    expected = float((debt - offer.repay_usd)[exhausted].sum())
    assert outcome.bad_debt_usd.sum() == pytest.approx(expected, rel=1e-9)
    assert pool.realised_bad_debt - before_bad == pytest.approx(expected, rel=1e-9)
    # Reserves pay the bad debt and keep the liquidation protocol fee (issue 13 item 9).
    fee_usd = float(offer.fee_units.sum()) * model.oracle_prices["ETH"]
    assert before_reserves - pool.reserves == pytest.approx(expected - fee_usd, rel=1e-9)


def test_accrual_grows_debt_at_borrow_rate_and_equity_by_reserve_factor(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    u = pool.utilization()
    rate = pool.rate_model.borrow_rate(u)
    debt, deposits, equity = pool.total_debt(), pool.deposits, pool.own_equity()
    dt = 1.0 / 8760.0
    pool.accrue(dt)
    interest = debt * rate * dt
    assert pool.total_debt() - debt == pytest.approx(interest, rel=1e-9)
    assert pool.deposits - deposits == pytest.approx(interest * 0.85, rel=1e-9)
    assert pool.own_equity() - equity == pytest.approx(interest * 0.15, rel=1e-6)


def test_risk_lever_moves_thresholds_by_bounded_steps(small: Small) -> None:
    pool = MarketModel(small()).protocols["aave"]
    lt = pool.books["ETH"].liquidation_threshold
    pool.apply_levers(np.array([1.0, 0, 0, 0, 0, 0]))  # tighten
    assert pool.books["ETH"].liquidation_threshold == pytest.approx(lt - 0.005)
    pool.apply_levers(np.array([-5.0, 0, 0, 0, 0, 0]))  # clipped to -1: loosen
    assert pool.books["ETH"].liquidation_threshold == pytest.approx(lt)
    for _ in range(500):
        pool.apply_levers(np.array([-1.0, 1.0, 0, 0, 0, 0]))
    assert pool.books["ETH"].liquidation_threshold <= 0.9
    assert pool.slope_multiplier == pytest.approx(3.0)
    assert pool.books["ETH"].ltv < pool.books["ETH"].liquidation_threshold


def test_liquidation_candidates_are_exactly_the_unhealthy_positions(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    for _ in range(30):
        model.step()
    for factor in (0.95, 0.8, 0.7):
        model.oracle_prices["ETH"] = model.reference_prices["ETH"] * factor
        book = pool.books["ETH"]
        slots = book.positions.active_slots()
        collateral = book.positions["collateral"][slots]
        debt = book.positions["scaled_debt"][slots] * pool.borrow_index
        health = collateral * model.oracle_prices["ETH"] * book.liquidation_threshold / debt
        expected = set(slots[health < 1.0].tolist())
        offers = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
        got = set(offers[0].slots.tolist()) if offers else set()
        assert got == expected


def _unhealthy_offer(pool: LendingPool, asset: str) -> object:
    """The book's full offer of unhealthy loans, without the dust pre-check."""
    from liqnet.protocols.base import LiquidationOffer
    from liqnet.protocols.lending_liquidation import liquidation_terms

    book, price = pool.books[asset], pool.model.oracle_prices[asset]
    slots = book.index.select(price * book.liquidation_threshold / pool.borrow_index, True)
    repay, _, units, fee, cap = liquidation_terms(
        pool.params,
        book.positions["collateral"][slots],
        book.positions["scaled_debt"][slots] * pool.borrow_index,
        price,
        book.liquidation_threshold,
        book.bonus,
        book.protocol_fee,
    )
    return LiquidationOffer(pool, asset, asset, slots, repay, units, np.zeros(slots.size), fee, cap)


def test_dust_books_are_skipped_only_when_no_liquidator_would_take_anything(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    for _ in range(30):
        model.step()
    skipped = offered = 0
    for gas in 10.0 ** np.arange(-1, 9):  # hurdles from $1.5 to $500M
        model.gas_multiplier = gas
        model.liquidation_hurdle_usd = model._liquidation_hurdle()
        for factor in (1.0, 0.97, 0.9, 0.8, 0.6):
            model.oracle_prices["ETH"] = model.reference_prices["ETH"] * factor
            full = _unhealthy_offer(pool, "ETH")
            if not len(full):
                continue
            if any(o.book == "ETH" for o in pool.liquidation_candidates()):
                offered += 1
                continue
            skipped += 1
            # Skipping never hides a loan that some liquidator would take.
            for liquidator in model.liquidators:
                assert not liquidator.choose(full, model.pools["ETH"]).any()
    assert skipped and offered  # both branches were exercised


def test_a_book_of_dust_offers_nothing_and_cheap_gas_offers_it_again(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    for _ in range(30):
        model.step()
    model.oracle_prices["ETH"] = model.reference_prices["ETH"] * 0.8
    assert len(_unhealthy_offer(pool, "ETH")) > 0
    model.liquidation_hurdle_usd = 1e12  # no loan can pay this
    assert [o for o in pool.liquidation_candidates() if o.book == "ETH"] == []
    model.liquidation_hurdle_usd = 0.0
    offers = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    assert len(offers) == 1 and len(offers[0]) == len(_unhealthy_offer(pool, "ETH"))
