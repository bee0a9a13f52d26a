"""LP units: withdrawals leave NAV per unit alone, so only losses make LPs run (issue 13.2)."""

from __future__ import annotations

import pytest

from liqnet.market import MarketModel
from liqnet.protocols import registry
from liqnet.protocols.options import OptionVault
from liqnet.protocols.perp import PerpExchange
from tests.helpers.worlds import Small

HOURS = 96

#: A calm market: 5% volatility, no jumps, no high-volatility regime, no scripted shock.
CALM: dict[str, object] = {
    "market__assets__ETH__volatility": 0.05,
    "market__assets__BTC__volatility": 0.05,
    "market__assets__ETH__jump_intensity": 0.0,
    "market__assets__BTC__jump_intensity": 0.0,
    "market__regimes__multipliers": [1.0, 1.0],
    "shocks": [],
    "steps": HOURS,
}


def calm_perp(small: Small) -> tuple[MarketModel, PerpExchange]:
    """The baseline world in a calm market, and its perp exchange."""
    model = MarketModel(small("baseline", positions=200, **CALM), seed=0)
    perp = model.protocols["dydx"]
    assert isinstance(perp, PerpExchange)
    return model, perp


def calm_vault(small: Small) -> tuple[MarketModel, OptionVault]:
    """vol_crush without its crash (a calm market), and its option vault."""
    scenario = small("vol_crush", positions=200, **CALM, protocols__vault__params__positions=300)
    model = MarketModel(scenario, seed=0)
    vault = model.protocols["vault"]
    assert isinstance(vault, OptionVault)
    return model, vault


def steps(model: MarketModel, n: int = HOURS) -> None:
    """Run ``n`` hourly steps."""
    for _ in range(n):
        model.step()


def test_withdrawal_burns_units_at_nav_per_unit(small: Small) -> None:
    _, perp = calm_perp(small)
    lp = perp.lp
    value, units = lp.unit_value(), lp.units
    assert value == pytest.approx(1.0)  # one unit per USD at the opening
    paid = lp.withdraw(0.15 * perp.lp_nav())
    assert paid == pytest.approx(0.15 * value * units)
    assert lp.units == pytest.approx(0.85 * units)
    assert lp.unit_value() == pytest.approx(value)
    assert lp.drawdown() == pytest.approx(0.0, abs=1e-12)
    # A loss (a trader's profit paid out of the vault) lowers every unit's value.
    loss = 0.2 * perp.lp_nav()
    perp.world.transfer(perp, "traders", usd=loss)
    perp.vault_cash -= loss
    assert lp.units == pytest.approx(0.85 * units)
    assert lp.drawdown() == pytest.approx(0.2)


def test_one_voluntary_withdrawal_does_not_start_a_perp_lp_run(small: Small) -> None:
    # Issue 13.2: a 15% withdrawal in a calm market drained the vault 100M -> 15M in 96 h,
    # as the drawdown of total NAV read the withdrawal as a loss.
    model, perp = calm_perp(small)
    start = perp.lp_nav()
    assert perp.lp.withdraw(0.15 * start) == pytest.approx(0.15 * start)
    steps(model)
    assert perp.lp_nav() >= 0.8 * start
    assert perp.perceived_risk < 0.01


def test_one_voluntary_withdrawal_does_not_start_an_option_vault_run(small: Small) -> None:
    # Issue 13.2: the option vault went 34M (after the withdrawal) -> 6.8M in 96 h.
    model, vault = calm_vault(small)
    start = vault.equity()
    assert vault.lp.withdraw(0.15 * start) == pytest.approx(0.15 * start)
    steps(model)
    assert vault.equity() >= 0.8 * start
    assert vault.perceived_risk < 0.01


def test_a_loss_per_unit_still_makes_perp_lps_run(small: Small) -> None:
    model, perp = calm_perp(small)
    loss = 0.3 * perp.lp_nav()  # socialised to the vault: every unit loses 30%
    perp.world.transfer(perp, "traders", usd=loss)
    perp.vault_cash -= loss
    after_loss, units = perp.lp_nav(), perp.lp.units
    steps(model, 24)
    assert perp.perceived_risk > 0.5
    assert perp.lp_nav() < 0.6 * after_loss  # a run
    assert perp.lp.units < 0.6 * units  # the leavers' units were burned
    assert perp.lp.drawdown() == pytest.approx(0.3, abs=0.02)  # the stayers' loss, no more


def test_a_loss_per_unit_still_makes_option_depositors_run(small: Small) -> None:
    model, vault = calm_vault(small)
    loss = 0.2 * vault.equity()
    vault.world.transfer(vault, "traders", usd=loss)
    after_loss = vault.equity()
    steps(model, 24)
    assert vault.perceived_risk > 0.3
    assert vault.equity() < 0.8 * after_loss


def test_lp_fear_is_capped_at_one_when_nav_nears_zero(small: Small) -> None:
    # Usage is open interest over NAV: a vault whose NAV is nearly gone read a fear of
    # millions (vol_regime, seed 4), and its LPs stayed away for a week after recovering.
    model, perp = calm_perp(small)
    loss = perp.lp_nav() - 1.0  # NAV of 1 USD under the whole open interest
    perp.world.transfer(perp, "traders", usd=loss)
    perp.vault_cash -= loss
    usage = perp.open_interest() / max(perp.lp_nav(), 1.0)  # as PerpExchange._lps_act
    assert usage > 1e6
    assert perp.lp.fear(usage) == 1.0
    steps(model, 24)
    assert 0.5 < perp.perceived_risk <= 1.0


class _ReservedVault(PerpExchange):
    """Keeps every dollar of its vault for traders: its LPs can withdraw nothing."""

    type_name = "perp_reserved_vault"

    def vault_free_cash(self) -> float:
        return 0.0


def test_a_subclass_s_own_free_cash_bounds_what_its_lps_withdraw(small: Small) -> None:
    # What the LPs can take out is the exchange's free cash, as its own type says it.
    registry.register(_ReservedVault.type_name, _ReservedVault)
    try:
        scenario = small(
            "baseline", positions=200, **CALM, protocols__dydx__type=_ReservedVault.type_name
        )
        model = MarketModel(scenario, seed=0)
        perp = model.protocols["dydx"]
        assert type(perp) is _ReservedVault
        perp.perceived_risk = 1.0  # a run: LPs want a large share back
        cash = perp.vault_cash
        model.world.call(perp, "act_users", perp._lps_act, 1.0)
        assert perp.liquidity_shortfall > 0.0  # wanted, not paid
        assert perp.vault_cash >= cash  # inflows only, no withdrawal
    finally:
        registry.PROTOCOLS.unregister(_ReservedVault.type_name)
