"""Volatility surfaces: SVI recovery, SVI vs torch fit errors, calendar no-arbitrage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liqnet.protocols.options import (
    NeuralSurface,
    SmileSpec,
    SVIParams,
    SVISurface,
    calendar_violation,
    fit_report,
    fit_svi_slice,
    market_quotes,
    ssvi_total_variance,
)

EXPIRIES = np.array([1.0, 7.0, 14.0, 28.0, 56.0]) / 365.0
SPOT = 3000.0


def quotes(seed: int = 0, vol: float = 0.7, **smile: float):
    """The simulated market's quotes at ATM vol ``vol``."""
    return market_quotes(SPOT, vol, EXPIRIES, np.random.default_rng(seed), SmileSpec(**smile))


@pytest.mark.parametrize(
    "true",
    [
        SVIParams(0.02, 0.1, -0.4, 0.05, 0.15),
        SVIParams(0.001, 0.02, 0.3, -0.02, 0.05),
        SVIParams(0.05, 0.3, -0.8, -0.1, 0.3),
    ],
)
def test_svi_recovers_known_parameters(true: SVIParams) -> None:
    k = np.linspace(-0.6, 0.6, 15)
    fit = fit_svi_slice(k, true.total_variance(k))
    got = [fit.a, fit.b, fit.rho, fit.m, fit.sigma]
    np.testing.assert_allclose(got, [true.a, true.b, true.rho, true.m, true.sigma], atol=1e-7)


def test_quotes_are_otm_prices_whose_implied_vols_are_the_market_smile() -> None:
    q = quotes(noise_vol=0.0)
    smile_vol = np.sqrt(
        ssvi_total_variance(q.log_moneyness, 0.49 * q.expiry_years, SmileSpec()) / q.expiry_years
    )
    np.testing.assert_allclose(q.implied_vol, smile_vol, rtol=1e-8)
    np.testing.assert_array_equal(q.is_call, q.log_moneyness >= 0)
    assert q.implied_vol[q.log_moneyness < -0.05].min() > 0.7  # put skew: wings above ATM


def test_svi_reproduces_a_noise_free_ssvi_market() -> None:
    # Every SSVI slice is an SVI slice, so without noise the fit is exact.
    q = quotes(noise_vol=0.0)
    surface = SVISurface.fit(q)
    assert np.abs(surface.implied_vol(q.strike, q.expiry_years) - q.implied_vol).max() < 1e-6


@pytest.mark.parametrize(("seed", "vol"), [(1, 0.5), (2, 1.5)])
def test_both_surfaces_fit_held_out_quotes_to_about_the_quote_noise(seed: int, vol: float) -> None:
    report = fit_report(quotes(seed, vol), seed=seed)
    assert report.n_test >= 20 and report.n_train >= 60
    # Quote noise is 0.3 vol points: SVI (the market's own family) fits to that level; the
    # network must stay within a vol point on quotes it never saw.
    assert report.svi_rmse < 0.006
    assert report.neural_rmse < 0.01
    assert report.svi_max_error < 0.015 and report.neural_max_error < 0.03


def test_neural_surface_is_deterministic_bounded_in_work_and_leaves_torch_state_alone() -> None:
    q = quotes(3)
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    batches: list[int] = []
    fit_threads: set[int] = set()

    def count(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Sequential):  # one whole-network forward pass
            batches.append(args[0].shape[0])
            fit_threads.add(torch.get_num_threads())

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        first = NeuralSurface.fit(q, seed=11)
    finally:
        handle.remove()
    again, other = NeuralSurface.fit(q, seed=11), NeuralSurface.fit(q, seed=12)
    # The cost is bounded without a clock: L-BFGS evaluates the loss at most
    # max_eval = 1.25 * max_iter = 625 times, each a full-batch pass of the quotes through
    # a 1,185-parameter network, on one thread (benchmarks/greeks_throughput.py times it).
    assert 0 < len(batches) <= 625
    assert set(batches) == {len(q.strike)}
    assert fit_threads == {1}
    assert sum(p.numel() for p in first.net.parameters()) == 2 * 32 + 32 + 32 * 32 + 32 + 33
    vols = first.implied_vol(q.strike, q.expiry_years)
    np.testing.assert_array_equal(vols, again.implied_vol(q.strike, q.expiry_years))
    assert not np.allclose(vols, other.implied_vol(q.strike, q.expiry_years), rtol=1e-9)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("kind", [SVISurface, NeuralSurface])
def test_implied_vol_is_vectorised_and_sticky_in_moneyness(kind: type) -> None:
    surface = kind.fit(quotes(4))
    strikes = np.linspace(2400.0, 3600.0, 7)
    grid = surface.implied_vol(strikes[:, None], EXPIRIES[None, :])
    assert grid.shape == (7, EXPIRIES.size) and np.all(grid > 0)
    assert surface.implied_vol(3400.0, EXPIRIES[2]) == pytest.approx(grid[5, 2], rel=1e-12)
    # Same moneyness after the spot halves: same vol.
    moved = surface.implied_vol(strikes / 2.0, EXPIRIES[1], spot=SPOT / 2.0)
    np.testing.assert_allclose(moved, grid[:, 1], rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("vol", [0.4, 1.5])
def test_total_variance_never_falls_with_expiry(seed: int, vol: float) -> None:
    q = quotes(seed, vol)
    surface = SVISurface.fit(q)
    k = q.log_moneyness
    # The raw fitted slices: on each slice's quoted strikes, the next slice lies above.
    for t, shorter, longer in zip(EXPIRIES, surface.slices, surface.slices[1:], strict=False):
        on_grid = np.linspace(k[q.expiry_years == t].min(), k[q.expiry_years == t].max(), 50)
        assert np.all(longer.total_variance(on_grid) >= shorter.total_variance(on_grid))
    # The surface as queried: also between and beyond the slices, wings included.
    wide, dense = np.linspace(-1.5, 1.0, 101), np.linspace(0.1 / 365, 0.5, 80)
    assert calendar_violation(surface, wide, dense) <= 1e-12


def test_bad_inputs_are_rejected_with_clear_errors() -> None:
    with pytest.raises(ValueError, match=">= 5"):
        fit_svi_slice([0.0, 0.1, 0.2, 0.3], [0.1, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="holdout"):
        fit_report(quotes(), holdout=0.7)
    with pytest.raises(ValueError, match="increasing"):
        SVISurface([0.1, 0.05], [SVIParams(0.01, 0.1, 0.0, 0.0, 0.1)] * 2, SPOT)
