"""Aave v3 liquidation terms of the lending pool: protocol fee, v3.0 / v3.3 close factor,
dust rule, partial fills (issue 13 items 3 and 9)."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.core import ScenarioError
from liqnet.market import MarketModel
from liqnet.protocols.base import LiquidationOffer, LiquidationOutcome
from liqnet.protocols.lending import LendingPool
from tests.helpers.worlds import Small

PRICE = 3_000.0  # the baseline's opening ETH oracle price


def with_loan(model: MarketModel, health: float, collateral: float = 10.0) -> LiquidationOffer:
    """Open one WETH loan at ``health`` (LT 0.83) in aave; return the ETH offer (just it)."""
    pool = model.protocols["aave"]
    book = pool.books["ETH"]
    debt = collateral * PRICE * book.liquidation_threshold / health
    book.add(np.array([collateral]), np.array([debt / pool.borrow_index]))
    (offer,) = [o for o in pool.liquidation_candidates() if o.book == "ETH"]
    assert len(offer) == 1  # every seeded loan opened healthy
    return offer


def execute(model: MarketModel, offer: LiquidationOffer) -> LiquidationOutcome:
    """Execute all of ``offer`` as the cascade does: the world checks conservation."""
    pool = offer.protocol
    return model.world.call(
        pool,
        "execute_liquidations",
        pool.execute_liquidations,
        offer,
        np.ones(len(offer), dtype=bool),
        usd=float(offer.repay_usd.sum() - offer.reward_usd.sum()),
        asset=offer.asset,
        units=-float(offer.seize_units.sum()),
    )


def test_protocol_fee_is_the_treasury_share_of_the_bonus(small: Small) -> None:
    # Issue 13 item 9, the WETH case: HF 0.968, close factor 50%, bonus 5%,
    # liquidationProtocolFee 10%. Aave v3 LiquidationLogic sends 10% of the bonus part
    # (seized - seized / 1.05) to the treasury: the liquidator receives 1.045 / 1.05 of
    # the seizure, so liqnet before gave it 0.478% more collateral than Aave does.
    model = MarketModel(small())
    pool = model.protocols["aave"]
    offer = with_loan(model, 0.968)
    debt = 10.0 * PRICE * 0.83 / 0.968
    assert offer.repay_usd[0] == pytest.approx(debt / 2, rel=1e-12)
    seized = debt / 2 * 1.05 / PRICE
    assert offer.seize_units[0] == pytest.approx(seized * 1.045 / 1.05, rel=1e-12)
    assert offer.fee_units is not None
    assert offer.fee_units[0] == pytest.approx(seized * 0.05 / 1.05 * 0.10, rel=1e-12)
    assert seized / offer.seize_units[0] - 1.0 == pytest.approx(0.00478, abs=5e-6)
    revenue, reserves, equity = pool.revenue, pool.reserves, pool.own_equity()
    held = pool.held_units()["ETH"]
    execute(model, offer)  # conservation: the world checks cash and units
    fee_usd = offer.fee_units[0] * PRICE
    assert pool.revenue - revenue == pytest.approx(fee_usd, abs=1e-6)
    assert pool.reserves - reserves == pytest.approx(fee_usd, abs=1e-6)
    assert pool.books["ETH"].treasury_units == pytest.approx(offer.fee_units[0], rel=1e-12)
    # The fee stays in the pool: only the liquidator's part leaves its units.
    assert held - pool.held_units()["ETH"] == pytest.approx(offer.seize_units[0], abs=1e-9)
    # The liquidator paid oracle value for repay * 1.045: the pool's equity gains the
    # fee, the borrower loses the whole bonus.
    assert pool.own_equity() - equity == pytest.approx(fee_usd, rel=1e-6)


def test_no_fee_when_the_reserve_sets_none(small: Small) -> None:
    model = MarketModel(
        small(**{"protocols.0.params.collateral.ETH.liquidation_protocol_fee": 0.0})
    )
    offer = with_loan(model, 0.968)
    assert offer.fee_units is not None and offer.fee_units[0] == 0.0
    assert offer.seize_units[0] == pytest.approx(10.0 * 0.83 / 0.968 / 2 * 1.05, rel=1e-12)


@pytest.mark.parametrize("rule", ["v3.3", "v3.0"])
def test_close_factor_rule_of_each_version(small: Small, rule: str) -> None:
    pool: LendingPool = MarketModel(
        small(**{"protocols.0.params.close_factor_rule": rule})
    ).protocols["aave"]

    def repay(collateral: float, debt: float, lt: float = 0.83) -> float:
        return float(
            pool.liquidation_amounts(np.array([collateral]), np.array([debt]), 1000.0, lt, 0.05)[0][
                0
            ]
        )

    # HF 0.976 on $1,700 of debt: v3.3 closes a position under $2,000 in full
    # (MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD); v3.0 knows only the health factor.
    assert repay(2.0, 1700.0) == pytest.approx(1700.0 if rule == "v3.3" else 850.0)
    # HF 0.934: 100% under both.
    assert repay(10.0, 8300.0 / 0.934) == pytest.approx(8300.0 / 0.934)
    # A large position at HF 0.968: 50% under both.
    assert repay(10.0, 8300.0 / 0.968) == pytest.approx(8300.0 / 0.968 / 2)
    # $2,000 of debt against $2,010 at LT 0.95 (HF 0.955): half the debt plus the bonus
    # would leave $960 of collateral; v3.3 forbids leaving under MIN_LEFTOVER_BASE
    # ($1,000) short of a full close, so the largest liquidation shrinks to $961.9.
    expected = (2010.0 - 1000.0) / 1.05 if rule == "v3.3" else 1000.0
    assert repay(2.01, 2000.0, lt=0.95) == pytest.approx(expected)


def test_dust_rule_caps_partial_fills_under_v3_3_only(small: Small) -> None:
    for rule, cap in (("v3.3", 1.0 / 3.0), ("v3.0", 1.0)):
        model = MarketModel(small(**{"protocols.0.params.close_factor_rule": rule}))
        # $1,500 of debt at HF 0.9 (100% close): a partial fill must leave $1,000.
        offer = with_loan(model, 0.9, collateral=1500.0 * 0.9 / (PRICE * 0.83))
        assert offer.repay_usd[0] == pytest.approx(1500.0)
        assert offer.partial_cap is not None
        assert offer.partial_cap[0] == pytest.approx(cap)


def test_partial_fill_is_proportional_and_the_rest_stays_on_offer(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    book = pool.books["ETH"]
    offer = with_loan(model, 0.968)
    slot = offer.slots[0]
    debt0, collateral0 = pool.borrow_index * book.positions["scaled_debt"][slot], 10.0
    assert offer.fee_units is not None
    part = offer.take(np.array([0]), 0.3)
    execute(model, part)
    # Repaid 30% of the offer; seized 30% of its collateral, bonus and fee included.
    assert book.positions["scaled_debt"][slot] * pool.borrow_index == pytest.approx(
        debt0 - 0.3 * offer.repay_usd[0], rel=1e-12
    )
    taken = 0.3 * (offer.seize_units[0] + offer.fee_units[0])
    assert book.positions["collateral"][slot] == pytest.approx(collateral0 - taken, rel=1e-12)
    assert book.treasury_units == pytest.approx(0.3 * offer.fee_units[0], rel=1e-12)
    # The other 70% of the same liquidation is what the next liquidator sees.
    rest = offer.take(np.array([0]), 0.7)
    execute(model, rest)
    assert book.positions["scaled_debt"][slot] * pool.borrow_index == pytest.approx(
        debt0 / 2, rel=1e-9
    )


def test_bad_close_factor_rule_is_a_scenario_error_naming_the_field(small: Small) -> None:
    with pytest.raises(ScenarioError, match=r"protocols\.0\.params\.close_factor_rule"):
        small(**{"protocols.0.params.close_factor_rule": "v2"})
    with pytest.raises(ScenarioError, match=r"liquidation_protocol_fee"):
        small(**{"protocols.0.params.collateral.ETH.liquidation_protocol_fee": 1.5})
