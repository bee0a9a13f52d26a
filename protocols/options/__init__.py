"""Options protocol: pricing, Greeks, implied vol, stress margin, vol surfaces, the vault."""

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
from liqnet.protocols.options.surface import (
    FitReport,
    MarketQuotes,
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
from liqnet.protocols.options.vault import OptionVault, OptionVaultParams

__all__ = [
    "DEFAULT_PRICE_MOVES",
    "DEFAULT_VOL_MOVES",
    "ApproximationReport",
    "FitReport",
    "MarketQuotes",
    "NeuralSurface",
    "OptionGreeks",
    "OptionVault",
    "OptionVaultParams",
    "SVIParams",
    "SVISurface",
    "SmileSpec",
    "StressGrid",
    "StressResult",
    "black_scholes",
    "black_scholes_torch",
    "calendar_violation",
    "fit_report",
    "fit_svi_slice",
    "greeks_approximation_error",
    "implied_volatility",
    "market_quotes",
    "portfolio_stress_loss",
    "ssvi_total_variance",
    "stress_grid",
]
