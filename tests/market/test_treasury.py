"""The treasury rule, credit limits and secured lines (liqnet.market.treasury)."""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.core.levers import DEFAULT_STANDING_LEVERS
from liqnet.market import MarketModel
from liqnet.market.negotiation import Matches
from liqnet.market.settlement import settle
from liqnet.market.treasury import (
    CreditBook,
    credit_limits,
    maturing_within_horizon,
    treasury_quotes,
)
from liqnet.protocols.base import Protocol
from liqnet.protocols.comet import CometPool
from liqnet.protocols.lending import LendingPool
from liqnet.protocols.perp import PerpExchange
from tests.helpers.worlds import Small, drain, lines_to_compound


def _only_aave_lends_only_dydx_borrows(small: Small, **overrides: object) -> MarketModel:
    scenario = small(
        "baseline",
        protocols__0__levers={"lend": 1.0, "borrow": -1.0},
        protocols__1__levers={"lend": -1.0, "borrow": -1.0},
        protocols__2__levers={"lend": -1.0},
        negotiation__rounds=1,
        **overrides,
    )
    model = MarketModel(scenario)
    model.protocols["dydx"].liquidity_shortfall = 1e6  # unmet LP withdrawals last step
    return model


def test_the_rule_borrows_for_a_bank_run_with_no_levers_set(small: Small) -> None:
    model = MarketModel(small("bank_run"))
    assert all(tuple(v) == DEFAULT_STANDING_LEVERS for v in model.standing_levers.values())
    cash = model.total_cash()
    for _ in range(model.scenario.steps):
        model.step()
        assert model.total_cash() == pytest.approx(cash, abs=1e-6)
    opened = model.ledger.history().query("kind == 'open'")
    # The run on aave is met by the other protocols' idle cash, at a distress premium.
    assert len(opened) >= 3 and set(opened.borrower) == {"aave"}
    assert {"compound", "dydx"} <= set(opened.lender)
    spec = model.scenario.negotiation
    # Never below a lender's reservation rate (at least the lender spread).
    assert (opened.rate >= spec.lender_spread - 1e-12).all()
    assert (opened.rate <= spec.max_rate).all()


def test_the_rule_does_nothing_in_a_calm_market(small: Small) -> None:
    model = MarketModel(small("baseline"))
    for _ in range(model.scenario.steps):
        model.step()
    assert model.ledger.history().empty
    assert model.credit_book.volume_usd == 0.0 and model.credit_book.last_rate is None


def test_quotes_follow_funding_need_and_urgency(small: Small) -> None:
    model = _only_aave_lends_only_dydx_borrows(small)
    spec = model.scenario.negotiation
    aave, dydx = model.protocols["aave"], model.protocols["dydx"]
    quotes = treasury_quotes(model, model.standing_levers)
    assert quotes.lend.tolist() == pytest.approx([aave.idle_liquidity(), 0.0, 0.0])
    assert quotes.borrow.tolist() == pytest.approx([0.0, 0.0, 1e6])
    assert quotes.ask_limit[0] == pytest.approx(aave.funding_rate() + spec.lender_spread)
    assert quotes.bid_limit[2] == pytest.approx(spec.lender_spread + spec.distress_premium)
    # Without the unmet withdrawals dydx projects no need, so it bids for nothing.
    dydx.liquidity_shortfall = 0.0
    assert treasury_quotes(model, model.standing_levers).borrow[2] == pytest.approx(
        dydx.projected_need(days=spec.horizon_hours / 24.0)
    )
    # The rate levers move the limits by up to half the rate span.
    levers = {k: v.copy() for k, v in model.standing_levers.items()}
    levers["aave"][3] = 1.0
    shifted = treasury_quotes(model, levers).ask_limit[0]
    assert shifted == pytest.approx(min(spec.max_rate, quotes.ask_limit[0] + 0.5 * spec.max_rate))


def test_credit_limits_scale_with_lender_equity_and_borrower_health(small: Small) -> None:
    model = _only_aave_lends_only_dydx_borrows(small)
    limits = model.scenario.negotiation.limits
    equity = np.array([p.equity() for p in model.protocols.values()])
    limit = credit_limits(model, CreditBook())
    # Healthy borrowers (equity ratio above the threshold): the large-exposure cap.
    np.testing.assert_allclose(limit[:, 2], limits.max_exposure_to_equity * equity)
    # After a 30% equity loss within the horizon a borrower gets 40% of the cap.
    book = CreditBook(equity_history=[equity / 0.7])
    np.testing.assert_allclose(
        credit_limits(model, book)[:, 2], limits.max_exposure_to_equity * equity * 0.4
    )


@pytest.mark.parametrize("haircut", [0.0, 0.25])
def test_unsecured_claims_stay_within_limits_and_the_excess_is_secured(
    haircut: float, small: Small
) -> None:
    model = _only_aave_lends_only_dydx_borrows(
        small,
        negotiation__limits__max_exposure_to_equity=0.05,
        negotiation__secured_haircut=haircut,
    )
    aave, dydx = model.protocols["aave"], model.protocols["dydx"]
    cap = 0.05 * aave.equity()
    assert cap < 1e6  # the need exceeds what aave lends unsecured
    pledgeable = dydx.pledgeable_assets()
    cash = model.total_cash()
    model.step()
    book, ledger = model.credit_book, model.ledger
    exposure = ledger.unsecured_exposure()[0, 2]
    # The step accrued one step of interest after the line opened.
    assert exposure <= cap * (1.0 + 1e-4)
    slots = ledger.active_slots()
    collateral = ledger.lines["collateral"][slots]
    if haircut == 0.0:
        # Nothing can be secured: the line is cut to the limit.
        assert ledger.lines["principal"][slots].sum() == pytest.approx(cap)
        assert book.capped_usd == pytest.approx(1e6 - cap) and book.secured_usd == 0.0
        assert not collateral.any()
        assert exposure == pytest.approx(cap, rel=1e-4)
    else:
        secured = min(1e6 - cap, pledgeable * (1.0 - haircut))
        assert book.secured_usd == pytest.approx(secured)
        assert collateral.sum() == pytest.approx(secured / (1.0 - haircut))
        assert ledger.pledged()[2] == pytest.approx(collateral.sum())
        # The collateral, worth more than the secured part, protects the rest as well.
        assert exposure == pytest.approx(1e6 - collateral.sum(), rel=1e-3)
    assert model.total_cash() == pytest.approx(cash, abs=1e-6)


@pytest.mark.parametrize("feedback", [True, False])
def test_a_secured_lender_is_paid_before_unsecured_ones_in_a_default(
    feedback: bool, small: Small
) -> None:
    model = MarketModel(small(), feedback=feedback)
    compound = model.protocols["compound"]
    # aave's 3M is secured by 4M of compound's loans; dydx's 1M is unsecured.
    lines_to_compound(model, collateral=np.array([4e6, 0.0]))
    # An exploit leaves compound 2M of net worth against the 4M it owes: it defaults.
    drain(compound, beyond_equity=compound.credit_borrowed - 2e6)
    total = model.total_cash()
    aave_cash, dydx_cash = model.protocols["aave"].cash, model.protocols["dydx"].cash
    for _ in range(3):
        settle(model)
    assert compound.defaulted
    got = model.protocols["aave"].cash - aave_cash, model.protocols["dydx"].cash - dydx_cash
    # The collateral covers aave's 3M in full, ahead of compound's depositors and of
    # dydx, which shares only what net worth is left after aave (none).
    assert got[0] == pytest.approx(3e6)
    assert got[1] == pytest.approx(0.0, abs=1e-6)
    assert model.total_cash() == pytest.approx(total, abs=1e-6)
    if feedback:
        assert model.credit_losses["dydx"] == pytest.approx(1e6)
        assert model.credit_losses["aave"] == pytest.approx(0.0)


def test_the_ledger_reports_maturities_pledges_and_unsecured_exposure() -> None:
    from liqnet.market.ledger import CreditLedger

    ledger = CreditLedger(["a", "b", "c"])
    matches = Matches(
        lender=np.array([0, 0, 2]),
        borrower=np.array([1, 2, 1]),
        amount=[100.0, 50.0, 30.0],
        rate=[0.0, 0.0, 0.0],
    )
    ledger.open(matches, step=1, maturity_steps=10, collateral=np.array([40.0, 0.0, 60.0]))
    assert ledger.maturing(10).tolist() == [0.0, 0.0, 0.0]
    assert ledger.maturing(11).tolist() == pytest.approx([0.0, 130.0, 50.0])
    assert ledger.pledged().tolist() == pytest.approx([0.0, 100.0, 0.0])
    exposure = ledger.unsecured_exposure()
    assert exposure[0, 1] == pytest.approx(60.0) and exposure[0, 2] == pytest.approx(50.0)
    assert exposure[2, 1] == pytest.approx(0.0)  # over-collateralised: fully secured
    np.testing.assert_allclose(ledger.secured_claims(ledger.active_slots()), [40.0, 0.0, 30.0])


def test_each_built_in_types_own_reads_equal_the_methods_bit_for_bit(small: Small) -> None:
    """A bank run with comet and perp beside the pools (runs, shortfalls, credit lines):
    every type that fuses its treasury reads gives exactly what the methods give."""
    model = MarketModel(small("ecosystem"))
    fused = {type(p) for p in model.protocols.values()}
    fused = {cls for cls in fused if cls.treasury_reader() is not Protocol.treasury_reads}
    assert {LendingPool, CometPool, PerpExchange} <= fused
    compared = 0
    for _ in range(model.scenario.steps):
        model.step()
        maturing = maturing_within_horizon(model)
        for i, protocol in enumerate(model.protocols.values()):
            for days in (0.5, 3.0):
                own = type(protocol).treasury_reader()(protocol, days, float(maturing[i]) + 1e5)
                assert own == Protocol.treasury_reads(protocol, days, float(maturing[i]) + 1e5)
                compared += type(protocol) in fused
    assert compared > 0 and model.ledger.lines.count  # credit did flow


def test_a_subclass_is_read_through_the_methods_it_overrides(small: Small) -> None:
    class Hoarding(LendingPool):
        def idle_liquidity(self) -> float:
            return 0.0

    assert Hoarding.treasury_reader() is Protocol.treasury_reads
    assert CometPool.treasury_reader() is LendingPool.treasury_reads
    model = MarketModel(small("baseline"))
    pool = model.protocols["aave"]
    pool.__class__ = Hoarding
    reads = Hoarding.treasury_reader()(pool, 1.0, 0.0)
    assert (reads.idle, reads.lendable) == (0.0, 0.0)
    assert LendingPool.treasury_reads(pool, 1.0, 0.0).idle > 0.0
