"""Tests for liqnet.protocols.options.stress: SPAN-like grid margin and its Greeks shortcut."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from liqnet.protocols.options import (
    DEFAULT_PRICE_MOVES,
    black_scholes,
    greeks_approximation_error,
    portfolio_stress_loss,
    stress_grid,
)
from liqnet.protocols.options import stress as stress_mod

SPOT, VOL, RATE = 2000.0, 0.7, 0.04


def _book(n: int, seed: int, long_only: bool = False) -> dict[str, np.ndarray]:
    """A random book around SPOT: strikes +-40%, expiries 1 day to 1 year, mixed kinds."""
    rng = np.random.default_rng(seed)
    qty = rng.uniform(0.1, 5.0, n) * (1.0 if long_only else rng.choice([-1.0, 1.0], n))
    return {
        "quantity": qty,
        "strike": SPOT * rng.uniform(0.6, 1.4, n),
        "expiry_years": rng.uniform(1 / 365, 1.0, n),
        "kind": rng.choice(["call", "put"], n),
    }


def test_default_grid_shape_and_order() -> None:
    grid = stress_grid()
    assert grid.price_moves.tolist() == list(DEFAULT_PRICE_MOVES)
    assert grid.price_moves[0] == -0.3 and grid.price_moves[-1] == 0.3 and grid.n_scenarios == 39
    # Price-major order: scenario k pairs price_moves[k // 3] with vol_moves[k % 3].
    assert grid.scenario_price_moves[4] == -0.25 and grid.scenario_vol_moves[4] == 0.0
    with pytest.raises(ValueError):
        grid.price_moves[0] = 0.0  # read-only: the grid is frozen, arrays included
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.horizon_years = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("seed", range(5))
def test_margin_covers_every_scenario_and_is_non_negative(seed: int) -> None:
    book = _book(300, seed)
    for approx in (False, True):
        res = portfolio_stress_loss(
            **book, spot=SPOT, volatility=VOL, rate=RATE, greeks_approximation=approx
        )
        assert res.margin >= 0.0
        assert np.all(res.margin >= res.scenario_losses)
        assert res.scenario_losses.shape == (39,)
        if res.margin > 0:
            assert res.margin == res.scenario_losses[res.worst_scenario]


@pytest.mark.parametrize("seed", range(5))
def test_long_only_margin_at_most_premium_paid(seed: int) -> None:
    book = _book(200, seed, long_only=True)
    res = portfolio_stress_loss(**book, spot=SPOT, volatility=VOL, rate=RATE)
    premium = float(
        book["quantity"]
        @ black_scholes(SPOT, book["strike"], book["expiry_years"], RATE, VOL, book["kind"]).price
    )
    assert res.portfolio_value == pytest.approx(premium)
    assert 0.0 < res.margin <= premium


def test_single_positions_worst_scenario_by_hand() -> None:
    # Long call: worst is spot -30% and vol -30%; loss = premium now - value there.
    now = float(black_scholes(100.0, 100.0, 0.25, 0.0, 0.5, "call").price)
    there = float(black_scholes(70.0, 100.0, 0.25, 0.0, 0.35, "call").price)
    res = portfolio_stress_loss(1.0, 100.0, 0.25, "call", spot=100.0, volatility=0.5)
    assert (res.worst_price_move, res.worst_vol_move, res.worst_scenario) == (-0.3, -0.3, 0)
    assert res.margin == pytest.approx(now - there, rel=1e-12)
    assert now == pytest.approx(9.947645, abs=1e-6) and there == pytest.approx(0.111834, abs=1e-6)
    # Short 2 puts: worst is spot -30% and vol +30%.
    res = portfolio_stress_loss(-2.0, 100.0, 0.25, "put", spot=100.0, volatility=0.5)
    put_now = float(black_scholes(100.0, 100.0, 0.25, 0.0, 0.5, "put").price)
    put_there = float(black_scholes(70.0, 100.0, 0.25, 0.0, 0.65, "put").price)
    assert (res.worst_price_move, res.worst_vol_move) == (-0.3, 0.3)
    assert res.margin == pytest.approx(2.0 * (put_there - put_now), rel=1e-12)
    assert res.loss_table().shape == (13, 3) and res.loss_table()[6, 1] == 0.0


def test_full_revaluation_matches_a_reference_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    book = _book(50, seed=7)
    grid = stress_grid(horizon_years=2 / 365)  # some 1-day options expire inside it
    res = portfolio_stress_loss(**book, spot=SPOT, volatility=VOL, grid=grid, rate=RATE)
    value_now = 0.0
    ref = np.zeros(grid.n_scenarios)
    for q, k, t, kind in zip(*book.values(), strict=True):  # test-only reference loop
        value_now += q * float(black_scholes(SPOT, k, t, RATE, VOL, kind).price)
        for s, (dp, dv) in enumerate(
            zip(grid.scenario_price_moves, grid.scenario_vol_moves, strict=True)
        ):
            after = black_scholes(
                SPOT * (1 + dp), k, max(t - 2 / 365, 0.0), RATE, VOL * (1 + dv), kind
            )
            ref[s] -= q * float(after.price)
    np.testing.assert_allclose(res.scenario_losses, value_now + ref, rtol=1e-10, atol=1e-8)
    # Blocking positions to bound memory must not change the numbers.
    monkeypatch.setattr(stress_mod, "_BLOCK_ELEMENTS", 7 * grid.n_scenarios)
    small_blocks = portfolio_stress_loss(**book, spot=SPOT, volatility=VOL, grid=grid, rate=RATE)
    np.testing.assert_allclose(small_blocks.scenario_losses, res.scenario_losses, atol=1e-8)


def test_greeks_approximation_small_for_small_moves_and_reported() -> None:
    book = _book(300, seed=11)
    book["expiry_years"] = book["expiry_years"] + 0.1  # keep gamma away from its expiry spike
    small = stress_grid([-0.01, -0.005, 0.0, 0.005, 0.01], [-0.02, 0.0, 0.02])
    rep = greeks_approximation_error(**book, spot=SPOT, volatility=VOL, grid=small, rate=RATE)
    np.testing.assert_allclose(
        rep.scenario_errors, rep.approx.scenario_losses - rep.full.scenario_losses
    )
    assert rep.max_abs_error == pytest.approx(float(np.max(np.abs(rep.scenario_errors))))
    assert rep.full.method == "full" and rep.approx.method == "greeks"
    assert rep.approx.scenario_losses[7] == 0.0  # no move, no horizon: no P&L
    # Residual is mostly the vanna (dS x dvol) term the Taylor expansion leaves out.
    assert rep.full.margin > 0 and rep.relative_margin_error < 0.02
    assert rep.max_abs_error < 0.03 * rep.full.margin
    # On the default +-30% grid the Taylor expansion visibly misprices.
    wide = greeks_approximation_error(**book, spot=SPOT, volatility=VOL, rate=RATE)
    assert wide.max_abs_error > 100 * rep.max_abs_error
    assert wide.relative_margin_error > 0.1


def test_greeks_error_shrinks_like_the_cube_of_the_move() -> None:
    # Delta-gamma drops third-order terms: halving a pure spot move cuts the error ~8x.
    errors = []
    for move in (0.04, 0.02, 0.01):
        grid = stress_grid([move], [0.0])
        rep = greeks_approximation_error(1.0, 2000.0, 0.25, "call", SPOT, VOL, grid)
        errors.append(abs(float(rep.scenario_errors[0])))
    assert 6.0 < errors[0] / errors[1] < 10.0 and 6.0 < errors[1] / errors[2] < 10.0


def test_horizon_charges_time_decay() -> None:
    grid = stress_grid([0.0], [0.0], horizon_years=7 / 365)
    full = portfolio_stress_loss(1.0, 2000.0, 0.5, "call", SPOT, VOL, grid, rate=RATE)
    approx = portfolio_stress_loss(
        1.0, 2000.0, 0.5, "call", SPOT, VOL, grid, rate=RATE, greeks_approximation=True
    )
    theta = float(black_scholes(SPOT, 2000.0, 0.5, RATE, VOL, "call").theta)
    assert approx.margin == pytest.approx(-theta * 7 / 365, rel=1e-12)
    later = float(black_scholes(SPOT, 2000.0, 0.5 - 7 / 365, RATE, VOL, "call").price)
    now = float(black_scholes(SPOT, 2000.0, 0.5, RATE, VOL, "call").price)
    assert full.margin == pytest.approx(now - later, rel=1e-12)
    # Theta steepens as expiry nears, so a week's decay exceeds theta x 1 week a little.
    assert approx.margin < full.margin < 1.02 * approx.margin


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"price_moves": [-1.0, 0.0]}, "price_moves must all be > -1.0"),
        ({"vol_moves": [-1.5]}, "vol_moves must all be >= -1.0"),
        ({"price_moves": []}, "price_moves must be a non-empty"),
        ({"vol_moves": [np.nan]}, "vol_moves must be a non-empty sequence of finite"),
        ({"horizon_years": -1.0}, "horizon_years must be finite and >= 0"),
    ],
)
def test_grid_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stress_grid(**kwargs)  # type: ignore[arg-type]


def test_portfolio_validation() -> None:
    with pytest.raises(ValueError, match="one common length"):
        portfolio_stress_loss([1.0, 2.0], [100.0, 110.0, 120.0], 0.5, "call", 100.0, 0.5)
    with pytest.raises(ValueError, match="spot must be finite and > 0"):
        portfolio_stress_loss(1.0, 100.0, 0.5, "call", -100.0, 0.5)
    with pytest.raises(ValueError, match="volatility must be finite and >= 0"):
        portfolio_stress_loss(1.0, 100.0, 0.5, "call", 100.0, np.nan)
    with pytest.raises(ValueError, match="quantity must be finite"):
        portfolio_stress_loss([1.0, np.inf], 100.0, 0.5, "call", 100.0, 0.5)
    with pytest.raises(ValueError, match="strike must be > 0"):
        portfolio_stress_loss(1.0, [100.0, -5.0], 0.5, "put", 100.0, 0.5)
