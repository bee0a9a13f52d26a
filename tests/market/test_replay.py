"""Historical replay (``AssetSpec.replay``): knots reproduced exactly, log-linear between
them, other assets untouched, ``"add"`` mode as GBM noise around the path, forced-flow
impact as a permanent offset, shocks on top, determinism per seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.market import MarketModel
from liqnet.market.prices import AssetDynamics, PriceProcess, ReplayPath
from liqnet.scenarios import Scenario
from tests.helpers.worlds import Small

KNOTS = [[5, 2500.0], [12, 3300.0], [20, 1800.0]]
"""ETH (3000 at step 0) falls, rallies, crashes, then holds."""


def references(scenario: Scenario, feedback: bool = False, seed: int | None = None) -> pd.DataFrame:
    """The reference prices of a whole run (row k: the end of step k; row 0: the start)."""
    model = MarketModel(scenario, seed=seed, feedback=feedback)
    for _ in range(scenario.steps):
        model.step()
    series = model.timeseries()
    return series[[c for c in series.columns if c.endswith(".reference")] + ["regime"]]


def replayed(small: Small, knots: list[list[float]] = KNOTS, **overrides: object) -> Scenario:
    """Baseline with 300 positions per protocol over 30 steps, ETH replaying ``knots``."""
    values: dict[str, object] = {"steps": 30, "market__assets__ETH__replay__knots": knots}
    values.update(overrides)
    return small(**values)


def test_knots_are_reproduced_exactly_with_feedback_off(small: Small) -> None:
    eth = references(replayed(small))["ETH.reference"].to_numpy()
    assert eth[0] == 3000.0
    for step, price in KNOTS:
        assert eth[step] == pytest.approx(price, rel=1e-12)
    # After the last knot the path holds its price.
    np.testing.assert_allclose(eth[20:], 1800.0, rtol=1e-12)


def test_between_knots_the_path_is_log_linear(small: Small) -> None:
    eth = references(replayed(small))["ETH.reference"].to_numpy()
    # Step 0 (3000) to step 5 (2500): step 2.5 is not a step; steps 0 -> 10 below.
    assert eth[3] == pytest.approx(3000.0 * (2500.0 / 3000.0) ** (3 / 5), rel=1e-12)
    # Midway between the knots at 12 and 20: the geometric mean.
    assert eth[16] == pytest.approx(math.sqrt(3300.0 * 1800.0), rel=1e-12)
    one_knot = references(replayed(small, [[10, 2000.0]]))["ETH.reference"].to_numpy()
    assert one_knot[5] == pytest.approx(math.sqrt(3000.0 * 2000.0), rel=1e-12)
    log_steps = np.diff(np.log(one_knot[:11]))
    np.testing.assert_allclose(log_steps, math.log(2000.0 / 3000.0) / 10, rtol=1e-9)


def test_other_assets_keep_the_path_of_the_scenario_without_replay(small: Small) -> None:
    with_replay = references(replayed(small))
    without = references(small(steps=30))
    pd.testing.assert_series_equal(with_replay["BTC.reference"], without["BTC.reference"])
    pd.testing.assert_series_equal(with_replay["regime"], without["regime"])
    assert not np.allclose(with_replay["ETH.reference"], without["ETH.reference"])


def test_add_mode_is_the_path_plus_the_gbm_of_the_same_seed(small: Small) -> None:
    add = references(replayed(small, market__assets__ETH__replay__mode="add"))
    replace = references(replayed(small))
    gbm = references(small(steps=30))
    assert not np.allclose(add["ETH.reference"], replace["ETH.reference"])
    # log(add) = log(replayed path) + the GBM's own log move from the start.
    noise = np.log(gbm["ETH.reference"] / 3000.0)
    np.testing.assert_allclose(
        np.log(add["ETH.reference"]), np.log(replace["ETH.reference"]) + noise, atol=1e-12
    )
    pd.testing.assert_series_equal(add["BTC.reference"], gbm["BTC.reference"])


def test_add_mode_matches_the_knots_on_average() -> None:
    """Drift 0: the GBM factor is a martingale, so the mean price is the replayed one."""
    path = ReplayPath(((10, 2000.0), (40, 2600.0)), add=True)
    asset = AssetDynamics(3000.0, 0.0, 0.7, 0.0, 0.0, 0.0, path)
    ends = []
    for seed in range(400):
        process = PriceProcess(
            {"ETH": asset},
            np.eye(1),
            1.0,
            np.array([1.0]),
            np.array([[1.0]]),
            {},
            np.random.default_rng(seed),
        )
        at = {}
        for step in range(1, 41):
            process.step()
            at[step] = float(process.prices[0])
        ends.append((at[10], at[40]))
    ratios = np.array(ends) / np.array([2000.0, 2600.0])
    sigma = 0.7 * np.sqrt(np.array([10.0, 40.0]) / 8760.0)
    standard_error = np.sqrt(np.exp(sigma**2) - 1.0) / math.sqrt(len(ends))
    assert np.all(np.abs(ratios.mean(axis=0) - 1.0) < 4 * standard_error)
    assert np.all(ratios.std(axis=0) > 0.5 * sigma)  # it is noisy, not the path


def test_replace_mode_log_returns_are_the_path_increments() -> None:
    path = ReplayPath(((4, 1500.0),))
    asset = AssetDynamics(3000.0, 0.0, 0.7, 4.0, -0.04, 0.06, path)
    process = PriceProcess(
        {"ETH": asset},
        np.eye(1),
        1.0,
        np.array([1.0, 3.0]),
        np.array([[0.5, 0.5], [0.5, 0.5]]),
        {},
        np.random.default_rng(3),
    )
    returns = np.array([process.step()[0] for _ in range(6)])
    np.testing.assert_allclose(returns[:4], math.log(0.5) / 4, rtol=1e-12)
    np.testing.assert_array_equal(returns[4:], 0.0)


def test_a_shock_on_a_replayed_asset_moves_it_off_the_path_for_good(small: Small) -> None:
    shock = [{"step": 3, "asset": "ETH", "return": -0.10}]
    eth = references(replayed(small, shocks=shock))["ETH.reference"].to_numpy()
    plain = references(replayed(small))["ETH.reference"].to_numpy()
    np.testing.assert_allclose(eth[:3], plain[:3], rtol=1e-12)
    np.testing.assert_allclose(eth[3:] / plain[3:], 0.9, rtol=1e-12)


def test_forced_flow_impact_stays_as_an_offset_from_the_path(small: Small) -> None:
    """A replayed crash liquidates; with feedback the impact of the forced sales keeps
    the reference below the path (permanent), without it the path is exact."""
    crash = [[6, 1800.0], [8, 1500.0]]
    scenario = replayed(small, crash, steps=16)
    twin = references(scenario, feedback=False)["ETH.reference"].to_numpy()
    live = references(scenario, feedback=True)["ETH.reference"].to_numpy()
    assert twin[8] == pytest.approx(1500.0, rel=1e-12)
    assert live[8] < 1500.0 * (1 - 1e-6)
    # Past the last knot the path holds; the offset holds unless more flow comes.
    offsets = np.log(live[8:] / twin[8:])
    assert np.all(offsets < 0.0)
    assert np.all(np.diff(offsets) <= 1e-12)  # only further sales move it, downwards


def test_replay_is_deterministic_per_seed(small: Small) -> None:
    scenario = replayed(small, market__assets__ETH__replay__mode="add")
    first = references(scenario, feedback=True, seed=11)
    pd.testing.assert_frame_equal(first, references(scenario, feedback=True, seed=11))
    other = references(scenario, feedback=True, seed=12)
    assert not np.allclose(first["ETH.reference"], other["ETH.reference"])


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(1, 300), min_size=1, max_size=12, unique=True),
    prices=st.lists(st.floats(1e-2, 1e6), min_size=12, max_size=12),
    seed=st.integers(0, 2**32),
)
def test_any_valid_knots_are_hit_exactly(steps: list[int], prices: list[float], seed: int) -> None:
    knots = tuple(zip(sorted(steps), prices, strict=False))
    asset = AssetDynamics(100.0, 0.3, 2.0, 50.0, -0.1, 0.2, ReplayPath(knots))
    process = PriceProcess(
        {"ETH": asset, "BTC": AssetDynamics(50.0, 0.0, 0.5, 0.0, 0.0, 0.0)},
        np.array([[1.0, 0.6], [0.6, 1.0]]),
        1.0,
        np.array([1.0, 5.0]),
        np.array([[0.9, 0.1], [0.1, 0.9]]),
        {},
        np.random.default_rng(seed),
    )
    path = [float(process.prices[0])]
    for _ in range(knots[-1][0] + 3):
        process.step()
        path.append(float(process.prices[0]))
    for step, price in knots:
        assert path[step] == pytest.approx(price, rel=1e-12)
    assert path[-1] == pytest.approx(knots[-1][1], rel=1e-12)
