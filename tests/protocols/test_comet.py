"""Comet (Compound v3): absorb, reserves, buyCollateral at the store-front price.

Golden numbers use the published cUSDCv3 mainnet parameters (compound-finance/comet
deployments/mainnet/usdc/configuration.json): WETH liquidateCollateralFactor 0.90,
liquidationFactor 0.95, storeFrontPriceFactor 0.5, targetReserves 5,000,000.
"""

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols import get_protocol_class
from liqnet.protocols.comet import STORE_SUFFIX, CometPool
from liqnet.scenarios import load, run
from liqnet.scenarios.testing import check_protocol
from tests.helpers.worlds import Small

PRICE = 2000.0
# (collateral ETH, debt USD): 10 ETH at $2,000 is $20,000, liquidatable above $18,000.
ACCOUNTS = {
    "penalty_eats_the_margin": (10.0, 19_500.0),  # credit 19,000: reserves lose 500
    "excess_becomes_a_deposit": (10.0, 18_500.0),  # credit 19,000: 500 credited
    "deep_underwater": (10.0, 21_000.0),  # credit 19,000: reserves lose 2,000
    "healthy": (10.0, 17_900.0),  # 17,900 < 0.90 * 20,000: not absorbable
}


@pytest.fixture
def world(small: Small) -> MarketModel:
    return MarketModel(small())


def _comet(model: MarketModel) -> CometPool:
    pool = model.protocols["compound"]
    assert isinstance(pool, CometPool)
    return pool


def _place_accounts(model: MarketModel) -> dict[str, int]:
    """Give four loans of the ETH book known balances; every other loan made safe."""
    pool = _comet(model)
    model.oracle_prices["ETH"] = PRICE
    book = pool.books["ETH"]
    columns = book.positions.columns
    slots = book.positions.active_slots()
    # Every other loan gets ample collateral, so only the placed ones can be absorbed.
    columns["collateral"][slots] = np.maximum(
        columns["collateral"][slots], 10.0 * columns["scaled_debt"][slots] / PRICE
    )
    chosen = dict(zip(ACCOUNTS, slots[: len(ACCOUNTS)].tolist(), strict=True))
    for name, slot in chosen.items():
        collateral, debt = ACCOUNTS[name]
        columns["collateral"][slot] = collateral
        columns["scaled_debt"][slot] = debt / pool.borrow_index
    book.total_collateral = float(columns["collateral"][slots].sum())
    book.total_scaled_debt = float(columns["scaled_debt"][slots].sum())
    book.index.mark_dirty(slots)
    return chosen


def test_compound_is_a_comet_market_in_the_built_ins() -> None:
    for name in ("baseline", "flash_crash", "bank_run", "credit_crunch", "vol_crush"):
        types = {p.id: p.type for p in load(name).protocols}
        assert types["compound"] == "comet", name
    assert get_protocol_class("comet") is CometPool


def test_absorb_wipes_debt_takes_collateral_and_charges_reserves(world: MarketModel) -> None:
    pool = _comet(world)
    chosen = _place_accounts(world)
    absorb = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    assert len(absorb) == 1
    offer = absorb[0]
    # isLiquidatable: borrow > liquidateCollateralFactor * collateral value.
    expected = {chosen[n] for n in ("penalty_eats_the_margin", "excess_becomes_a_deposit")}
    expected.add(chosen["deep_underwater"])
    assert set(offer.slots.tolist()) == expected
    # The absorber is paid no bonus: no repayment, no collateral, a gas refund only.
    assert not offer.repay_usd.any() and not offer.seize_units.any()
    assert (offer.reward_usd >= world.liquidation_hurdle_usd).all()
    assert offer.reward_usd.max() < world.liquidation_hurdle_usd + 1e-6

    book = pool.books["ETH"]
    reserves, deposits, cash = pool.reserves, pool.deposits, pool.cash
    bad_debt, units = pool.realised_bad_debt, pool.held_units()["ETH"]
    collateral_before, debt_before = book.total_collateral, book.total_scaled_debt
    accepted = np.ones(len(offer), dtype=bool)
    outcome = pool.execute_liquidations(offer, accepted)
    refund = float(offer.reward_usd.sum())

    by_slot = {int(s): i for i, s in enumerate(offer.slots)}
    row = {n: by_slot[chosen[n]] for n in chosen if chosen[n] in by_slot}
    # Comet.absorbInternal: credit = 10 ETH * 2,000 * 0.95 = 19,000 for each account.
    np.testing.assert_allclose(outcome.extra["credit_usd"], 19_000.0)
    loss = outcome.extra["reserves_loss_usd"]
    excess = outcome.extra["excess_usd"]
    assert loss[row["penalty_eats_the_margin"]] == pytest.approx(500.0)  # 19,500 - 19,000
    assert loss[row["deep_underwater"]] == pytest.approx(2_000.0)  # 21,000 - 19,000
    assert loss[row["excess_becomes_a_deposit"]] == 0.0
    assert excess[row["excess_becomes_a_deposit"]] == pytest.approx(500.0)  # 19,000 - 18,500
    assert pool.absorbed_loss_usd == pytest.approx(2_500.0)
    # getReserves falls by max(debt, credit) per account, plus the absorber's refund.
    paid_out = 19_500.0 + 19_000.0 + 21_000.0
    assert reserves - pool.reserves == pytest.approx(paid_out + refund)
    assert pool.deposits - deposits == pytest.approx(500.0)
    assert cash - pool.cash == pytest.approx(refund)
    # Debt wiped, accounts closed; all 30 ETH now sit on the protocol's balance sheet.
    assert book.positions.count == len(book.positions.active_slots())
    assert not np.isin(list(expected), book.positions.active_slots()).any()
    assert book.total_collateral == pytest.approx(collateral_before - 30.0)
    assert book.total_scaled_debt == pytest.approx(debt_before - 59_000.0 / pool.borrow_index)
    assert pool.inventory["ETH"] == pytest.approx(30.0)
    assert pool.held_units()["ETH"] == pytest.approx(units)
    # Only the deep account's debt exceeds its collateral value (21,000 - 20,000).
    assert outcome.bad_debt_usd.sum() == pytest.approx(1_000.0)
    assert pool.realised_bad_debt - bad_debt == pytest.approx(1_000.0)
    # Nothing left to absorb.
    assert not [o for o in pool.liquidation_candidates() if o.book == "ETH"]


def test_absorbs_are_offered_only_as_far_as_cash_pays_their_refunds(world: MarketModel) -> None:
    # bank_run: depositors emptied the market and absorbs drove its cash to -$37,755.
    pool = _comet(world)
    chosen = _place_accounts(world)
    refund = world.liquidation_hurdle_usd
    assert 0.0 < refund < 1e4
    world.world.transfer(pool, "depositors", usd=pool.cash - 1.5 * refund)
    absorb = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    assert len(absorb) == 1 and len(absorb[0]) == 1  # cash for one refund, not three
    assert absorb[0].slots.tolist() == [chosen["deep_underwater"]]  # the worst goes first
    pool.execute_liquidations(absorb[0], np.ones(1, dtype=bool))
    assert 0.0 <= pool.cash < refund
    assert not [o for o in pool.liquidation_candidates() if o.book == "ETH"]


def test_store_front_price_is_comets_quote(world: MarketModel) -> None:
    pool = _comet(world)
    world.oracle_prices["ETH"] = PRICE
    # quoteCollateral: price * (1 - storeFrontPriceFactor * (1 - liquidationFactor)).
    assert pool.store_front_price("ETH") == pytest.approx(2000.0 * (1.0 - 0.5 * 0.05))
    assert pool.store_front_price("ETH") == pytest.approx(1950.0)


def _absorbed(world: MarketModel) -> CometPool:
    pool = _comet(world)
    _place_accounts(world)
    (offer,) = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    pool.execute_liquidations(offer, np.ones(len(offer), dtype=bool))
    return pool


def test_buy_collateral_sells_lots_at_the_store_price(world: MarketModel) -> None:
    pool = _absorbed(world)
    pool.params = pool.params.model_copy(update={"store_lot_usd": 10_000.0})
    pool.reserves = 0.0  # below the $5M target: the store front is open
    (store,) = [o for o in pool.liquidation_candidates() if o.book == "ETH" + STORE_SUFFIX]
    # 30 ETH at 1,950 = 58,500 in lots of at most 10,000: six lots of 5 ETH.
    assert len(store) == 6 and (store.slots == -1).all()
    np.testing.assert_allclose(store.seize_units, 5.0)
    np.testing.assert_allclose(store.repay_usd / store.seize_units, 1950.0)
    cash, reserves, revenue = pool.cash, pool.reserves, pool.revenue
    accepted = np.array([True, True, False, False, False, False])
    pool.execute_liquidations(store, accepted)
    assert pool.cash - cash == pytest.approx(19_500.0)
    assert pool.reserves - reserves == pytest.approx(19_500.0)
    # Revenue: the penalty buyers do not get, (1 - 0.5) * (1 - 0.95) * 10 ETH * 2,000.
    assert pool.revenue - revenue == pytest.approx(500.0)
    assert pool.inventory["ETH"] == pytest.approx(20.0)


def test_no_collateral_for_sale_at_or_above_target_reserves(world: MarketModel) -> None:
    pool = _absorbed(world)
    pool.params = pool.params.model_copy(update={"store_lot_usd": 10_000.0})
    target = pool.params.target_reserves_usd
    assert target == 5e6  # cUSDCv3 targetReserves
    pool.reserves = target
    assert not [o for o in pool.liquidation_candidates() if o.book.endswith(STORE_SUFFIX)]
    # buyCollateral checks the reserves before each call: with 1.5 lots of room below the
    # target, the first two lots are for sale and the third is not.
    pool.reserves = target - 1.5 * 9_750.0
    (store,) = [o for o in pool.liquidation_candidates() if o.book.endswith(STORE_SUFFIX)]
    assert len(store) == 2


def test_crash_absorbs_accounts_and_sells_their_collateral(small: Small) -> None:
    result = run(small("flash_crash", positions=1000), seed=7, steps=40)
    events = result.events
    comet = events[(events["protocol"] == "compound") & (events["kind"] == "liquidation")]
    absorbs = comet[comet["book"] == "ETH"]
    sales = comet[comet["book"] == "ETH" + STORE_SUFFIX]
    assert len(absorbs) > 0 and len(sales) > 0
    # An absorb moves no repayment and no collateral to the absorber; buyers pay for theirs.
    assert (absorbs["repaid_usd"] == 0).all() and (absorbs["seized_units"] == 0).all()
    assert (sales["repaid_usd"] > 0).all() and (sales["seized_units"] > 0).all()
    # Buyers paid the store-front price: under the oracle price by 2.5%.
    price = sales["repaid_usd"] / sales["seized_units"]
    np.testing.assert_allclose(price, sales["oracle_price"] * 0.975, rtol=1e-9)
    assert sales["step"].min() >= absorbs["step"].min()


def test_comet_passes_the_plugin_checks() -> None:
    check_protocol("comet", {"positions": 300}, steps=12)
