"""MarketModel: conservation of money and units, determinism, cascades and feedback."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from liqnet.market import MarketModel
from liqnet.protocols.flows import recovery_ratio
from liqnet.scenarios import Scenario, load, run
from tests.helpers.worlds import Small, drain


@settings(max_examples=16, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    name=st.sampled_from(["baseline", "flash_crash", "bank_run", "vol_regime"]),
    volatility=st.floats(0.2, 2.5),
    pool_usd=st.floats(5e6, 5e8),
    impact=st.floats(0.0, 1.0),
    defaulter=st.sampled_from([None, "aave", "dydx"]),
)
def test_every_step_conserves_cash_and_units(
    seed: int,
    name: str,
    volatility: float,
    pool_usd: float,
    impact: float,
    defaulter: str | None,
    small: Small,
) -> None:
    scenario = small(
        name,
        positions=200,
        market__assets__ETH__volatility=volatility,
        market__assets__ETH__pool_usd=pool_usd,
        market__permanent_impact=impact,
    )
    model = MarketModel(scenario, seed=seed)
    if defaulter is not None:  # the wind-down path: this protocol defaults in step 1
        drain(model.protocols[defaulter])
    cash, units = model.total_cash(), model.total_units()
    scale = max(abs(v) for v in model.external_cash.values())
    for step in range(min(scenario.steps, 40)):
        model.step()
        if defaulter is not None:
            # A drained exchange whose traders lose more than the shortfall in the first
            # step is solvent again (vol_regime, seed 232, volatility 2): that example
            # does not exercise the wind-down, so it is set aside, not passed.
            assume(step > 0 or model.protocols[defaulter].defaulted)
            assert model.protocols[defaulter].defaulted
        assert model.total_cash() == pytest.approx(cash, abs=1e-9 * scale)
        for asset, total in model.total_units().items():
            assert total == pytest.approx(units[asset], abs=1e-9 * abs(units[asset]) + 1e-9)


def test_same_seed_same_trajectory(small: Small) -> None:
    scenario = small("flash_crash")
    first, second = run(scenario, seed=5, steps=40), run(scenario, seed=5, steps=40)
    pd.testing.assert_frame_equal(first.timeseries, second.timeseries)
    pd.testing.assert_frame_equal(first.events, second.events)
    other = run(scenario, seed=6, steps=40)
    assert not np.allclose(first.timeseries["ETH.reference"], other.timeseries["ETH.reference"])


def test_flash_crash_cascades_and_feedback_twin_loses_less() -> None:
    # With ETH's real depth ($180M of 2% bids) flash_crash's liquidations clear in one
    # round; on a book of $5M (a thin market, or a long-tail collateral) the same
    # crash's sales move the price into further liquidations within the step.
    thin = run(load("flash_crash", {"market.assets.ETH.cex_depth_2pct_usd": 5e6}))
    assert thin.summary["max_cascade_rounds"] >= 2
    assert thin.events.groupby("step")["round"].max().max() >= 1  # a second round happened
    with_feedback = run("flash_crash")
    twin = run("flash_crash", feedback=False)
    events = with_feedback.events
    assert twin.summary["bad_debt_usd"] < with_feedback.summary["bad_debt_usd"]
    assert twin.summary["max_drawdown"] < with_feedback.summary["max_drawdown"]
    # The twin's exogenous path is the same: identical until forced selling starts.
    first_liquidation = int(events["step"].min())
    before = slice(0, first_liquidation)
    pd.testing.assert_series_equal(
        with_feedback.timeseries["ETH.reference"].iloc[before],
        twin.timeseries["ETH.reference"].iloc[before],
    )


def test_gas_spike_stops_unprofitable_liquidations(small: Small) -> None:
    calm = run(small("bank_run", gas_spikes=[]), steps=12)
    spiked = run(small("bank_run"), steps=12)
    assert spiked.summary["liquidations"] < calm.summary["liquidations"]


def test_protocol_with_negative_equity_defaults_once(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    # An exploit drains more than the pool's equity.
    drained = pool.equity() + 1e6
    model.world.transfer(pool, "depositors", usd=drained)
    model.step()
    assert pool.defaulted
    assert [d["protocol"] for d in model.defaults].count("aave") == 1
    model.step()
    assert [d["protocol"] for d in model.defaults].count("aave") == 1


def test_set_levers_validates_shape_and_protocol(small: Small) -> None:
    model = MarketModel(small())
    with pytest.raises(ValueError, match="levers\\['aave'\\]"):
        model.set_levers({"aave": np.zeros(3)})
    with pytest.raises(KeyError, match="unknown protocol"):
        model.set_levers({"nope": np.zeros(6)})
    model.set_levers({"aave": np.ones(6)})
    before = model.protocols["aave"].books["ETH"].liquidation_threshold
    model.step()
    assert model.protocols["aave"].books["ETH"].liquidation_threshold == pytest.approx(
        before - 0.005  # risk +1 tightens
    )


def test_time_series_rows_reach_the_mesa_table_in_step_order(small: Small) -> None:
    model = MarketModel(small())
    for _ in range(3):
        model.step()
    # Reading the DataCollector flushes the rows waiting since the last read.
    table = model.datacollector.get_table_dataframe("world")
    assert table["step"].tolist() == [0, 1, 2, 3]
    for _ in range(2):
        model.step()
    frame = model.timeseries()
    assert frame["step"].tolist() == [0, 1, 2, 3, 4, 5]
    assert frame["aave.equity"].iloc[-1] == pytest.approx(model.protocols["aave"].equity())
    assert len(model.datacollector.get_table_dataframe("world")) == 6


@pytest.fixture(scope="module")
def bank_run_7() -> tuple[MarketModel, dict[str, list[float]]]:
    """bank_run seed 7 (both lending pools default at step 7), and their deposits per step."""
    model = MarketModel(load("bank_run"), seed=7)
    deposits: dict[str, list[float]] = {"aave": [], "compound": []}
    while model.running:
        model.step()
        for pid, path in deposits.items():
            path.append(model.protocols[pid].deposits)
    return model, deposits


def test_defaulted_pools_keep_winding_down(
    bank_run_7: tuple[MarketModel, dict[str, list[float]]],
) -> None:
    model, deposits = bank_run_7
    default_step = {d["protocol"]: d["step"] for d in model.defaults}
    assert {"aave", "compound"} <= set(default_step)
    ts = model.timeseries().set_index("step")
    events = model.events.to_frame().query("kind == 'liquidation'")
    for pid, path in deposits.items():
        step = default_step[pid]
        pool = model.protocols[pid]
        after = ts.loc[step + 1 :]
        # Its liquidation engine keeps running: unhealthy loans are still liquidated.
        assert (after[f"{pid}.liquidated"] > 0).sum() > 0
        assert ((events["protocol"] == pid) & (events["step"] > step)).sum() > 0
        # Depositors keep withdrawing what is left, pro rata, with a recorded haircut.
        assert path[-1] < 0.5 * path[step - 1]
        assert pool.haircut_usd > 0.0
        # Its equity is still recorded as the wind-down goes on.
        assert after[f"{pid}.equity"].nunique() > 1
        assert ts.loc[ts.index[-1], f"{pid}.equity"] == pytest.approx(pool.equity())


def test_feedback_does_not_cut_liquidations_by_freezing_defaulters() -> None:
    scenario = load("bank_run")
    with_feedback, twin = run(scenario, seed=7), run(scenario, seed=7, feedback=False)
    assert {d["protocol"] for d in with_feedback.defaults} >= {"aave", "compound"}
    # Price impact only deepens the crash: with defaulters still liquidated, the feedback
    # run liquidates and loses at least what its twin does (frozen, it liquidated half).
    assert with_feedback.summary["liquidated_usd"] >= twin.summary["liquidated_usd"]
    assert with_feedback.summary["bad_debt_usd"] > twin.summary["bad_debt_usd"]


def test_a_defaulted_pool_pays_depositors_pro_rata_and_lends_no_more(small: Small) -> None:
    model = MarketModel(small(positions=400))
    pool = model.protocols["aave"]
    drain(pool, beyond_equity=5e6)
    model.step()
    assert pool.defaulted
    for _ in range(2):  # (after that its cash is gone until borrowers repay)
        assets = pool.equity() + pool.deposits + pool.credit_borrowed
        ratio = recovery_ratio(pool.deposits, assets)
        assert 0.0 < ratio < 1.0
        deposits, paid_before = pool.deposits, model.external_cash["depositors"]
        haircut, positions = pool.haircut_usd, pool.books["ETH"].positions.count
        model.world.call(
            pool, "act_users", pool.act_users, 4 * model.dt_years, model.user_rngs[pool.protocol_id]
        )
        paid = model.external_cash["depositors"] - paid_before
        redeemed = deposits - pool.deposits
        assert paid > 0.0
        # Every dollar of claim withdrawn is paid the same recovery ratio; the rest is
        # the depositors' haircut, recorded.
        assert paid == pytest.approx(ratio * redeemed, rel=1e-9)
        assert pool.haircut_usd - haircut == pytest.approx(redeemed - paid, rel=1e-9)
        # Borrowers repay and close (the 4-hour batch of churn), but no new loans open.
        assert pool.books["ETH"].positions.count <= positions


def test_levers_of_a_defaulted_protocol_are_ignored(small: Small) -> None:
    model = MarketModel(small())
    pool = model.protocols["aave"]
    drain(pool)
    model.step()
    assert pool.defaulted
    before = pool.books["ETH"].liquidation_threshold, pool.slope_multiplier
    model.set_levers({"aave": np.ones(6)})
    model.step()
    assert (pool.books["ETH"].liquidation_threshold, pool.slope_multiplier) == before


def scripted_fall(scenario: Scenario, asset: str = "ETH") -> float:
    """The deepest peak-to-trough fall of the scenario's scripted shocks alone."""
    level = peak = 1.0
    deepest = 0.0
    for step in sorted(scenario.shock_table()):
        level *= 1.0 + scenario.shock_table()[step].get(asset, 0.0)
        peak = max(peak, level)
        deepest = max(deepest, 1.0 - level / peak)
    return deepest


@pytest.mark.parametrize("seed", [7, 1, 2])
def test_flash_crash_drawdown_stays_close_to_its_scripted_shock(seed: int) -> None:
    # Issue 13 item 5: on the earlier main one $400M pool's moves, half kept by the
    # reference, turned the scripted -35% into -55% (seed 7) on ~$110M of forced sales.
    # Against ETH's $11B a day and $180M of 2% bids, ~$80M of liquidations moves ETH by
    # a few tenths of a percent (square-root law), plus the diffusion of the day.
    scenario = load("flash_crash")
    shock = scripted_fall(scenario)
    assert shock == pytest.approx(0.351, abs=1e-3)
    with_feedback = run(scenario, seed=seed)
    twin = run(scenario, seed=seed, feedback=False)
    assert with_feedback.summary["liquidated_usd"] > 50e6  # a cascade did happen
    drawdown = with_feedback.summary["max_drawdown_by_asset"]["ETH"]
    assert abs(drawdown - shock) < 0.04
    assert 0.0 < drawdown - twin.summary["max_drawdown_by_asset"]["ETH"] < 0.01


def test_forced_sales_large_against_the_book_still_crash_the_price() -> None:
    # The same crash with $5M of 2% bids: each step's liquidations sweep the book, the
    # impact is not switched off, and the fall runs far past the script.
    scenario = load("flash_crash", {"market.assets.ETH.cex_depth_2pct_usd": 5e6})
    shock = scripted_fall(scenario)
    thin = run(scenario, seed=7)
    twin = run(scenario, seed=7, feedback=False)
    drawdown = thin.summary["max_drawdown_by_asset"]["ETH"]
    assert drawdown > shock + 0.08
    assert drawdown > twin.summary["max_drawdown_by_asset"]["ETH"] + 0.08


def test_feedback_twin_reference_ignores_depth_and_volume() -> None:
    # One switch: without feedback no forced flow moves the reference, so the twin's
    # reference path is the exogenous one whatever the market's depth.
    deep = run("flash_crash", seed=7, feedback=False)
    thin_scenario = load(
        "flash_crash",
        {
            "market.assets.ETH.cex_depth_2pct_usd": 1e6,
            "market.assets.ETH.daily_volume_usd": 1e6,
        },
    )
    thin = run(thin_scenario, seed=7, feedback=False)
    assert len(thin.events) > 0
    pd.testing.assert_series_equal(
        deep.timeseries["ETH.reference"], thin.timeseries["ETH.reference"]
    )
    thin_feedback = run(thin_scenario, seed=7)
    assert not np.allclose(
        thin_feedback.timeseries["ETH.reference"], thin.timeseries["ETH.reference"]
    )


def test_a_world_phase_that_creates_money_is_an_error_naming_it(small: Small) -> None:
    from liqnet.core.errors import ConservationError

    model = MarketModel(small())
    before = model.world.holdings()
    model.arbitrageurs[0].cash += 1_000.0  # money from nothing in a world-level path
    with pytest.raises(ConservationError, match="arbitrage: the world's USD changed by \\+1000"):
        model.world.check_phase("arbitrage", before)
    model.arbitrageurs[0].cash -= 1_000.0
    model.pools["ETH"].units -= 1.0
    with pytest.raises(ConservationError, match="cascade: the world's ETH units changed by -1"):
        model.world.check_phase("cascade", before)


@pytest.mark.parametrize("depth", [1e4, 1e5])
def test_an_extreme_impact_world_stays_finite_and_conserving(depth: float) -> None:
    # Issue 19 / fuzz: bank_run with a CEX 2% depth of $0.18 bought back perp shorts at
    # ~1e16 USD/ETH; cash drifted by 1.4e4 USD on 1e20 flows. At the smallest valid depth
    # the price stays within its band and every step conserves (the
    # world's phase checks run inside step()).
    model = MarketModel(load("bank_run", {"market.assets.ETH.cex_depth_2pct_usd": depth}))
    cash = model.total_cash()
    for _ in range(12):
        model.step()
    assert abs(model.total_cash() - cash) <= 1e-9 * model.world.holdings()[2]
    # (main: ETH 3,000 -> 67,000 USD at $10k depth, 0.0018 USD at $100k, 12 steps)
    assert 100.0 < model.reference_prices["ETH"] < 20_000.0


def test_long_gas_spikes_are_intervals_not_one_entry_per_step(small: Small) -> None:
    # duration_steps = 1e9 stored 1e9 entries; the model keeps one row per spike and
    # overlapping spikes multiply, capped at MAX_MULTIPLIER.
    model = MarketModel(small("bank_run"))
    assert [model._gas_at(t) for t in (4, 5, 16, 17)] == [1.0, 50.0, 50.0, 1.0]
    starts, ends, multipliers = model._gas_spikes
    model._gas_spikes = (np.r_[starts, 1], np.r_[ends, 100], np.r_[multipliers, 1e4])
    assert model._gas_at(5) == 1e4 and model._gas_at(20) == 1e4


@pytest.mark.parametrize("pool_usd", [1e4, 1e5, 1e6])
def test_a_shallow_pool_keeps_the_world_finite(pool_usd: float) -> None:
    # Issue 19: with pool_usd = $1M on baseline, perp buybacks priced through a pool
    # capped at (1 - 1e-12) of its reserve sent ETH x4.4e12 within 6 steps. Forced flow
    # now moves the reference by the square-root law, each round at most x2 (ROUND_MOVE).
    model = MarketModel(load("baseline", {"market.assets.ETH.pool_usd": pool_usd}))
    for _ in range(12):
        model.step()
    assert 1000.0 < model.reference_prices["ETH"] < 10_000.0
    assert 0.0 < model.pools["ETH"].price < 10_000.0


def test_a_protocols_users_draw_the_same_whatever_protocols_precede_it(small: Small) -> None:
    # Each protocol's users have a stream of their own: with the protocols listed in
    # reverse, every protocol's users make the same draws from the same state, so two
    # days of accrual and user flows (borrowers churn every few hours, traders open and
    # close) leave each protocol exactly as in the original order.
    scenario = small("baseline")
    raw = scenario.model_dump()
    reordered = Scenario.model_validate({**raw, "protocols": raw["protocols"][::-1]})
    states = []
    for variant in (scenario, reordered):
        model = MarketModel(variant, seed=3)
        call = model.world.call
        for _ in range(48):
            for protocol in model.protocols.values():
                rng = model.user_rngs[protocol.protocol_id]
                call(protocol, "accrue", protocol.accrue, model.dt_years)
                call(protocol, "act_users", protocol.act_users, model.dt_years, rng)
        states.append({pid: (p.cash, p.equity()) for pid, p in model.protocols.items()})
    assert list(states[0]) == list(states[1])[::-1]
    assert states[0] == states[1]
