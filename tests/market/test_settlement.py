"""Negotiation, credit lines, repayment and default settlement inside the world step."""

from collections.abc import Callable

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.market.ledger import CreditLedger
from liqnet.market.negotiation import Matches
from liqnet.market.settlement import settle
from liqnet.scenarios import load, run
from tests.helpers.worlds import Small, drain, lines_to_compound


@pytest.fixture
def _lending_world(small: Small) -> Callable[..., MarketModel]:
    """Factory: baseline where only aave lends (all its idle cash) and only dydx borrows.

    dydx borrows by its treasury rule (lever 0); compound neither lends nor borrows.
    """

    def make(**overrides: object) -> MarketModel:
        scenario = small(
            "baseline",
            protocols__0__levers={"lend": 1.0, "borrow": -1.0},
            protocols__1__levers={"lend": -1.0, "borrow": -1.0},
            protocols__2__levers={"lend": -1.0},
            **overrides,
        )
        return MarketModel(scenario)

    return make


def test_ledger_accrues_and_reports_exposures() -> None:
    ledger = CreditLedger(["a", "b", "c"])
    matches = Matches(
        lender=np.array([0, 0]), borrower=np.array([1, 2]), amount=[100.0, 50.0], rate=[0.1, 0.2]
    )
    ledger.open(matches, step=1, maturity_steps=10)
    ledger.accrue(0.5)
    liabilities = ledger.liabilities()
    assert liabilities[1, 0] == pytest.approx(105.0)
    assert liabilities[2, 0] == pytest.approx(55.0)
    lent, borrowed = ledger.lent_and_borrowed()
    assert lent.tolist() == pytest.approx([160.0, 0.0, 0.0])
    assert borrowed.tolist() == pytest.approx([0.0, 105.0, 55.0])
    assert ledger.due(10).size == 0 and ledger.due(11).size == 2
    assert list(ledger.history()["kind"]) == ["open", "open"]


@pytest.mark.parametrize("rounds", [1, 3])
def test_shortfall_is_met_by_credit_and_cash_moves_lender_to_borrower(
    rounds: int, _lending_world: Callable[..., MarketModel]
) -> None:
    model = _lending_world(negotiation__rounds=rounds)
    aave, dydx = model.protocols["aave"], model.protocols["dydx"]
    dydx.liquidity_shortfall = 1e6  # unmet LP withdrawals last step
    aave_cash, dydx_vault = aave.cash, dydx.vault_cash
    spec = model.scenario.negotiation
    ask = aave.funding_rate() + spec.lender_spread
    # dydx's withdrawals already go unmet: its urgency is 1.
    bid = dydx.funding_rate() + spec.lender_spread + spec.distress_premium
    assert dydx.projected_need(days=1.0, maturing_usd=0.0) == pytest.approx(1e6)
    total = model.total_cash()
    model.step()
    opened = model.ledger.history().query("kind == 'open'")
    assert len(opened) == 1
    line = opened.iloc[0]
    assert (line.lender, line.borrower) == ("aave", "dydx")
    assert line.amount_usd == pytest.approx(1e6)
    if rounds == 1:
        # One round at the limits, supply above demand: the uniform price is pinned at
        # the marginal ask, aave's reservation rate (its supply rate plus the spread).
        assert line.rate == pytest.approx(ask)
    else:
        # Both open shaded and concede: they meet between the limits, above the ask.
        assert ask + 0.01 < line.rate < bid
    assert model.credit_book.volume_usd == pytest.approx(1e6)
    assert model.credit_book.last_rate == pytest.approx(line.rate)
    assert aave.credit_lent == pytest.approx(dydx.credit_borrowed)
    assert aave.credit_lent >= 1e6
    assert dydx_vault + 1e6 - dydx.vault_cash < 1e6 + 1.0  # the vault got the cash
    assert aave.cash < aave_cash  # and the pool paid it (users also act in the step)
    assert model.total_cash() == pytest.approx(total, abs=1e-6)


def test_line_is_repaid_at_maturity_with_interest(
    _lending_world: Callable[..., MarketModel],
) -> None:
    model = _lending_world(negotiation__maturity_steps=3)
    aave, dydx = model.protocols["aave"], model.protocols["dydx"]
    dydx.liquidity_shortfall = 1e6
    model.step()
    model.standing_levers["dydx"] = np.array([0, 0, -1, 0, -1, 0.0])  # borrow no more
    for _ in range(3):
        model.step()
    history = model.ledger.history()
    repaid = history.query("kind == 'repay'")
    assert len(repaid) == 1
    assert repaid.iloc[0].amount_usd > 1e6  # principal plus interest
    assert aave.credit_lent == pytest.approx(0.0) and dydx.credit_borrowed == pytest.approx(0.0)


def test_no_trade_when_bid_below_ask(small: Small) -> None:
    scenario = small(
        "baseline",
        protocols__0__levers={"lend": 1.0, "lend_rate": 0.9},
        protocols__2__levers={"borrow": 1.0, "borrow_rate": -0.9},
    )
    model = MarketModel(scenario)
    model.protocols["dydx"].liquidity_shortfall = 1e6
    model.step()
    assert model.ledger.history().empty


@pytest.fixture(scope="module")
def crunch() -> tuple:
    return run("credit_crunch"), run("credit_crunch", feedback=False)


def test_credit_crunch_loss_arrives_through_the_ledger(crunch: tuple) -> None:
    result, twin = crunch
    credit = result.credit
    opened = credit.query("kind == 'open' and lender == 'aave' and borrower == 'dydx'")
    assert opened.amount_usd.sum() > 1e6  # the LP run was met by the pool's credit
    dydx_default = next(d for d in result.defaults if d["protocol"] == "dydx")
    written_off = credit.query("kind == 'default' and lender == 'aave'")
    assert len(written_off) > 0
    step = dydx_default["step"]
    # Written down in the default step, and again as the wind-down recovers less.
    assert (written_off.step >= step).all() and (written_off.step == step).any()
    loss = written_off.amount_usd.sum()
    assert result.summary["credit_losses_usd"]["aave"] == pytest.approx(loss)
    # The loss shows on aave's balance sheet from the default step, through credit_lent.
    ts = result.timeseries.set_index("step")
    at_default = written_off.query("step == @step").amount_usd.sum()
    assert ts.loc[step, "aave.credit_losses"] == pytest.approx(at_default)
    assert ts.loc[step - 1, "aave.credit_lent"] > ts.loc[step, "aave.credit_lent"]
    # Without feedback no loss is passed on: the twin's lender keeps its claim.
    assert twin.summary["credit_losses_usd"]["aave"] == 0.0
    assert twin.summary["equity_change_usd"]["aave"] > result.summary["equity_change_usd"]["aave"]


def test_every_default_is_recorded_once_with_step_and_cause(crunch: tuple) -> None:
    result, _ = crunch
    protocols = [d["protocol"] for d in result.defaults]
    assert len(protocols) == len(set(protocols))
    for record in result.defaults:
        assert record["cause"] in {
            "negative equity",
            "missed credit repayment",
            "contagion through credit lines",
        }
        assert record["step"] >= 1


def test_money_is_conserved_through_negotiation_repayment_and_default() -> None:
    scenario = load(
        "credit_crunch",
        {f"protocols.{k}.params.positions": 300 for k in range(3)}
        | {"negotiation.maturity_steps": 6},
    )
    model = MarketModel(scenario)
    cash, units = model.total_cash(), model.total_units()
    for step in range(scenario.steps):
        if step == 26:
            # dydx stops refinancing mid-run: maturing lines are then rolled over while
            # it is illiquid but solvent, and default once it is not.
            model.standing_levers["dydx"] = np.array([0, 0, -1, 0, -1, 0.0])
        model.step()
        assert model.total_cash() == pytest.approx(cash, abs=1e-6)
        for asset, total in model.total_units().items():
            assert total == pytest.approx(units[asset], rel=1e-12, abs=1e-9)
    kinds = set(model.ledger.history()["kind"])
    assert {"open", "rollover", "default"} <= kinds


def test_bad_negotiation_spec_is_a_clear_error() -> None:
    from liqnet.scenarios import ScenarioError

    with pytest.raises(ScenarioError, match=r"mechanism .auction9.*call_auction"):
        load("baseline", {"negotiation.mechanism": "auction9"})
    with pytest.raises(ScenarioError, match="min_rate"):
        load("baseline", {"negotiation.min_rate": 0.6, "negotiation.max_rate": 0.5})
    with pytest.raises(ScenarioError, match="unknown lever 'lent'"):
        load("baseline", {"protocols.0.levers": {"lent": 1.0}})


@pytest.mark.parametrize("feedback", [True, False])
def test_a_defaulted_borrower_repays_its_lenders_pro_rata_as_it_winds_down(
    feedback: bool, small: Small
) -> None:
    model = MarketModel(small(), feedback=feedback)
    compound = model.protocols["compound"]
    lines_to_compound(model)
    # An exploit leaves compound 2M of net worth against the 4M it owes: it defaults.
    drain(compound, beyond_equity=compound.credit_borrowed - 2e6)
    assert compound.own_equity() == pytest.approx(2e6)
    total = model.total_cash()
    settle(model)
    assert compound.defaulted
    ledger = model.ledger
    active = ledger.active_slots()
    assert ledger.in_resolution[active].all()  # every debt fell due; interest stops
    owed = ledger.lines["owed"][active].copy()
    ledger.accrue(model.dt_years)
    np.testing.assert_array_equal(ledger.lines["owed"][active], owed)
    aave_cash, dydx_cash = model.protocols["aave"].cash, model.protocols["dydx"].cash
    settle(model)  # the next settlement collects what the 2M of net worth allows
    got = model.protocols["aave"].cash - aave_cash, model.protocols["dydx"].cash - dydx_cash
    assert sum(got) == pytest.approx(2e6)
    assert got[0] == pytest.approx(3.0 * got[1])  # in proportion to the claims
    assert model.total_cash() == pytest.approx(total, abs=1e-6)
    recovered = ledger.history().query("kind == 'recovery'")
    assert set(recovered.lender) == {"aave", "dydx"}


@pytest.mark.parametrize("feedback", [True, False])
def test_closing_equity_is_every_protocols_equity_after_settlement(
    feedback: bool, small: Small
) -> None:
    """What the step's data collection and the envs' rewards read instead of equity():
    equal to it after a calm settlement and after one that defaults a borrower."""
    model = MarketModel(small(), feedback=feedback)

    def fresh() -> list[float]:
        return [p.equity() for p in model.protocols.values()]

    assert model.closing_equity == fresh()  # at construction: the opening equity
    lines_to_compound(model)
    settle(model)
    assert model.closing_equity == fresh() and not model.defaults
    compound = model.protocols["compound"]
    drain(compound, beyond_equity=compound.credit_borrowed - 2e6)
    stale = list(model.closing_equity)
    settle(model)
    assert compound.defaulted and model.closing_equity == fresh() != stale
    model.step()
    row = model.timeseries().iloc[-1]
    assert [row[f"{pid}.equity"] for pid in model.protocols] == fresh()


def test_negotiation_leaves_out_a_defaulted_lender_and_borrower(
    _lending_world: Callable[..., MarketModel],
) -> None:
    for defaulter in ("aave", "dydx"):
        model = _lending_world()
        model.protocols["dydx"].liquidity_shortfall = 1e6
        model.protocols[defaulter].defaulted = True
        model.step()
        assert model.ledger.history().query("kind == 'open'").empty
