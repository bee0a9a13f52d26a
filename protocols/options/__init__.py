"""Options protocol: Black-Scholes pricing, Greeks, implied volatility and stress margin."""

from liqnet.protocols.options.pricing import (
    OptionGreeks,
    black_scholes,
    black_scholes_torch,
    implied_volatility,
)
from liqnet.protocols.options.stress import (
    DEFAULT_PRICE_MOVES,
    DEFAULT_VOL_MOVES,
    ApproximationReport,
    StressGrid,
    StressResult,
    greeks_approximation_error,
    portfolio_stress_loss,
    stress_grid,
)

__all__ = [
    "DEFAULT_PRICE_MOVES",
    "DEFAULT_VOL_MOVES",
    "ApproximationReport",
    "OptionGreeks",
    "StressGrid",
    "StressResult",
    "black_scholes",
    "black_scholes_torch",
    "greeks_approximation_error",
    "implied_volatility",
    "portfolio_stress_loss",
    "stress_grid",
]
