"""Tests for liqnet.protocols.options.pricing: prices, Greeks, torch path, implied vol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.protocols.options import (
    OptionGreeks,
    black_scholes,
    black_scholes_torch,
    implied_volatility,
    pricing,
)

GREEKS = ("price", "delta", "gamma", "vega", "theta", "rho")
HULL = {"spot": 42.0, "strike": 40.0, "expiry_years": 0.5, "rate": 0.10, "volatility": 0.20}


def _random_book(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Options across moneyness 0.5-2, expiries 1 day-5 years, vols 5%-150%, mixed kinds."""
    rng = np.random.default_rng(seed)
    return {
        "spot": rng.uniform(50.0, 200.0, n),
        "strike": rng.uniform(50.0, 200.0, n),
        "expiry_years": rng.uniform(1 / 365, 5.0, n),
        "rate": rng.uniform(-0.02, 0.15, n),
        "volatility": rng.uniform(0.05, 1.5, n),
        "kind": rng.random(n) < 0.5,
    }


# --- golden values ------------------------------------------------------------------------


def test_hull_textbook_example() -> None:
    # Hull, Options, Futures and Other Derivatives: d1 = 0.7693, d2 = 0.6278,
    # c = 4.76, p = 0.81, N(d1) = 0.7791.
    call = black_scholes(**HULL, kind="call")
    put = black_scholes(**HULL, kind="put")
    assert round(float(call.price), 2) == 4.76
    assert round(float(put.price), 2) == 0.81
    assert float(call.price) == pytest.approx(4.759422, abs=1e-6)
    assert float(put.price) == pytest.approx(0.808599, abs=1e-6)
    assert float(call.delta) == pytest.approx(0.7791, abs=1e-4)
    assert float(put.delta) == pytest.approx(0.7791 - 1.0, abs=1e-4)
    assert float(call.gamma) == pytest.approx(float(put.gamma))
    assert float(call.vega) == pytest.approx(8.813415, abs=1e-6)
    assert isinstance(call.price, np.ndarray) and call.price.shape == ()


@settings(max_examples=300, deadline=None)
@given(
    spot=st.floats(1.0, 1e4),
    moneyness=st.floats(0.2, 5.0),
    expiry=st.floats(0.0, 10.0),
    rate=st.floats(-0.05, 0.25),
    vol=st.floats(0.0, 3.0),
)
def test_put_call_parity(spot: float, moneyness: float, expiry: float, rate: float, vol: float):
    strike = spot * moneyness
    call = black_scholes(spot, strike, expiry, rate, vol, "call")
    put = black_scholes(spot, strike, expiry, rate, vol, "put")
    forward_value = spot - strike * np.exp(-rate * expiry)
    scale = spot + strike
    assert float(call.price - put.price) == pytest.approx(forward_value, abs=1e-12 * scale)
    assert float(call.delta - put.delta) == pytest.approx(1.0, abs=1e-12)
    assert float(call.rho - put.rho) == pytest.approx(
        expiry * strike * np.exp(-rate * expiry), abs=1e-10 * scale
    )
    assert 0.0 <= float(put.price) <= strike * np.exp(-rate * expiry)


# --- Greeks against central finite differences --------------------------------------------


def test_every_greek_matches_central_differences() -> None:
    b = _random_book(400, seed=1)
    g = black_scholes(**b)

    def bumped(field: str, h: np.ndarray) -> np.ndarray:
        return black_scholes(**{**b, field: b[field] + h}).price

    hs = 1e-4 * b["spot"]
    fd = {
        "delta": (bumped("spot", hs) - bumped("spot", -hs)) / (2 * hs),
        "gamma": (bumped("spot", hs) - 2 * g.price + bumped("spot", -hs)) / hs**2,
        "vega": (bumped("volatility", 1e-6) - bumped("volatility", -1e-6)) / 2e-6,
        # theta is dV/dt = -dV/dT; every expiry here is >= 1 day, far above the bump.
        "theta": -(bumped("expiry_years", 1e-6) - bumped("expiry_years", -1e-6)) / 2e-6,
        "rho": (bumped("rate", 1e-6) - bumped("rate", -1e-6)) / 2e-6,
    }
    for name, approx in fd.items():
        exact = getattr(g, name)
        scale = np.maximum(np.abs(exact), 1.0)
        # gamma's second difference carries ~eps*V/h^2 of rounding, hence its looser bound.
        tol = 1e-4 if name == "gamma" else 1e-6
        np.testing.assert_array_less(np.abs(approx - exact) / scale, tol, err_msg=name)


def test_degenerate_expiry_and_zero_vol_are_finite() -> None:
    spot = np.array([42.0, 40.0, 38.0])
    at_expiry_call = black_scholes(spot, 40.0, 0.0, 0.1, 0.2, "call")
    at_expiry_put = black_scholes(spot, 40.0, 0.0, 0.1, 0.2, "put")
    np.testing.assert_array_equal(at_expiry_call.price, [2.0, 0.0, 0.0])
    np.testing.assert_array_equal(at_expiry_put.price, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(at_expiry_call.delta, [1.0, 0.5, 0.0])  # step, 1/2 at K
    np.testing.assert_array_equal(at_expiry_put.delta, [0.0, -0.5, -1.0])
    # Zero vol: deterministic forward, value = discounted intrinsic against K e^{-rT}.
    no_vol = black_scholes(spot, 40.0, 1.0, 0.1, 0.0, "call")
    np.testing.assert_allclose(no_vol.price, np.maximum(spot - 40.0 * np.exp(-0.1), 0.0))
    np.testing.assert_allclose(no_vol.theta, [-0.1 * 40.0 * np.exp(-0.1)] * 3)
    for g in (at_expiry_call, at_expiry_put, no_vol):
        for name in GREEKS:
            assert np.all(np.isfinite(getattr(g, name))), name


def test_kind_array_of_strings_and_broadcasting() -> None:
    g = black_scholes(np.array([[40.0], [42.0]]), 40.0, 0.5, 0.1, 0.2, ["call", "put", "call"])
    assert g.price.shape == (2, 3) and g.vega.shape == (2, 3)
    np.testing.assert_allclose(g.price[1], [4.759422, 0.808599, 4.759422], atol=1e-6)


# --- torch path ---------------------------------------------------------------------------


def test_torch_path_equals_numpy_path() -> None:
    b = _random_book(2000, seed=2)
    ref = black_scholes(**b)
    tensors = {k: torch.as_tensor(v) for k, v in b.items()}
    out = black_scholes_torch(**tensors)
    assert isinstance(out, OptionGreeks)
    for name in GREEKS:
        t = getattr(out, name)
        assert t.dtype == torch.float64 and t.device.type == "cpu"
        np.testing.assert_allclose(t.numpy(), getattr(ref, name), rtol=1e-12, atol=1e-12)
    # Degenerate points take the same branch on both paths.
    deg = black_scholes_torch([42.0, 40.0], 40.0, [0.0, 1.0], 0.1, [0.2, 0.0], "put")
    ref_deg = black_scholes([42.0, 40.0], 40.0, [0.0, 1.0], 0.1, [0.2, 0.0], "put")
    for name in GREEKS:
        np.testing.assert_allclose(getattr(deg, name).numpy(), getattr(ref_deg, name))


def test_torch_float32_and_validation() -> None:
    out = black_scholes_torch(**HULL, kind="call", dtype=torch.float32)
    assert out.price.dtype == torch.float32
    assert float(out.price) == pytest.approx(4.759422, abs=1e-4)
    with pytest.raises(ValueError, match="volatility"):
        black_scholes_torch(42.0, 40.0, 0.5, 0.1, torch.tensor([0.2, float("nan")]))


def test_torch_autograd_matches_analytic_greeks() -> None:
    spot = torch.tensor([42.0, 40.0, 30.0], dtype=torch.float64, requires_grad=True)
    vol = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64, requires_grad=True)
    out = black_scholes_torch(spot, 40.0, 0.5, 0.1, vol, "put")
    out.price.sum().backward()
    torch.testing.assert_close(spot.grad, out.delta.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(vol.grad, out.vega.detach(), rtol=1e-12, atol=1e-14)


def test_numpy_path_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    b = _random_book(500, seed=3)
    with_scipy = black_scholes(**b)
    monkeypatch.setattr(pricing, "_scipy_ndtr", None)  # the torch.special.ndtr fallback
    without = black_scholes(**b)
    for name in GREEKS:
        np.testing.assert_allclose(
            getattr(without, name), getattr(with_scipy, name), rtol=1e-12, atol=1e-12
        )


def test_far_out_of_the_money_prices_keep_relative_accuracy() -> None:
    # d2 ~ -8.8 to -12.8: prices of ~1e-17 to ~1e-36 that torch.special.ndtr would round to 0.
    strike = np.array([300.0, 400.0, 500.0])
    ref = black_scholes(100.0, strike, 0.1, 0.0, 0.4, "call").price
    assert np.all(ref > 0) and np.all(ref < 1e-12)
    fast = black_scholes_torch(100.0, strike, 0.1, 0.0, 0.4, "call").price.numpy()
    np.testing.assert_allclose(fast, ref, rtol=1e-9)
    iv = implied_volatility(ref, 100.0, strike, 0.1, 0.0, "call")
    np.testing.assert_allclose(iv, 0.4, rtol=1e-6)


# --- implied volatility -------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    moneyness=st.floats(0.5, 2.0),
    expiry=st.floats(0.02, 5.0),
    rate=st.floats(0.0, 0.1),
    vol=st.floats(0.05, 2.0),
    is_call=st.booleans(),
)
def test_implied_vol_round_trip(
    moneyness: float, expiry: float, rate: float, vol: float, is_call: bool
) -> None:
    spot, strike = 100.0, 100.0 * moneyness
    g = black_scholes(spot, strike, expiry, rate, vol, is_call)
    iv = implied_volatility(g.price, spot, strike, expiry, rate, is_call)
    repriced = black_scholes(spot, strike, expiry, rate, iv, is_call).price
    assert float(repriced) == pytest.approx(float(g.price), abs=1e-10 * spot)
    if g.vega > 1e-3 * spot:  # elsewhere the price barely pins the vol down
        assert float(iv) == pytest.approx(vol, abs=1e-8)


def test_implied_vol_vectorised_grid() -> None:
    b = _random_book(5000, seed=4)
    price = black_scholes(**b).price
    vol = b.pop("volatility")
    iv = implied_volatility(price, **b)
    vega = black_scholes(**b, volatility=vol).vega
    informative = vega > 1e-3 * b["spot"]
    assert informative.mean() > 0.9
    np.testing.assert_allclose(iv[informative], vol[informative], atol=1e-8)
    vols = np.linspace(0.05, 2.0, 5000).reshape(50, 100)
    grid_prices = black_scholes(100.0, 100.0, 1.0, 0.0, vols, "put").price
    grid = implied_volatility(grid_prices, 100.0, 100.0, 1.0, 0.0, "put")
    assert grid.shape == (50, 100)
    np.testing.assert_allclose(grid, vols, atol=1e-10)


def test_implied_vol_at_lower_bound_is_zero() -> None:
    intrinsic = 42.0 - 40.0 * np.exp(-0.05)
    iv = implied_volatility([intrinsic, 0.0], 42.0, 40.0, 0.5, 0.1, ["call", "put"])
    np.testing.assert_array_equal(iv, [0.0, 0.0])


@pytest.mark.parametrize(
    ("price", "kind", "expiry"),
    [
        (42.0, "call", 0.5),  # C >= S
        (3.0, "call", 0.5),  # below S - K e^{-rT} = 3.95
        (40.0 * np.exp(-0.05), "put", 0.5),  # P >= K e^{-rT}
        (-0.1, "put", 0.5),
        (2.5, "call", 0.0),  # above intrinsic at expiry: no vol reaches it
    ],
)
def test_implied_vol_rejects_arbitrage_prices(price: float, kind: str, expiry: float) -> None:
    with pytest.raises(ValueError, match="no-arbitrage bounds"):
        implied_volatility(price, 42.0, 40.0, expiry, 0.1, kind)


def test_implied_vol_error_names_offending_entries() -> None:
    prices = np.array([4.0, 50.0, 4.5, 1.0])
    with pytest.raises(ValueError, match=r"index \[1\] = 50, \[3\] = 1;"):
        implied_volatility(prices, 42.0, 40.0, 0.5, 0.1)


# --- input validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spot", -42.0, "spot must be > 0"),
        ("spot", np.nan, "spot must be finite"),
        ("strike", [40.0, -1.0], r"strike must be > 0.0; at index \[1\]"),
        ("volatility", -0.2, "volatility must be >= 0"),
        ("expiry_years", -0.5, "expiry_years must be >= 0"),
        ("rate", np.inf, "rate must be finite"),
        ("kind", ["call", "straddle"], "kind must be 'call' or 'put'"),
        ("kind", [1, 0], "kind must be 'call', 'put', or an array"),
    ],
)
def test_invalid_inputs_name_the_field(field: str, value: object, message: str) -> None:
    kwargs: dict[str, object] = {**HULL, "kind": "call", field: value}
    with pytest.raises(ValueError, match=message):
        black_scholes(**kwargs)  # type: ignore[arg-type]
