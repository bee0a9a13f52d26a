"""A simulated option market: smile specification and quotes to fit surfaces to.

Prices come from the world's volatility plus a put skew and quote noise (an SSVI-style
total-variance smile); implied vols are recovered with
:func:`~liqnet.protocols.options.pricing.implied_volatility`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liqnet.protocols.options.pricing import black_scholes, implied_volatility

#: Quoted strikes in standard deviations of log-moneyness: -2.5 ... +2.0 in steps of 0.25.
DEFAULT_STANDARDISED_STRIKES: tuple[float, ...] = tuple(0.25 * i for i in range(-10, 9))
_MIN_T = 1e-6  # years; expiries below this are treated as this (total variance -> 0)


@dataclass(frozen=True)
class SmileSpec:
    """The simulated market's smile: SSVI skew/curvature and quote noise.

    Attributes:
        rho: Skew correlation (negative: puts richer, as in crypto after crashes).
        eta: Curvature level of the power-law ``phi(theta)``.
        gamma: Decay of curvature with total variance, in (0, 1).
        noise_vol: Standard deviation of quote noise, in volatility points (bid/ask scatter).
    """

    rho: float = -0.4
    eta: float = 1.0
    gamma: float = 0.4
    noise_vol: float = 0.003


def ssvi_total_variance(k: npt.ArrayLike, theta: npt.ArrayLike, smile: SmileSpec) -> np.ndarray:
    """SSVI total variance at log-moneyness ``k`` for ATM total variance ``theta``."""
    k, theta = np.asarray(k, float), np.asarray(theta, float)
    phi = smile.eta / (theta**smile.gamma * (1.0 + theta) ** (1.0 - smile.gamma))
    rho = smile.rho
    return 0.5 * theta * (1.0 + rho * phi * k + np.sqrt((phi * k + rho) ** 2 + 1.0 - rho**2))


@dataclass(frozen=True)
class MarketQuotes:
    """Observed option quotes, one entry per option.

    Attributes:
        spot: Underlying price when quoted.
        rate: Continuously compounded rate used for the forward.
        strike: Strikes.
        expiry_years: Times to expiry in years.
        is_call: True for calls (quotes are out of the money: calls above the forward).
        price: Quoted prices.
        implied_vol: Implied vols recovered from ``price``.
    """

    spot: float
    rate: float
    strike: np.ndarray
    expiry_years: np.ndarray
    is_call: np.ndarray
    price: np.ndarray
    implied_vol: np.ndarray

    @property
    def log_moneyness(self) -> np.ndarray:
        """``log(K / F)`` with ``F = spot * exp(rate * T)``."""
        return np.log(self.strike / self.spot) - self.rate * self.expiry_years

    @property
    def total_variance(self) -> np.ndarray:
        """``implied_vol**2 * T``."""
        return self.implied_vol**2 * self.expiry_years

    def subset(self, mask: np.ndarray) -> MarketQuotes:
        """The quotes selected by a boolean or index array."""
        return MarketQuotes(
            spot=self.spot,
            rate=self.rate,
            strike=self.strike[mask],
            expiry_years=self.expiry_years[mask],
            is_call=self.is_call[mask],
            price=self.price[mask],
            implied_vol=self.implied_vol[mask],
        )


def market_quotes(
    spot: float,
    atm_vol: float,
    expiries_years: npt.ArrayLike,
    rng: np.random.Generator,
    smile: SmileSpec | None = None,
    standardised_strikes: npt.ArrayLike = DEFAULT_STANDARDISED_STRIKES,
    rate: float = 0.0,
) -> MarketQuotes:
    """Quotes of the simulated option market, as prices turned into implied vols.

    Strikes sit at ``k = z * atm_vol * sqrt(T)`` for each standardised strike ``z`` (quotes
    cover a similar delta range at every expiry, as listed markets do).

    Args:
        spot: Underlying price, > 0.
        atm_vol: At-the-money volatility of the market (e.g. the world's regime vol).
        expiries_years: Expiries quoted, in years, > 0.
        rng: Source of quote noise.
        smile: Smile shape and noise; :class:`SmileSpec` defaults when None.
        standardised_strikes: Strikes in standard deviations of log-moneyness.
        rate: Rate for the forward.

    Returns:
        The quotes, ordered by expiry then strike.
    """
    smile = SmileSpec() if smile is None else smile
    T, z = np.meshgrid(np.asarray(expiries_years, float), np.asarray(standardised_strikes, float))
    T, z = T.T.ravel(), z.T.ravel()
    k = z * atm_vol * np.sqrt(T)
    true_vol = np.sqrt(ssvi_total_variance(k, atm_vol**2 * T, smile) / T)
    noisy = np.maximum(true_vol + smile.noise_vol * rng.standard_normal(T.size), 0.05 * true_vol)
    strike = spot * np.exp(k + rate * T)
    is_call = k >= 0.0
    price = black_scholes(spot, strike, T, rate, noisy, is_call).price
    # The market publishes prices; vols are what an observer recovers from them.
    iv = implied_volatility(price, spot, strike, T, rate, is_call)
    return MarketQuotes(float(spot), float(rate), strike, T, is_call, price, iv)
