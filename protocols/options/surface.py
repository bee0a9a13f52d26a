"""Volatility surfaces fitted to the simulated option market: raw SVI slices and a torch MLP.

The simulated market quotes out-of-the-money option *prices* on a grid of expiries and
standardised strikes. Its smile is SSVI (Gatheral & Jacquier 2014, power-law ``phi``),
arbitrage-free for ``eta (1 + |rho|) <= 2``, with the at-the-money level set by the world's
volatility, plus quote noise. Observed implied vols come from inverting those prices with
:func:`~liqnet.protocols.options.pricing.implied_volatility`.

Two surfaces are fitted to the same observations, both exposing a vectorised
``implied_vol(strike, expiry)``:

- :class:`SVISurface`: one raw-SVI slice per expiry, ``w(k) = a + b (rho (k - m) +
  sqrt((k - m)^2 + sigma^2))`` in total variance ``w = iv^2 T`` and log-moneyness ``k =
  log(K / F)``; between slices total variance is interpolated linearly in ``T``.
- :class:`NeuralSurface`: a small MLP on ``(k, sqrt(T))``, deterministic per seed, on CPU.

:func:`fit_report` compares the two on held-out quotes. The forward is the spot (rate 0 by
default); surfaces are sticky in moneyness: pass the current ``spot`` when it moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from scipy.optimize import least_squares

from liqnet.protocols.options.market import (
    DEFAULT_STANDARDISED_STRIKES,
    MarketQuotes,
    SmileSpec,
    market_quotes,
    ssvi_total_variance,
)

__all__ = [
    "DEFAULT_STANDARDISED_STRIKES",
    "FitReport",
    "MarketQuotes",
    "NeuralSurface",
    "SVIParams",
    "SVISurface",
    "SmileSpec",
    "calendar_violation",
    "fit_report",
    "fit_svi_slice",
    "market_quotes",
    "ssvi_total_variance",
]

_MIN_T = 1e-6  # years; expiries below this are treated as this (total variance -> 0)


@dataclass(frozen=True)
class SVIParams:
    """Raw SVI parameters of one expiry slice (total variance in log-moneyness)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def total_variance(self, k: npt.ArrayLike) -> np.ndarray:
        """``w(k) = a + b (rho (k - m) + sqrt((k - m)^2 + sigma^2))``."""
        x = np.asarray(k, float) - self.m
        return self.a + self.b * (self.rho * x + np.sqrt(x * x + self.sigma**2))


def fit_svi_slice(k: npt.ArrayLike, w: npt.ArrayLike) -> SVIParams:
    """Least-squares raw-SVI fit of one slice's total variances ``w`` at log-moneyness ``k``.

    For fixed ``(m, sigma)`` SVI is linear in ``(a, b rho, b)``: a grid over ``(m, sigma)``
    with vectorised linear solves finds the basin, then a bounded nonlinear least-squares
    polishes all five parameters (the quasi-explicit approach of Zeliade, 2009).

    Args:
        k: Log-moneyness of the quotes (at least 5).
        w: Their total implied variance.

    Returns:
        Fitted parameters with ``b >= 0``, ``|rho| < 1`` and non-negative minimum variance.

    Raises:
        ValueError: fewer than 5 points, or non-finite input.
    """
    k, w = np.asarray(k, float).ravel(), np.asarray(w, float).ravel()
    if k.size < 5 or k.size != w.size or not (np.isfinite(k).all() and np.isfinite(w).all()):
        raise ValueError(f"fit_svi_slice needs >= 5 finite (k, w) pairs; got {k.size}")
    span = max(float(np.ptp(k)), 1e-3)
    M, S = np.meshgrid(np.linspace(k.min(), k.max(), 21), np.geomspace(1e-3, 2.0, 21) * span)
    x = k[None, :] - M.reshape(-1, 1)
    r = np.sqrt(x * x + S.reshape(-1, 1) ** 2)
    X = np.stack((np.ones_like(x), x, r), axis=-1)
    normal = np.einsum("gni,gnj->gij", X, X) + 1e-14 * np.eye(3)
    coef = np.linalg.solve(normal, np.einsum("gni,n->gi", X, w)[..., None])[..., 0]
    sse = ((np.einsum("gni,gi->gn", X, coef) - w) ** 2).sum(axis=1)
    sse[~((coef[:, 2] > 0) & (np.abs(coef[:, 1]) < coef[:, 2]))] = np.inf  # b > 0, |rho| < 1
    g = int(np.argmin(sse))
    if np.isfinite(sse[g]):
        a, c1, b = coef[g]
        x0 = [a, b, c1 / b, M.flat[g], S.flat[g]]
    else:  # no valid grid point: start from a flat smile
        x0 = [float(w.mean()), 1e-3, 0.0, float(np.median(k)), 0.1 * span]
    lower = [-np.inf, 0.0, -0.999, k.min() - span, 1e-5]
    upper = [np.inf, np.inf, 0.999, k.max() + span, 10.0 * span]
    x0 = np.clip(x0, np.nextafter(lower, 1.0), np.nextafter(upper, -1.0))
    scale = max(float(np.abs(w).mean()), 1e-12)  # relative residuals: tolerances scale-free

    def residuals(p: np.ndarray) -> np.ndarray:
        return (SVIParams(*p).total_variance(k) - w) / scale

    fit = least_squares(residuals, x0, bounds=(lower, upper), xtol=1e-12, ftol=1e-12, gtol=1e-12)
    a, b, rho, m, sigma = (float(v) for v in fit.x)
    # Minimum variance a + b sigma sqrt(1 - rho^2) must be >= 0 (no negative variance).
    a = max(a, -b * sigma * np.sqrt(1.0 - rho * rho))
    return SVIParams(a, b, rho, m, sigma)


def _moneyness(strike: npt.ArrayLike, expiry: npt.ArrayLike, spot: float, rate: float):
    """Broadcast ``(k, T)`` arrays for queries, ``T`` floored at ``_MIN_T``."""
    K, T = np.broadcast_arrays(np.asarray(strike, float), np.asarray(expiry, float))
    T = np.maximum(T, _MIN_T)
    return np.log(K / spot) - rate * T, T


class SVISurface:
    """Raw SVI slices per expiry, calendar-arbitrage-free by construction.

    Total variance across slices is made non-decreasing in expiry at every queried ``k``
    (a running maximum over slices), then interpolated linearly in ``T``; before the
    first and after the last slice the slice's volatility is held constant.

    Args:
        expiries: Slice expiries in years, increasing.
        slices: One :class:`SVIParams` per expiry.
        spot: Spot at fit time (the default for queries).
        rate: Rate for the forward.
    """

    def __init__(
        self, expiries: npt.ArrayLike, slices: list[SVIParams], spot: float, rate: float = 0.0
    ) -> None:
        self.expiries = np.asarray(expiries, float)
        if self.expiries.size != len(slices) or np.any(np.diff(self.expiries) <= 0):
            raise ValueError("expiries must be increasing, one per SVI slice")
        self.slices = list(slices)
        self.spot, self.rate = float(spot), float(rate)

    @classmethod
    def fit(cls, quotes: MarketQuotes) -> SVISurface:
        """Fit one SVI slice per distinct expiry of ``quotes``."""
        expiries = np.unique(quotes.expiry_years)
        k, w = quotes.log_moneyness, quotes.total_variance
        slices = []
        for t in expiries:
            at = quotes.expiry_years == t
            slices.append(fit_svi_slice(k[at], w[at]))
        return cls(expiries, slices, quotes.spot, quotes.rate)

    def slice_variances(self, k: npt.ArrayLike) -> np.ndarray:
        """Raw (unrepaired) total variance of every slice at ``k``: ``(n_slices, *k.shape)``."""
        return np.stack([s.total_variance(k) for s in self.slices])

    def total_variance(self, k: npt.ArrayLike, expiry: npt.ArrayLike) -> np.ndarray:
        """Total implied variance at log-moneyness ``k`` and expiry (years), vectorised."""
        k, tau = np.broadcast_arrays(np.asarray(k, float), np.asarray(expiry, float))
        W = np.maximum.accumulate(np.maximum(self.slice_variances(k), 0.0), axis=0)
        ts = self.expiries
        hi = np.clip(np.searchsorted(ts, tau), 1, max(ts.size - 1, 1)) if ts.size > 1 else 0 * k
        hi = hi.astype(int)
        lo = np.maximum(hi - 1, 0)
        w_lo = np.take_along_axis(W, lo[None], axis=0)[0]
        w_hi = np.take_along_axis(W, hi[None], axis=0)[0]
        span = ts[hi] - ts[lo]
        frac = np.where(span > 0, (tau - ts[lo]) / np.where(span > 0, span, 1.0), 0.0)
        inside = w_lo + frac * (w_hi - w_lo)
        # Constant volatility before the first and after the last quoted expiry.
        before, after = W[0] * tau / ts[0], W[-1] * tau / ts[-1]
        return np.where(tau <= ts[0], before, np.where(tau >= ts[-1], after, inside))

    def implied_vol(
        self, strike: npt.ArrayLike, expiry: npt.ArrayLike, spot: float | None = None
    ) -> np.ndarray:
        """Implied volatility at ``strike`` and ``expiry`` (years); ``spot`` defaults to fit's."""
        k, T = _moneyness(strike, expiry, self.spot if spot is None else spot, self.rate)
        return np.sqrt(np.maximum(self.total_variance(k, T), 0.0) / T)


class NeuralSurface:
    """A small MLP ``(z, sqrt(T)) -> implied vol``, fitted on CPU, deterministic per seed.

    ``z = k / (iv_ref sqrt(T))`` is log-moneyness in standard deviations, in which smiles of
    all expiries look alike; the network predicts ``log(iv / iv_ref)``, so vols are positive
    and the fit does not depend on the vol level.

    Args:
        net: The trained network (float64).
        center: Input means ``(z, sqrt(T))``.
        scale: Input standard deviations.
        iv_ref: Reference vol (geometric mean of the training vols).
        spot: Spot at fit time.
        rate: Rate for the forward.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        center: np.ndarray,
        scale: np.ndarray,
        iv_ref: float,
        spot: float,
        rate: float = 0.0,
    ) -> None:
        self.net, self.center, self.scale = net, center, scale
        self.iv_ref, self.spot, self.rate = float(iv_ref), float(spot), float(rate)

    def _inputs(self, k: np.ndarray, T: np.ndarray) -> torch.Tensor:
        sqrt_t = np.sqrt(T).ravel()
        x = np.stack((k.ravel() / (self.iv_ref * sqrt_t), sqrt_t), axis=1)
        return torch.from_numpy((x - self.center) / self.scale)

    @classmethod
    def fit(
        cls, quotes: MarketQuotes, seed: int = 0, hidden: int = 32, max_iter: int = 500
    ) -> NeuralSurface:
        """Train on ``quotes`` (mean squared vol error) with full-batch L-BFGS."""
        iv_ref = float(np.exp(np.log(quotes.implied_vol).mean()))
        z = quotes.log_moneyness / (iv_ref * np.sqrt(quotes.expiry_years))
        x = np.stack((z, np.sqrt(quotes.expiry_years)), axis=1)
        center, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-9)
        with torch.random.fork_rng(devices=[]):  # seed locally, leave the global RNG alone
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Linear(2, hidden),
                torch.nn.Tanh(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.Tanh(),
                torch.nn.Linear(hidden, 1),
            ).double()
        surface = cls(net, center, scale, iv_ref, quotes.spot, quotes.rate)
        inputs = surface._inputs(quotes.log_moneyness, quotes.expiry_years)
        target = torch.from_numpy(quotes.implied_vol / iv_ref)
        optimiser = torch.optim.LBFGS(
            net.parameters(),
            max_iter=max_iter,
            history_size=50,
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimiser.zero_grad()
            loss = torch.mean((torch.exp(net(inputs)[:, 0]) - target) ** 2)
            loss.backward()
            return loss

        # Tiny tensors: thread hand-offs cost ~25x the arithmetic, so train on one thread
        # (and give the setting back afterwards).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            optimiser.step(closure)
        finally:
            torch.set_num_threads(threads)
        net.eval()
        return surface

    def implied_vol(
        self, strike: npt.ArrayLike, expiry: npt.ArrayLike, spot: float | None = None
    ) -> np.ndarray:
        """Implied volatility at ``strike`` and ``expiry`` (years); ``spot`` defaults to fit's."""
        k, T = _moneyness(strike, expiry, self.spot if spot is None else spot, self.rate)
        with torch.no_grad():
            out = torch.exp(self.net(self._inputs(k, T))[:, 0]).numpy()
        return self.iv_ref * out.reshape(k.shape)


def calendar_violation(
    surface: SVISurface | NeuralSurface, log_moneyness: npt.ArrayLike, expiries: npt.ArrayLike
) -> float:
    """Largest fall of total variance from one expiry to the next on a ``k x T`` grid (0 = none)."""
    T = np.sort(np.asarray(expiries, float))
    k = np.asarray(log_moneyness, float)
    kk, TT = np.meshgrid(k, T)
    strike = surface.spot * np.exp(kk + surface.rate * TT)
    w = surface.implied_vol(strike, TT) ** 2 * TT
    return float(max(0.0, -np.diff(w, axis=0).min())) if T.size > 1 else 0.0


@dataclass(frozen=True)
class FitReport:
    """Held-out fit errors of the SVI and neural surfaces, in volatility points (1.0 = 100%)."""

    svi_rmse: float
    neural_rmse: float
    svi_max_error: float
    neural_max_error: float
    n_train: int
    n_test: int
    svi_seconds: float
    neural_seconds: float


def fit_report(
    quotes: MarketQuotes, holdout: float = 0.25, seed: int = 0, **neural: int
) -> FitReport:
    """Fit both surfaces on part of ``quotes`` and measure them on the interior rest.

    The outermost strike of each side of every slice stays in training, so held-out points
    test interpolation, not extrapolation.

    Args:
        quotes: All observed quotes.
        holdout: Share of interior quotes held out, in (0, 0.5].
        seed: Seed of the split and of the network.
        **neural: Extra arguments of :meth:`NeuralSurface.fit` (``hidden``, ``max_iter``).

    Returns:
        The :class:`FitReport`.
    """
    if not 0.0 < holdout <= 0.5:
        raise ValueError(f"holdout must be in (0, 0.5]; got {holdout!r}")
    rng = np.random.default_rng(seed)
    test = np.zeros(quotes.strike.size, dtype=bool)
    for t in np.unique(quotes.expiry_years):
        idx = np.flatnonzero(quotes.expiry_years == t)
        interior = idx[np.argsort(quotes.strike[idx])][1:-1]
        test[rng.choice(interior, round(holdout * idx.size), replace=False)] = True
    train, held = quotes.subset(~test), quotes.subset(test)
    start = time.perf_counter()
    svi = SVISurface.fit(train)
    middle = time.perf_counter()
    net = NeuralSurface.fit(train, seed=seed, **neural)
    end = time.perf_counter()
    errors = [s.implied_vol(held.strike, held.expiry_years) - held.implied_vol for s in (svi, net)]
    return FitReport(
        svi_rmse=float(np.sqrt(np.mean(errors[0] ** 2))),
        neural_rmse=float(np.sqrt(np.mean(errors[1] ** 2))),
        svi_max_error=float(np.abs(errors[0]).max()),
        neural_max_error=float(np.abs(errors[1]).max()),
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
        svi_seconds=middle - start,
        neural_seconds=end - middle,
    )
