"""Parameters of the option vault (pydantic model validated from scenario files)."""

from __future__ import annotations

from typing import Literal

import pydantic
from pydantic import Field

from liqnet.core.schema import (
    MAX_MULTIPLIER,
    MAX_POSITIONS,
    MAX_USD,
    MIN_USD,
    check_bounds,
)
from liqnet.protocols.base import ProtocolParams
from liqnet.protocols.options.market import SmileSpec
from liqnet.protocols.options.stress import DEFAULT_PRICE_MOVES, DEFAULT_VOL_MOVES, stress_grid

_DAYS_PER_YEAR = 365.0
_FIELDS = ("quantity", "strike", "expiry", "kind", "premium", "margin")


class OptionVaultParams(ProtocolParams):
    """Parameters of an :class:`OptionVault` (scenario table ``protocols.params``)."""

    underlying: str = "ETH"
    capital_usd: float = Field(
        50e6, ge=MIN_USD, le=MAX_USD, description="depositors' initial capital"
    )
    positions: int = Field(2_000, ge=2, le=MAX_POSITIONS)
    notional_usd: float = Field(
        100e6, ge=MIN_USD, le=MAX_USD, description="initial |quantity| x spot, all"
    )
    put_share: float = Field(0.6, ge=0.0, le=1.0)
    writer_share: float = Field(0.2, ge=0.0, lt=1.0, description="positions written to vault")
    moneyness_width: float = Field(0.2, gt=0.0, lt=0.9, description="puts K/S in [1-w, 1]")
    strike_step: float = Field(0.025, ge=1e-3, le=0.5, description="listed strikes, x spot0")
    expiries_days: tuple[float, ...] = Field((7.0, 14.0, 28.0), min_length=1, max_length=64)
    premium_markup: float = Field(0.05, ge=0.0, le=1.0)
    premium_markup_bounds: tuple[float, float] = (0.0, 0.5)
    price_step: float = Field(0.01, ge=0.0, le=0.2, description="max markup move per step")
    margin_multiplier: float = Field(1.0, ge=1e-3, le=MAX_MULTIPLIER)
    margin_multiplier_bounds: tuple[float, float] = (0.5, 3.0)
    risk_step: float = Field(0.05, ge=0.0, le=1.0, description="max multiplier move per step")
    account_margin_median: float = Field(1.6, ge=1.0, le=20.0, description="x requirement")
    account_margin_dispersion: float = Field(0.4, ge=0.0, le=3.0)
    liquidation_penalty: float = Field(0.02, ge=0.0, le=0.2, description="x notional")
    keeper_reward_usd: float = Field(10.0, ge=0.0, le=1e6)
    max_notional_to_equity: float = Field(
        5.0, gt=0.0, le=1e3, description="cap on written notional"
    )
    turnover_per_day: float = Field(0.1, ge=0.0, le=5.0)
    demand_elasticity: float = Field(10.0, ge=0.0, le=1000.0, description="per unit markup")
    hedge_every_steps: int = Field(
        1, ge=0, le=10_000_000, description="scheduled re-hedge; 0 = none"
    )
    delta_band: float = Field(0.05, ge=0.0, le=1e3, description="|net delta| x S / equity; 0 = off")
    max_hedge_pool_share: float = Field(0.02, gt=0.0, le=0.5, description="per order")
    initial_hedge: bool = True
    deposit_turnover_per_day: float = Field(0.02, ge=0.0, le=1.0)
    run_sensitivity: float = Field(3.0, ge=0.0, le=100.0)
    liquidity_buffer_days: float = Field(
        1.0, ge=0.0, le=30.0, description="cash kept back: days of user turnover"
    )
    risk_memory_days: float = Field(0.5, gt=0.0, le=30.0)
    vol_memory_hours: float = Field(48.0, gt=0.0, le=8760.0, description="realised-vol EWMA memory")
    realised_vol_weight: float = Field(0.5, ge=0.0, le=1.0)
    max_market_vol: float = Field(5.0, gt=0.0, le=20.0)
    surface_model: Literal["svi", "neural"] = "svi"
    surface_refit_steps: int = Field(6, ge=1, le=10_000_000)
    surface_refit_vol_change: float = Field(
        0.1, gt=0.0, le=1e3, description="relative ATM vol move"
    )
    quote_expiries_days: tuple[float, ...] = Field(
        (1.0, 7.0, 14.0, 28.0, 56.0), min_length=2, max_length=64
    )
    smile: dict[str, float] = Field(default_factory=dict, description="SmileSpec fields")
    stress_price_moves: tuple[float, ...] = DEFAULT_PRICE_MOVES
    stress_vol_moves: tuple[float, ...] = DEFAULT_VOL_MOVES

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> OptionVaultParams:
        # Levers move a parameter by bounded steps inside its bounds; bounds that are
        # inverted or miss the starting value would snap it in one step.
        check_bounds(
            "premium_markup_bounds",
            self.premium_markup_bounds,
            (0.0, 10.0),
            {"premium_markup": self.premium_markup},
        )
        check_bounds(
            "margin_multiplier_bounds",
            self.margin_multiplier_bounds,
            (0.0, MAX_MULTIPLIER),
            {"margin_multiplier": self.margin_multiplier},
        )
        expiries = (*self.expiries_days, *self.quote_expiries_days)
        if min(self.expiries_days) < 1.0 or min(self.quote_expiries_days) <= 0.0:
            raise ValueError("expiries_days must be >= 1 and quote_expiries_days > 0")
        if max(expiries) > 3650.0:
            raise ValueError("expiries_days and quote_expiries_days must be <= 3650 (10 years)")
        allowed = set(SmileSpec.__dataclass_fields__)
        if set(self.smile) - allowed:
            raise ValueError(
                f"smile: unknown keys {sorted(set(self.smile) - allowed)}; "
                f"allowed: {sorted(allowed)}"
            )
        smile = SmileSpec(**self.smile)
        if smile.eta * (1.0 + abs(smile.rho)) > 2.0 or not -1.0 < smile.rho < 1.0:
            raise ValueError("smile must satisfy |rho| < 1 and eta (1 + |rho|) <= 2")
        try:
            stress_grid(self.stress_price_moves, self.stress_vol_moves)
        except ValueError as err:  # its messages name price_moves / vol_moves
            raise ValueError(f"stress_{err}") from None
        return self

    def referenced_assets(self) -> list[str]:
        """The underlying asset."""
        return [self.underlying]
