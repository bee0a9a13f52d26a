"""Tests for liqnet.market.prices: GBM moments, correlation, jumps, regimes, shocks, blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liqnet.market.prices import AssetDynamics, FlowImpact, PriceProcess, daily_volatility

HOURS_PER_YEAR = 8760.0
CALM = np.array([1.0])
STAY = np.array([[1.0]])


def dynamics(
    sigma: float = 0.7,
    drift: float = 0.0,
    intensity: float = 0.0,
    jump_mean: float = 0.0,
    jump_std: float = 0.0,
    price: float = 3000.0,
) -> AssetDynamics:
    """Dynamics of one asset (no jumps unless told)."""
    return AssetDynamics(price, drift, sigma, intensity, jump_mean, jump_std)


def process(
    assets: dict[str, AssetDynamics] | None = None,
    seed: int = 1,
    rho: float = 0.0,
    dt_hours: float = 1.0,
    multipliers: np.ndarray = CALM,
    transitions: np.ndarray = STAY,
    shocks: dict[int, dict[str, float]] | None = None,
    initial_regime: int = 0,
) -> PriceProcess:
    """A price process over ETH (and BTC when given) with its own seeded generator."""
    assets = assets or {"ETH": dynamics(), "BTC": dynamics(0.55, price=90_000.0)}
    n = len(assets)
    correlation = np.full((n, n), rho) + (1 - rho) * np.eye(n)
    return PriceProcess(
        assets,
        correlation,
        dt_hours,
        multipliers,
        transitions,
        shocks or {},
        np.random.default_rng(seed),
        initial_regime,
    )


def run(proc: PriceProcess, steps: int) -> np.ndarray:
    """Log returns of ``steps`` steps, one row per step."""
    return np.array([proc.step() for _ in range(steps)])


def test_same_seed_same_path_other_seed_differs() -> None:
    a, b, c = process(seed=5), process(seed=5), process(seed=6)
    ra, rb, rc = run(a, 300), run(b, 300), run(c, 300)
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(a.prices, b.prices)
    assert not np.allclose(ra, rc)


def test_prices_are_the_compounded_log_returns() -> None:
    proc = process(seed=2)
    start = proc.prices.copy()
    returns = run(proc, 100)
    np.testing.assert_allclose(proc.prices, start * np.exp(returns.sum(axis=0)), rtol=1e-12)


def test_blocks_of_256_match_an_independent_reimplementation() -> None:
    """600 steps span three 256-step blocks; each block draws normals, jump counts, jump
    normals and regime uniforms from the process's generator, in that order."""
    seed, dt_hours = 17, 4.0
    assets = {
        "ETH": dynamics(0.7, 0.1, 20.0, -0.04, 0.06),
        "BTC": dynamics(0.5, 0.05, 10.0, -0.03, 0.05, price=90_000.0),
    }
    multipliers = np.array([1.0, 2.5])
    transitions = np.array([[0.9, 0.1], [0.3, 0.7]])
    proc = process(assets, seed, 0.8, dt_hours, multipliers, transitions)
    got = run(proc, 600)

    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(np.array([[1.0, 0.8], [0.8, 1.0]]))
    dt = dt_hours / HOURS_PER_YEAR
    sigma, mu = np.array([0.7, 0.5]), np.array([0.1, 0.05])
    lam, m, s = np.array([20.0, 10.0]), np.array([-0.04, -0.03]), np.array([0.06, 0.05])
    comp = lam * (np.exp(m + s**2 / 2) - 1)
    regime, expected = 0, []
    for _ in range(3):
        z = rng.standard_normal((256, 2)) @ chol.T
        counts = rng.poisson(lam * dt, (256, 2))
        jz = rng.standard_normal((256, 2))
        u = rng.random(256)
        for i in range(256):
            regime = 0 if u[i] < transitions[regime, 0] else 1
            sig = sigma * multipliers[regime]
            jumps = counts[i] * m + np.sqrt(counts[i]) * s * jz[i]
            expected.append((mu - comp - sig**2 / 2) * dt + sig * math.sqrt(dt) * z[i] + jumps)
    np.testing.assert_allclose(got, np.array(expected[:600]), rtol=1e-12, atol=1e-15)
    assert (np.array(expected[:600]) != 0).all()


def test_interleaving_with_other_generators_does_not_change_the_path() -> None:
    a, b = process(seed=9), process(seed=9)
    ra = run(a, 600)
    noise = np.random.default_rng(9)
    rb = []
    for _ in range(600):
        noise.standard_normal(7)  # another component drawing in between
        rb.append(b.step())
    np.testing.assert_array_equal(ra, np.array(rb))


@pytest.mark.parametrize("drift", [0.0, 0.4])
def test_gbm_log_return_moments(drift: float) -> None:
    """Mean ``(mu - sigma^2/2) dt`` and std ``sigma sqrt(dt)`` within 5 standard errors."""
    n, sigma, dt_hours = 20_000, 0.8, 876.0  # 0.1-year steps: the drift term is visible
    proc = process({"ETH": dynamics(sigma, drift)}, seed=21, dt_hours=dt_hours)
    returns = run(proc, n)[:, 0]
    dt = dt_hours / HOURS_PER_YEAR
    std = sigma * math.sqrt(dt)
    assert returns.mean() == pytest.approx((drift - 0.5 * sigma**2) * dt, abs=5 * std / n**0.5)
    assert returns.std(ddof=1) == pytest.approx(std, abs=5 * std / (2 * n) ** 0.5)
    # The Ito term alone is 6.4 standard errors: a process without it would fail.
    assert 0.5 * sigma**2 * dt > 6 * std / n**0.5


@pytest.mark.parametrize("rho", [0.8, -0.4, 0.0])
def test_correlation_of_returns(rho: float) -> None:
    proc = process(seed=4, rho=rho)
    returns = run(proc, 20_000)
    assert np.corrcoef(returns.T)[0, 1] == pytest.approx(rho, abs=0.03)


def test_scripted_shock_adds_exactly_log1p_at_its_step() -> None:
    """Scenario steps are 1-based: a shock at step s lands on the s-th call of step()."""
    shocks = {37: {"ETH": -0.35}, 300: {"BTC": 0.2, "ETH": 0.1}}
    plain, shocked = process(seed=8), process(seed=8, shocks=shocks)
    rp, rs = run(plain, 400), run(shocked, 400)
    diff = rs - rp
    expected = np.zeros_like(diff)
    expected[37 - 1] = [math.log(0.65), 0.0]
    expected[300 - 1] = [math.log(1.1), math.log(1.2)]
    np.testing.assert_allclose(diff, expected, atol=1e-12)
    assert shocked.prices[0] / plain.prices[0] == pytest.approx(0.65 * 1.1, rel=1e-12)
    assert shocked.prices[1] / plain.prices[1] == pytest.approx(1.2, rel=1e-12)


def test_shock_at_step_one_hits_the_first_step() -> None:
    plain, shocked = process(seed=8), process(seed=8, shocks={1: {"ETH": -0.5}})
    assert shocked.step()[0] - plain.step()[0] == pytest.approx(math.log(0.5), abs=1e-12)
    assert shocked.step()[0] - plain.step()[0] == pytest.approx(0.0, abs=1e-12)


def test_alternating_regime_chain() -> None:
    multipliers = np.array([1.0, 4.0])
    proc = process(seed=3, multipliers=multipliers, transitions=np.array([[0, 1], [1, 0]]))
    twin = process(seed=3)  # same draws, calm regime only
    regimes = []
    for _ in range(600):
        r, calm = proc.step(), twin.step()
        regimes.append(proc.regime)
        # The regime drawn for a step sets that step's volatility.
        sig = np.array([0.7, 0.55]) * multipliers[proc.regime]
        dt = 1.0 / HOURS_PER_YEAR
        base = np.array([0.7, 0.55])
        np.testing.assert_allclose(
            (r + 0.5 * sig**2 * dt) / sig, (calm + 0.5 * base**2 * dt) / base, rtol=1e-9
        )
    assert regimes == [1, 0] * 300


def test_absorbing_regime_stays_put() -> None:
    proc = process(
        seed=3, multipliers=np.array([1.0, 3.0]), transitions=np.eye(2), initial_regime=1
    )
    for _ in range(300):
        proc.step()
        assert proc.regime == 1


def test_regime_chain_stationary_distribution() -> None:
    transitions = np.array([[0.9, 0.1], [0.2, 0.8]])  # stationary (2/3, 1/3)
    proc = process(seed=12, multipliers=np.array([1.0, 3.0]), transitions=transitions)
    regimes = np.empty(20_000, dtype=int)
    switches = {(0, 1): 0, (0, 0): 0}
    previous = 0
    for i in range(regimes.size):
        proc.step()
        regimes[i] = proc.regime
        if previous == 0:
            switches[(0, proc.regime)] += 1
        previous = proc.regime
    assert (regimes == 1).mean() == pytest.approx(1 / 3, abs=0.04)
    assert switches[(0, 1)] / (switches[(0, 1)] + switches[(0, 0)]) == pytest.approx(0.1, abs=0.015)


def test_jump_compensator_formula() -> None:
    proc = process(
        {
            "ETH": dynamics(0.7, 0.0, 4.0, -0.04, 0.06),
            "BTC": dynamics(0.55, 0.0, 3.0, -0.03, 0.05, price=90_000.0),
        }
    )
    expected = [4.0 * (math.exp(-0.04 + 0.0018) - 1), 3.0 * (math.exp(-0.03 + 0.00125) - 1)]
    np.testing.assert_allclose(proc.jump_compensator, expected, rtol=1e-12)


def test_jump_compensator_keeps_expected_growth_at_drift() -> None:
    """E[exp(log return)] = exp(mu dt); uncompensated jumps would cut it by ~4.4%."""
    n, drift, dt_hours = 20_000, 0.5, 175.2  # 0.02-year steps, about one jump per step
    proc = process({"ETH": dynamics(0.2, drift, 50.0, -0.05, 0.1)}, seed=31, dt_hours=dt_hours)
    growth = np.exp(run(proc, n)[:, 0])
    se = growth.std(ddof=1) / math.sqrt(n)
    dt = dt_hours / HOURS_PER_YEAR
    assert growth.mean() == pytest.approx(math.exp(drift * dt), abs=5 * se)
    assert abs(proc.jump_compensator[0] * dt) > 20 * se  # the compensator matters here


def test_impact_moves_one_asset_permanently() -> None:
    proc, twin = process(seed=2), process(seed=2)
    proc.impact(0, math.log(0.9))
    np.testing.assert_allclose(proc.prices, twin.prices * [0.9, 1.0], rtol=1e-12)
    run(proc, 10)
    run(twin, 10)
    np.testing.assert_allclose(proc.prices, twin.prices * [0.9, 1.0], rtol=1e-12)


# -- Forced-flow impact (issue 13 item 5) ----------------------------------------------

SIGMA_DAILY_ETH = 0.70 / math.sqrt(365.0)  # baseline ETH, calm regime: 0.0366397


def flow_impact(depth: float = 1e15, y: float = 1.0, permanent: float = 2.0 / 3.0) -> FlowImpact:
    """ETH-like: $11B daily volume; a book so deep it never binds unless told."""
    return FlowImpact(y, permanent, np.array([11e9]), np.array([depth]), 24.0)


def test_daily_volatility_of_a_365_day_market() -> None:
    assert daily_volatility(0.70) == pytest.approx(0.0366397, rel=1e-6)


def test_square_root_law_golden_values() -> None:
    # Toth et al. (2011): peak = Y sigma_daily sqrt(Q / V). $110M against $11B a day is
    # 1% of V: a peak of 0.1 sigma_daily = 0.366%, of which 2/3 stays (Farmer et al. 2013).
    impact = flow_impact()
    assert impact.peak_impact(0, 110e6, SIGMA_DAILY_ETH) == pytest.approx(-0.00366397, rel=1e-5)
    assert impact.peak_impact(0, -110e6, SIGMA_DAILY_ETH) == pytest.approx(0.00366397, rel=1e-5)
    first = impact.add_flow(0, 110e6, SIGMA_DAILY_ETH)
    assert first == pytest.approx(math.log1p(-0.00244265), rel=1e-5)
    # The same sale again is the same metaorder: concave, sqrt(2) - 1 of the first.
    second = impact.add_flow(0, 110e6, SIGMA_DAILY_ETH)
    assert second / first == pytest.approx(math.sqrt(2.0) - 1.0, rel=1e-3)
    # Buying it all back undoes the remembered impact.
    back = impact.add_flow(0, -220e6, SIGMA_DAILY_ETH)
    assert math.expm1(back) == pytest.approx(-math.expm1(first + second), rel=1e-2)
    assert impact.flow_usd[0] == 0.0


def test_flow_is_forgotten_over_the_memory() -> None:
    impact = flow_impact()
    impact.add_flow(0, 100e6, SIGMA_DAILY_ETH)
    impact.decay(24.0)
    assert impact.flow_usd[0] == pytest.approx(100e6 / math.e)


def test_flow_large_against_the_book_sweeps_it() -> None:
    # $360M sold within a step against $180M of bids within 2%: at least a 4% peak
    # (linear cumulative depth), whatever the square-root law says (0.66%).
    impact = flow_impact(depth=180e6)
    assert impact.book_impact(0, 360e6) == pytest.approx(-0.04)
    move = impact.add_flow(0, 360e6, SIGMA_DAILY_ETH)
    assert move == pytest.approx(math.log1p(-0.04 * 2.0 / 3.0))
    # A small flow is priced by the law, not the book.
    small = flow_impact(depth=180e6)
    law = small.peak_impact(0, 1e6, SIGMA_DAILY_ETH) * 2.0 / 3.0
    assert small.add_flow(0, 1e6, SIGMA_DAILY_ETH) == pytest.approx(math.log1p(law))


@pytest.mark.parametrize(("y", "permanent"), [(0.0, 2.0 / 3.0), (1.0, 0.0)])
def test_impact_switched_off_adds_exactly_zero(y: float, permanent: float) -> None:
    impact = flow_impact(depth=1.0, y=y, permanent=permanent)
    assert impact.add_flow(0, 1e9, SIGMA_DAILY_ETH) == 0.0


def test_one_round_of_flow_at_most_halves_or_doubles_the_price() -> None:
    # Issue 19: a book of $0.18 priced a buyback at ~1e16 USD/ETH (the move was linear
    # in flow / depth without limit); a round now moves the price by a factor in [1/2, 2]
    # before the permanent share (ROUND_MOVE).
    impact = flow_impact(depth=0.18, permanent=1.0)
    assert impact.add_flow(0, -1e9, SIGMA_DAILY_ETH) == pytest.approx(math.log(2.0))
    assert impact.add_flow(0, 5e9, SIGMA_DAILY_ETH) == pytest.approx(math.log(0.5))
    kept = flow_impact(depth=0.18).add_flow(0, -1e9, SIGMA_DAILY_ETH)
    assert kept == pytest.approx(math.log1p(2.0 / 3.0))


def test_reference_price_stays_in_its_band_of_the_initial_price() -> None:
    # A volatility 10 in a 1e4 regime (both valid) overflowed exp() within a few steps.
    proc = process(
        {"ETH": dynamics(sigma=10.0)}, multipliers=np.array([1e4]), transitions=np.ones((1, 1))
    )
    prices = np.array([np.exp(proc.step()) for _ in range(50)])
    assert np.isfinite(prices).all()
    assert 3000.0 * 1e-6 * (1 - 1e-9) <= proc.prices[0] <= 3000.0 * 1e4 * (1 + 1e-9)
    proc.impact(0, 1e6)
    assert proc.prices[0] == pytest.approx(3000.0 * 1e4)
