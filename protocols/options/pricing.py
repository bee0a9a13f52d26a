"""Black-Scholes-Merton prices, Greeks and implied volatility, on NumPy arrays and torch tensors.

One set of formulas (`_formulas`) serves both backends, so the NumPy path and the torch fast
path cannot drift apart. Conventions: European options on a non-dividend-paying underlying,
continuously compounded ``rate``, ``expiry_years`` in years; ``vega`` is per 1.00 of
volatility, ``rho`` per 1.00 of rate and ``theta`` is dV/dt per year (negative for a long
option that decays).

``kind`` is ``"call"``, ``"put"``, or an array (broadcast with the other inputs) of booleans
(``True`` = call) or of the strings ``"call"`` / ``"put"``.

Degenerate points (``expiry_years == 0`` or ``volatility == 0``) give the deterministic
limit: price ``max(±(S - K e^{-rT}), 0)`` and a delta step (0.5 exactly at the forward).
Where the true Greek is a Dirac mass or infinite (gamma, and theta's diffusion term, at the
money at expiry) it is reported as 0 so downstream sums stay finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import torch

try:  # scipy is not a declared liqnet dependency: use its fast ndtr when it happens to be there.
    from scipy.special import ndtr as _scipy_ndtr
except ImportError:  # pragma: no cover - depends on the environment
    _scipy_ndtr = None

__all__ = ["OptionGreeks", "black_scholes", "black_scholes_torch", "implied_volatility"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
KindLike = str | npt.ArrayLike | torch.Tensor

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
# Stands in for infinity when vol*sqrt(T) == 0: d = log-moneyness * _HUGE saturates N(d) to
# 0 or 1 without the 0 * inf = NaN that a literal inf gives exactly at the forward.
_HUGE = 1e100
_EPS = float(np.finfo(np.float64).eps)
_MAX_IV = 2.0**12  # upper end of the implied-vol bracket search (409,600% a year)


@dataclass(frozen=True)
class OptionGreeks(Generic[ArrayT]):
    """Price and first-order risk sensitivities of options, one entry per option.

    Attributes:
        price: Option value.
        delta: dV/dS.
        gamma: d2V/dS2.
        vega: dV/dsigma, per 1.00 (100 points) of volatility.
        theta: dV/dt per year (calendar time passing, i.e. -dV/dT).
        rho: dV/dr, per 1.00 of rate.
    """

    price: ArrayT
    delta: ArrayT
    gamma: ArrayT
    vega: ArrayT
    theta: ArrayT
    rho: ArrayT


def _ndtr_torch(x: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF via erfc, accurate to ~1e-13 relative deep into the lower tail.

    ``torch.special.ndtr`` (torch 2.13) returns exactly 0 already at x = -6 (true value 1e-9),
    which would zero out far out-of-the-money prices and break their implied vols.
    """
    return 0.5 * torch.special.erfc(x * -_INV_SQRT_2)


def _ndtr_numpy(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised: scipy when importable, else `_ndtr_torch` (zero-copy)."""
    if _scipy_ndtr is not None:
        return np.asarray(_scipy_ndtr(x))
    return _ndtr_torch(torch.from_numpy(np.ascontiguousarray(x, np.float64))).numpy()


def _formulas(
    xp: ModuleType,
    ndtr: Callable[[Any], Any],
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    v: Any,
    sign: Any,
) -> OptionGreeks[Any]:
    """Black-Scholes-Merton on pre-broadcast arrays; ``xp`` is ``numpy`` or ``torch``.

    ``sign`` is +1 for calls and -1 for puts, which folds both payoffs into one expression
    and needs only two CDF evaluations per option.
    """
    sqrt_t = xp.sqrt(T)
    sst = v * sqrt_t
    live = sst > 0
    safe_sst = xp.where(live, sst, 1.0)
    safe_sqrt_t = xp.where(T > 0, sqrt_t, 1.0)
    disc_k = K * xp.exp(-r * T)
    m = xp.log(S / K) + r * T  # log-moneyness against the forward
    d1 = xp.where(live, (m + 0.5 * sst * sst) / safe_sst, m * _HUGE)
    d2 = d1 - sst
    pdf = xp.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    n1 = ndtr(sign * d1)
    n2 = ndtr(sign * d2)
    price = sign * (S * n1 - disc_k * n2)
    # Cancellation can leave ~-1e-17 for far out-of-the-money options; values are >= 0.
    price = xp.where(price > 0, price, 0.0)
    return OptionGreeks(
        price=price,
        delta=sign * n1,
        gamma=xp.where(live, pdf / (S * safe_sst), 0.0),
        vega=S * pdf * sqrt_t,
        theta=-xp.where(live, S * pdf * v / (2.0 * safe_sqrt_t), 0.0) - sign * r * disc_k * n2,
        rho=sign * T * disc_k * n2,
    )


def _where_bad(mask: np.ndarray, values: np.ndarray, limit: int = 5) -> str:
    """Describe the offending entries of ``mask`` (indices and values) for an error message."""

    def fmt(x: Any) -> str:
        x = x.item() if isinstance(x, np.generic) else x
        return f"{x:.10g}" if isinstance(x, float) else repr(x)

    if mask.ndim == 0:
        return f"got {fmt(values[()])}"
    idx = np.argwhere(mask)
    shown = ", ".join(
        f"[{', '.join(str(int(i)) for i in ix)}] = {fmt(values[tuple(ix)])}" for ix in idx[:limit]
    )
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"at index {shown}{more}"


def _field(name: str, x: npt.ArrayLike, low: float | None = None, strict: bool = False) -> Any:
    """Convert ``x`` to float64 and check it is finite and above ``low`` (``> low`` if strict)."""
    arr = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite (no NaN/inf); {_where_bad(bad, arr)}")
    if low is not None:
        bad = arr <= low if strict else arr < low
        if bad.any():
            rule = f"> {low}" if strict else f">= {low}"
            raise ValueError(f"{name} must be {rule}; {_where_bad(bad, arr)}")
    return arr


def _kind_sign(kind: KindLike) -> np.ndarray:
    """Map ``kind`` to +1.0 (call) / -1.0 (put) as a float64 array."""
    if isinstance(kind, torch.Tensor):
        kind = kind.detach().cpu().numpy()
    arr = np.asarray(kind)
    if arr.dtype == np.bool_:
        is_call = arr
    elif arr.dtype.kind in "UO":
        known = (arr == "call") | (arr == "put")
        if not np.all(known):
            raise ValueError(f"kind must be 'call' or 'put'; {_where_bad(~known, arr)}")
        is_call = arr == "call"
    else:
        raise ValueError(f"kind must be 'call', 'put', or an array of bools/strings; got {kind!r}")
    return np.where(is_call, 1.0, -1.0)


def _checked_inputs(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    volatility: npt.ArrayLike | None,
) -> list[np.ndarray]:
    """Validate the market inputs field by field (so errors name the field, not a shape)."""
    out = [
        _field("spot", spot, 0.0, strict=True),
        _field("strike", strike, 0.0, strict=True),
        _field("expiry_years", expiry_years, 0.0),
        _field("rate", rate),
    ]
    if volatility is not None:
        out.append(_field("volatility", volatility, 0.0))
    return out


def black_scholes(
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    volatility: npt.ArrayLike,
    kind: KindLike = "call",
) -> OptionGreeks[np.ndarray]:
    """Black-Scholes-Merton price and Greeks on NumPy arrays (inputs broadcast together).

    Args:
        spot: Underlying price, > 0.
        strike: Strike price, > 0.
        expiry_years: Time to expiry in years, >= 0.
        rate: Continuously compounded risk-free rate (any sign).
        volatility: Annualised volatility, >= 0.
        kind: ``"call"``, ``"put"``, or an array of bools (True = call) or strings.

    Returns:
        `OptionGreeks` of float64 arrays with the broadcast shape of all inputs.

    Raises:
        ValueError: an input is NaN/inf or out of range; the message names the field.
    """
    checked = _checked_inputs(spot, strike, expiry_years, rate, volatility)
    S, K, T, r, v, sign = np.broadcast_arrays(*checked, _kind_sign(kind))
    # Overflow/underflow in exp(-d^2/2) for extreme d is the intended saturation to 0.
    with np.errstate(over="ignore", under="ignore"):
        g = _formulas(np, _ndtr_numpy, S, K, T, r, v, sign)
    # NumPy turns 0-d results into scalars; keep the promise of arrays out.
    return OptionGreeks(*(np.asarray(getattr(g, f.name)) for f in fields(g)))


def black_scholes_torch(
    spot: npt.ArrayLike | torch.Tensor,
    strike: npt.ArrayLike | torch.Tensor,
    expiry_years: npt.ArrayLike | torch.Tensor,
    rate: npt.ArrayLike | torch.Tensor,
    volatility: npt.ArrayLike | torch.Tensor,
    kind: KindLike = "call",
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    validate: bool = True,
) -> OptionGreeks[torch.Tensor]:
    """Black-Scholes-Merton price and Greeks on torch tensors (the fast path).

    Same formulas and conventions as `black_scholes`. Differentiable (autograd) for
    ``volatility`` and ``spot`` inside the non-degenerate region.

    Args:
        spot: Underlying price, > 0.
        strike: Strike price, > 0.
        expiry_years: Time to expiry in years, >= 0.
        rate: Continuously compounded risk-free rate.
        volatility: Annualised volatility, >= 0.
        kind: ``"call"``, ``"put"``, or bools (True = call) / strings, array or bool tensor.
        dtype: Computation dtype (float64 by default: float32 loses ~1e-7 relative accuracy).
        device: Target device; defaults to the device of the first tensor input, else CPU.
        validate: Check inputs as `black_scholes` does. Costs a device sync per field on GPU,
            so hot loops with already-checked inputs may turn it off.

    Returns:
        `OptionGreeks` of tensors with the broadcast shape of all inputs.

    Raises:
        ValueError: an input is NaN/inf or out of range (only when ``validate``).
    """
    raw = [spot, strike, expiry_years, rate, volatility]
    if device is None:
        device = next((x.device for x in raw if isinstance(x, torch.Tensor)), torch.device("cpu"))
    if validate:
        _checked_inputs(*(x.detach().cpu() if isinstance(x, torch.Tensor) else x for x in raw))
    tensors = [torch.as_tensor(x, dtype=dtype, device=device) for x in raw]
    if isinstance(kind, str):
        sign = torch.tensor(1.0 if _kind_sign(kind) > 0 else -1.0, dtype=dtype, device=device)
    elif isinstance(kind, torch.Tensor) and kind.dtype == torch.bool:
        sign = kind.to(device=device, dtype=dtype) * 2.0 - 1.0  # no host round trip
    else:
        sign = torch.as_tensor(_kind_sign(kind), dtype=dtype, device=device)
    S, K, T, r, v, sgn = torch.broadcast_tensors(*tensors, sign)
    return _formulas(torch, _ndtr_torch, S, K, T, r, v, sgn)


def implied_volatility(
    price: npt.ArrayLike,
    spot: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    rate: npt.ArrayLike,
    kind: KindLike = "call",
    tol: float = 1e-10,
    max_iter: int = 100,
) -> np.ndarray:
    """Black-Scholes implied volatility by safeguarded Newton inside a bracket, vectorised.

    In-the-money prices are first turned into their out-of-the-money twin by put-call
    parity (subtract the lower bound), whose price is never a small difference of large
    terms. Newton then runs on log(price): out of the money the price falls off like
    exp(-c / vol^2), so plain Newton crawls (1e-56 prices need hundreds of steps), while
    log(price) is close to linear in 1/vol and converges in a handful. Each iteration
    also shrinks a per-entry bracket [lo, hi] with the sign of the pricing error and
    bisects whenever the Newton step would leave it. The start point is the
    Manaster-Koehler guess sqrt(2 |ln(F/K)| / T).

    Prices on the lower no-arbitrage bound (within float rounding) return 0.

    Args:
        price: Observed option price.
        spot: Underlying price, > 0.
        strike: Strike price, > 0.
        expiry_years: Time to expiry in years, >= 0 (at 0 only the intrinsic value is valid).
        rate: Continuously compounded risk-free rate.
        kind: ``"call"``, ``"put"``, or an array of bools (True = call) or strings.
        tol: Absolute tolerance on volatility (Newton step / bracket width).
        max_iter: Iteration limit.

    Returns:
        Implied volatilities, float64 array of the broadcast shape.

    Raises:
        ValueError: a price lies outside the no-arbitrage bounds (call: max(S - K e^{-rT}, 0)
            <= C < S; put: max(K e^{-rT} - S, 0) <= P < K e^{-rT}), or an input is invalid.
        RuntimeError: some entries did not converge within ``max_iter``.
    """
    target = _field("price", price)
    checked = _checked_inputs(spot, strike, expiry_years, rate, None)
    target, S, K, T, r, sign = np.broadcast_arrays(target, *checked, _kind_sign(kind))
    disc_k = K * np.exp(-r * T)
    lower = np.maximum(sign * (S - disc_k), 0.0)
    upper = np.where(sign > 0, S, disc_k)
    # A model price computed in float64 can sit a few ulps below its bound; accept that.
    slack = 16.0 * _EPS * (S + K)
    bad = (target < lower - slack) | (target >= upper) | ((T == 0) & (target > lower + slack))
    if bad.any():
        first = tuple(np.argwhere(bad)[0])
        raise ValueError(
            "price outside no-arbitrage bounds (call: max(S-K*exp(-rT),0) <= C < S; put: "
            f"max(K*exp(-rT)-S,0) <= P < K*exp(-rT); at expiry only intrinsic) "
            f"{_where_bad(bad, target)}; first offender has bounds "
            f"[{lower[first]:.10g}, {upper[first]:.10g})"
        )
    # On the bound the vol is 0. In the money the bound is a difference of terms of size S
    # and K, so a price within `slack` of it carries no vol information; out of the money
    # the bound is 0 and even a 1e-30 price is accurate relative to itself.
    at_bound = (target <= lower + np.where(lower > 0, slack, 0.0)) | (T == 0)
    iv = np.zeros(target.shape)
    iv_flat = iv.reshape(-1)  # a view: writes through to iv
    idx = np.flatnonzero(~at_bound)
    if idx.size == 0:
        return iv
    target, S, K, T, r, sign, lower = (a.ravel()[idx] for a in (target, S, K, T, r, sign, lower))
    # Put-call parity: an in-the-money option = its out-of-the-money twin + the lower bound.
    sign = np.where(lower > 0, -sign, sign)
    target = target - lower
    log_target = np.log(target)

    def model(sig: np.ndarray, j: np.ndarray) -> OptionGreeks[np.ndarray]:
        with np.errstate(over="ignore", under="ignore"):
            return _formulas(np, _ndtr_numpy, S[j], K[j], T[j], r[j], sig, sign[j])

    # Bracket: price is increasing in vol, so double hi until model(hi) >= price.
    everyone = np.arange(idx.size)
    lo, hi = np.zeros(idx.size), np.ones(idx.size)
    for _ in range(int(math.log2(_MAX_IV)) + 1):
        short = model(hi, everyone).price < target
        if not short.any():
            break
        lo, hi = np.where(short, hi, lo), np.where(short, 2.0 * hi, hi)
    else:
        raise ValueError(
            f"implied volatility above {_MAX_IV:g} at flat index {idx[short][:5].tolist()}"
        )

    sig = np.sqrt(2.0 * np.abs(np.log(S / K) + r * T) / T)
    sig = np.where((sig > lo) & (sig < hi), sig, 0.5 * (lo + hi))
    active = everyone
    for _ in range(max_iter):
        g = model(sig, active)
        diff = g.price - target[active]
        lo[active] = np.where(diff <= 0, sig, lo[active])
        hi[active] = np.where(diff > 0, sig, hi[active])
        usable = (g.vega > 0) & (g.price > 0)  # an underflowed price has no log: bisect
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = sig - (np.log(g.price) - log_target[active]) * g.price / g.vega
        inside = usable & (newton > lo[active]) & (newton < hi[active])
        nxt = np.where(inside, newton, 0.5 * (lo[active] + hi[active]))
        # The model price is S*N(.) - K*e^{-rT}*N(.) with terms of size S*|delta| and
        # S*|delta| + price: a pricing error below their rounding carries no information.
        exact = np.abs(diff) <= 4.0 * _EPS * (2.0 * S[active] * np.abs(g.delta) + g.price)
        done = exact | (np.abs(nxt - sig) <= tol) | (hi[active] - lo[active] <= tol)
        iv_flat[idx[active[done]]] = np.where(exact, sig, nxt)[done]
        active, sig = active[~done], nxt[~done]
        if active.size == 0:
            return iv
    raise RuntimeError(
        f"implied_volatility did not converge in {max_iter} iterations for {active.size} "
        f"entries, e.g. flat index {idx[active[:5]].tolist()}"
    )
