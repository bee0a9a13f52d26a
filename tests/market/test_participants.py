"""Tests for liqnet.market.participants: liquidator choice and arbitrage."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.market.amm import ConstantProductPool
from liqnet.market.participants import Arbitrageur, Liquidator
from liqnet.protocols.base import LiquidationOffer
from liqnet.scenarios import load
from tests.helpers.offers import FEE, baseline_world, offer, pool, proceeds


@pytest.fixture
def model() -> MarketModel:
    """The baseline world with 200 positions per protocol."""
    return baseline_world()


# -- Liquidator.choose -----------------------------------------------------------------


def test_sale_proceeds_closed_form(model: MarketModel) -> None:
    liquidator = Liquidator(model, 1e6, 5.0, 1.0)
    got = liquidator.sale_proceeds(pool(), np.array([1.0, 2.5, 0.0, 10.0]))
    np.testing.assert_allclose(got, proceeds(1_000.0, 3e6, [1.0, 2.5, 0.0, 10.0]), rtol=1e-12)
    assert got[2] == 0.0


def test_bonus_below_gas_and_slippage_is_refused(model: MarketModel) -> None:
    liquidator = Liquidator(model, 1e6, 5.0, 1.0)
    # Entry 0: bonus 10 at the marginal price, but the sale pays ~2,988 (fee, slippage).
    # Entry 1: bonus 200, taken first (higher value): 2988.02 - 2800 - 5 = 183 profit.
    o = offer(model, [1.0, 1.0], [2_990.0, 2_800.0])
    sale = proceeds(1_000.0, 3e6, [1.0, 1.0])
    assert sale[0] - 2_800.0 - 5.0 == pytest.approx(183.02, abs=0.01)
    assert sale[1] - 2_990.0 - 5.0 < 1.0
    np.testing.assert_array_equal(liquidator.choose(o, pool()), [False, True])
    # Alone, the small bonus still does not cover the fee, slippage and gas.
    np.testing.assert_array_equal(
        liquidator.choose(offer(model, [1.0], [2_990.0]), pool()), [False]
    )


def test_reward_counts_toward_profit(model: MarketModel) -> None:
    liquidator = Liquidator(model, 1e6, 5.0, 1.0)
    # A perp-style offer: nothing to repay or seize, a keeper reward of 10 for gas 5.
    assert liquidator.choose(offer(model, [0.0], [0.0], [10.0]), pool()).tolist() == [True]
    assert liquidator.choose(offer(model, [0.0], [0.0], [5.5]), pool()).tolist() == [False]
    strict = Liquidator(model, 1e6, 5.0, 20.0)  # min profit 20
    assert strict.choose(offer(model, [0.0], [0.0], [10.0]), pool()).tolist() == [False]


def test_slippage_of_earlier_sales_is_charged_to_later_entries(model: MarketModel) -> None:
    liquidator = Liquidator(model, 1e7, 5.0, 1.0)
    thin = pool(100.0, 300_000.0)
    big = offer(model, [20.0, 1.0], [40_000.0, 2_500.0])
    # Alone the small entry pays 2,961 for 2,500; after the big sale only ~2,062.
    assert proceeds(100.0, 300_000.0, [1.0])[0] > 2_505.0
    assert proceeds(100.0, 300_000.0, [20.0, 1.0])[1] < 2_500.0
    np.testing.assert_array_equal(liquidator.choose(big, thin), [True, False])
    np.testing.assert_array_equal(liquidator.choose(offer(model, [1.0], [2_500.0]), thin), [True])
    assert thin.units == 100.0 and thin.usd == 300_000.0  # choosing does not trade


def test_capital_limit_skips_what_it_cannot_afford(model: MarketModel) -> None:
    # Value order: A (1000), B (950), C (50). A needs 2,000; B then needs
    # 2,000 + 8,050 - inflow(A); C fits alone and is taken even behind an unaffordable B
    # (issue 13 item 3: before, a loan too large to afford blocked every one behind it,
    # and this test asserted "(5_000.0, [True, False, False])  # C is affordable but
    # behind B"). The offer is all-or-nothing: B is skipped, not filled in part.
    o = offer(model, [1.0, 3.0, 0.1], [2_000.0, 8_050.0, 250.0])
    sale = proceeds(1_000.0, 3e6, [1.0, 3.0, 0.1])
    need_b = 2_000.0 + 8_050.0 - (sale[0] - 5.0)
    assert need_b == pytest.approx(7_067.0, abs=1.0)
    for capital, expected in [
        (249.0, [False, False, False]),
        (1_999.0, [False, False, True]),
        (2_000.0, [True, False, True]),
        (5_000.0, [True, False, True]),
        (need_b + 1e-6, [True, True, True]),
    ]:
        liquidator = Liquidator(model, capital, 5.0, 1.0)
        np.testing.assert_array_equal(liquidator.choose(o, pool()), expected)


def loans(model: MarketModel, repay: list[float], cap: float | None) -> LiquidationOffer:
    """Loans repaid at a 5% bonus on a $3,000 ETH, divisible up to ``cap`` (None: not)."""
    o = offer(model, [r * 1.05 / 3_000.0 for r in repay], repay)
    o.partial_cap = None if cap is None else np.full(len(repay), cap)
    return o


def deep() -> ConstantProductPool:
    """A $3B ETH pool: a $10M sale slips about 0.3%."""
    return pool(1e6, 3e9)


def test_a_large_loan_does_not_block_the_smaller_ones(model: MarketModel) -> None:
    # Issue 13 item 3: $1M of capital against loans of $1k, $100k and $10M took nothing.
    liquidator = Liquidator(model, 1e6, 5.0, 1.0)
    shares = liquidator.choose(loans(model, [1e3, 1e5, 1e7], None), deep())
    np.testing.assert_array_equal(shares, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(liquidator.choose(loans(model, [1e3, 1e5], None), deep()), [1, 1])


def test_an_unaffordable_loan_is_filled_in_part_as_far_as_the_offer_allows(
    model: MarketModel,
) -> None:
    liquidator = Liquidator(model, 1e6, 5.0, 1.0)
    # The $10M loan pays most and comes first: $1M repays a tenth of it; its profit
    # (about $46k) and the capital then cover the others whole.
    shares = liquidator.choose(loans(model, [1e3, 1e5, 1e7], 1.0), deep())
    assert shares[:2].tolist() == [1.0, 1.0]
    assert shares[2] == pytest.approx(0.1)
    # A cap (Aave v3.3's dust rule) bounds the part; a part too small to pay is refused.
    assert liquidator.choose(loans(model, [1e7], 0.04), deep())[0] == pytest.approx(0.04)
    poor = Liquidator(model, 50.0, 5.0, 1.0)  # $50 repays $50: a $2.5 bonus < gas
    assert poor.choose(loans(model, [1e7], 1.0), deep()).tolist() == [0.0]


def test_a_loan_too_large_for_the_pool_is_sold_only_while_it_pays(model: MarketModel) -> None:
    # 35 ETH for $100k on a 100 ETH pool: the whole sale pays ~$77.6k, a loss; the pool
    # pays more than the $2,857 per unit it costs only for the first ~2.17 units.
    thin = pool(100.0, 300_000.0)
    rich = Liquidator(model, 1e7, 5.0, 1.0)
    o = offer(model, [35.0], [100_000.0])
    assert proceeds(100.0, 300_000.0, [35.0])[0] < 100_000.0
    assert rich.choose(o, thin).tolist() == [0.0]  # all or nothing: refused
    o.partial_cap = np.ones(1)
    share = rich.choose(o, thin)[0]
    assert share * 35.0 == pytest.approx(thin.units_sellable_above(100_000.0 / 35.0), rel=1e-9)
    profit = proceeds(100.0, 300_000.0, [share * 35.0])[0] - share * 100_000.0 - 5.0
    assert profit >= 1.0


def test_an_indivisible_sale_the_pool_cannot_absorb_at_its_cost_waits(
    model: MarketModel,
) -> None:
    # Issue 19: an all-or-nothing entry was taken whenever its whole sale paid, so its
    # last units went below their cost: 5 ETH for $14,000 ($2,800 per unit) on a 100 ETH
    # pool pays ~$14,245 in all, but the pool pays $2,800 or more only for the first ~3.4.
    thin = pool(100.0, 300_000.0)
    rich = Liquidator(model, 1e7, 5.0, 1.0)
    assert proceeds(100.0, 300_000.0, [5.0])[0] - 14_000.0 - 5.0 > 200.0
    absorbed = thin.units_sellable_above(2_800.0)
    assert 3.3 < absorbed < 3.45
    assert rich.choose(offer(model, [5.0], [14_000.0]), thin).tolist() == [0.0]
    # Behind a sale it fits, it waits too; alone on a pool ten times deeper it is taken.
    both = offer(model, [1.0, 5.0], [2_000.0, 14_000.0])
    assert proceeds(1_000.0, 3e6, [1.0, 5.0])[1] - 14_000.0 - 5.0 > 1.0
    assert rich.choose(both, thin).tolist() == [1.0, 0.0]
    assert rich.choose(both, pool()).tolist() == [1.0, 1.0]
    # Divisible, the same entry is cut to what the pool absorbs at its cost.
    divisible = offer(model, [5.0], [14_000.0])
    divisible.partial_cap = np.ones(1)
    assert rich.choose(divisible, thin)[0] * 5.0 == pytest.approx(absorbed, rel=1e-9)


def test_higher_gas_multiplier_refuses_more(model: MarketModel) -> None:
    liquidator = Liquidator(model, 1e7, 5.0, 1.0)
    bonuses = np.array([5.0, 60.0, 120.0, 250.0, 500.0, 1_000.0])
    repay = 3_000.0 * 0.5 - bonuses  # half a unit each
    o = offer(model, [0.5] * 6, repay.tolist())
    counts = []
    for multiplier in (1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 400.0):
        model.gas_multiplier = multiplier
        counts.append(int(liquidator.choose(o, pool()).sum()))
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == 5 and counts[-1] == 0  # a bonus of 5 never covers fee + gas
    # Gas 5 x 50 = 250: exactly the entries whose net bonus beats 250 + 1 survive.
    model.gas_multiplier = 50.0
    accepted = liquidator.choose(o, pool())
    np.testing.assert_array_equal(accepted, [False, False, False, False, True, True])


# -- Arbitrageur -----------------------------------------------------------------------


def holdings(model: MarketModel, arb: Arbitrageur) -> tuple[float, float]:
    """(USD, ETH units) of the arbitrageur, the ETH pool and the outside accounts."""
    eth = model.pools["ETH"]
    usd = arb.cash + eth.usd + model.external_cash["cex"] + model.external_cash["gas"]
    return usd, eth.units + model.external_units["ETH"]


@pytest.mark.parametrize("ratio", [1.02, 1.2, 0.97, 0.7])
def test_arbitrage_moves_pool_to_reference_and_conserves(model: MarketModel, ratio: float) -> None:
    arb = Arbitrageur(model, 1e9, 5.0, 1.0)
    eth = model.pools["ETH"]
    target = eth.price * ratio
    x, y, k = eth.units, eth.usd, eth.units * eth.usd
    usd0, units0 = holdings(model, arb)
    cash0, gas0 = arb.cash, model.external_cash["gas"]
    profit = arb.arbitrage(eth, target)
    assert profit > 0
    assert arb.cash - cash0 == pytest.approx(profit, rel=1e-9)
    assert model.external_cash["gas"] - gas0 == 5.0
    if ratio > 1:
        dx = eth.usd - y
        y_e = y + dx * (1 - FEE)
        assert y < eth.price * eth.units  # price rose
        assert y_e**2 / (k * (1 - FEE)) == pytest.approx(target, rel=1e-9)
        assert eth.price < target
        units_out = x - eth.units
        assert profit == pytest.approx(units_out * target - dx - 5.0, rel=1e-9)
    else:
        du = eth.units - x
        x_e = x + du * (1 - FEE)
        assert k * (1 - FEE) / x_e**2 == pytest.approx(target, rel=1e-9)
        assert eth.price > target
        assert profit == pytest.approx((y - eth.usd) - du * target - 5.0, rel=1e-9)
    usd1, units1 = holdings(model, arb)
    assert usd1 == pytest.approx(usd0, abs=1e-6)
    assert units1 == pytest.approx(units0, abs=1e-9)
    # Arbitraged away: a second pass finds nothing worth the gas.
    assert arb.arbitrage(eth, target) == 0.0


def thin_book_model(depth_usd: float) -> MarketModel:
    """The baseline world with ``depth_usd`` of ETH bids within 2% on the CEX."""
    overrides: dict[str, object] = {f"protocols.{k}.params.positions": 200 for k in range(3)}
    overrides["market.assets.ETH.cex_depth_2pct_usd"] = depth_usd
    return MarketModel(load("baseline", overrides), seed=1)


@pytest.mark.parametrize("ratio", [1.05, 0.95])
def test_arbitrage_limited_by_capital_and_book_depth_stops_short(ratio: float) -> None:
    model = thin_book_model(100_000.0)
    arb = Arbitrageur(model, 250_000.0, 5.0, 1.0)
    eth = model.pools["ETH"]
    start, target = eth.price, eth.price * ratio
    # Own capital plus what the CEX book holds within the gap (linear in the gap).
    capacity = 250_000.0 + 100_000.0 * abs(start - target) / target / 0.02
    assert arb.step_capacity_usd(eth, target) == pytest.approx(capacity, rel=1e-12)
    units0 = eth.units
    usd0, all_units0 = holdings(model, arb)
    assert arb.arbitrage(eth, target) > 0
    if ratio > 1:
        assert eth.usd - 400e6 == pytest.approx(capacity)
        assert start < eth.price < target * (1 - FEE)
    else:
        assert eth.units - units0 == pytest.approx(capacity / target)
        assert target / (1 - FEE) < eth.price < start
    assert holdings(model, arb)[0] == pytest.approx(usd0, abs=1e-6)
    assert holdings(model, arb)[1] == pytest.approx(all_units0, abs=1e-9)


@pytest.mark.parametrize("ratio", [0.7, 0.9, 1.1])
def test_arbitrage_capacity_grows_with_the_dislocation(model: MarketModel, ratio: float) -> None:
    # Issue 13 item 5: a fixed $10M a step left the $400M pool ~4% under the reference
    # for ten steps of flash_crash. With the CEX's 2% depth ($180M of ETH bids, Kaiko-type
    # data) laid off against the gap, the baseline arbitrageur closes a 10-30% gap in
    # one step, up to the fee band.
    spec = model.scenario.arbitrageurs[0]
    arb = Arbitrageur(model, spec.capital_usd, spec.gas_cost_usd, spec.min_profit_usd)
    eth = model.pools["ETH"]
    target = eth.price * ratio
    small_gap = arb.step_capacity_usd(eth, eth.price * 1.01)
    assert arb.step_capacity_usd(eth, target) > 5 * small_gap > 5 * spec.capital_usd
    assert arb.arbitrage(eth, target) > 0
    assert eth.price == pytest.approx(target, rel=FEE * 1.01)


@pytest.mark.parametrize("ratio", [1.0, 1.002, 0.998])
def test_no_trade_inside_fee_band(model: MarketModel, ratio: float) -> None:
    arb = Arbitrageur(model, 1e7, 5.0, 1.0)
    eth = model.pools["ETH"]
    before = (eth.units, eth.usd, arb.cash, dict(model.external_cash))
    assert arb.arbitrage(eth, eth.price * ratio) == 0.0
    assert (eth.units, eth.usd, arb.cash, dict(model.external_cash)) == before


@pytest.mark.parametrize("ratio", [1.01, 0.99])
def test_no_trade_below_min_profit_or_gas(model: MarketModel, ratio: float) -> None:
    eth = model.pools["ETH"]
    target = eth.price * ratio
    before = (eth.units, eth.usd, dict(model.external_cash), dict(model.external_units))
    picky = Arbitrageur(model, 1e9, 5.0, 1e9)
    assert picky.arbitrage(eth, target) == 0.0
    model.gas_multiplier = 1e8  # gas 5e8
    costly = Arbitrageur(model, 1e9, 5.0, 1.0)
    assert costly.arbitrage(eth, target) == 0.0
    assert picky.cash == costly.cash == 1e9
    assert (eth.units, eth.usd, dict(model.external_cash), dict(model.external_units)) == before
    model.gas_multiplier = 1.0
    assert costly.arbitrage(eth, target) > 0  # the same trade pays with normal gas


def test_arbitrageur_without_cash_does_nothing(model: MarketModel) -> None:
    arb = Arbitrageur(model, 1e7, 5.0, 1.0)
    arb.cash = 0.0
    eth = model.pools["ETH"]
    before = (eth.units, eth.usd)
    assert arb.arbitrage(eth, eth.price * 1.05) == 0.0
    assert (eth.units, eth.usd) == before
