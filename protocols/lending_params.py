"""Parameters of the lending pool (pydantic models validated from scenario files)."""

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
from liqnet.protocols.distributions import AnyDistribution, Distribution, Lognormal, check_range


class CollateralParams(ProtocolParams):
    """Risk parameters of one collateral asset (defaults: Aave v3 WETH, governance)."""

    # At least 1%: positions are sized as debt / ltv (a frozen asset's ltv of 0 is not
    # collateral one can borrow against, so it is left out instead).
    ltv: float = Field(0.80, ge=0.01, lt=1.0, description="maximum loan-to-value at opening")
    liquidation_threshold: float = Field(0.83, gt=0.0, lt=1.0)
    liquidation_bonus: float = Field(0.05, ge=0.0, le=0.25)
    # Aave v3 Ethereum WETH and WBTC: liquidation protocol fee 10% of the bonus (Gauntlet's
    # Aave V3 Ethereum deployment configuration, governance.aave.com/t/10238, "LPF 0.10").
    liquidation_protocol_fee: float = Field(
        0.10, ge=0.0, le=1.0, description="share of the liquidation bonus kept as revenue"
    )
    share: float = Field(
        1.0, ge=1e-6, le=MAX_MULTIPLIER, description="share of borrowed USD against this asset"
    )

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> CollateralParams:
        if self.ltv >= self.liquidation_threshold:
            raise ValueError("ltv must be below liquidation_threshold")
        if self.liquidation_threshold * (1.0 + self.liquidation_bonus) >= 1.0:
            raise ValueError("liquidation_threshold * (1 + liquidation_bonus) must be < 1")
        return self


class RateModelParams(ProtocolParams):
    """Kinked USD borrow-rate curve (defaults: Compound v3 cUSDCv3 configuration.json)."""

    base: float = Field(0.015, ge=0.0, le=1.0)
    slope1: float = Field(0.035, ge=0.0, le=5.0)
    slope2: float = Field(0.25, ge=0.0, le=50.0)
    optimal_utilization: float = Field(0.80, ge=0.01, lt=1.0)


class LendingParams(ProtocolParams):
    """Parameters of a :class:`LendingPool` (scenario table ``protocols.params``)."""

    deposits_usd: float = Field(200e6, ge=MIN_USD, le=MAX_USD, description="initial USD deposits")
    utilization: float = Field(0.70, ge=0.0, lt=1.0, description="initial borrowed / deposits")
    reserves_usd: float = Field(6e6, ge=0.0, le=MAX_USD, description="initial reserves (equity)")
    positions: int = Field(10_000, ge=1, le=MAX_POSITIONS)
    collateral: dict[str, CollateralParams] = Field(
        default_factory=lambda: {"ETH": CollateralParams()}, min_length=1
    )
    rate_model: RateModelParams = Field(default_factory=RateModelParams)
    reserve_factor: float = Field(0.15, ge=0.0, lt=1.0)  # Aave v3 WETH
    # Aave v3.3 LiquidationLogic.sol is the default: it is the version Aave's markets run
    # (v3.3 and later keep these rules); "v3.0" is aave-v3-core's plain 50% / 100% rule.
    # See liqnet.protocols.lending_liquidation for both.
    close_factor_rule: Literal["v3.3", "v3.0"] = Field(
        "v3.3", description="which Aave v3 version's close-factor rules apply"
    )
    close_factor: float = Field(0.5, gt=0.0, le=1.0)  # DEFAULT_LIQUIDATION_CLOSE_FACTOR
    full_close_health_factor: float = Field(0.95, gt=0.0, le=1.0)  # CLOSE_FACTOR_HF_THRESHOLD
    small_position_usd: float = Field(  # MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD (v3.3 only)
        2_000.0, ge=0.0, le=MAX_USD, description="debt or collateral below this closes in full"
    )
    min_leftover_usd: float = Field(  # MIN_LEFTOVER_BASE (v3.3 only)
        1_000.0, ge=0.0, le=MAX_USD, description="least debt and collateral a partial leaves"
    )
    health_factor_median: float = Field(1.6, gt=1.0, le=10.0)
    health_factor_dispersion: float = Field(0.6, gt=0.0, le=3.0)
    # A book fitted to data: quantiles or a histogram of health factors (or a lognormal
    # table). When given, health_factor_median and _dispersion are unused, so that an
    # override can replace a base scenario's lognormal.
    health_factor_distribution: Distribution | None = Field(
        None,
        description="opening health factors, >= 1 (raised to LT / LTV: none opens above max LTV)",
    )
    position_size_dispersion: float = Field(1.2, ge=0.0, le=4.0)
    position_turnover_per_day: float = Field(0.01, ge=0.0, le=1.0)
    churn_interval_hours: float = Field(
        4.0, ge=1.0 / 60.0, le=168.0, description="positions open/close in batches this often"
    )
    deposit_turnover_per_day: float = Field(0.02, ge=0.0, le=1.0)
    run_sensitivity: float = Field(
        3.0, ge=0.0, le=100.0, description="extra daily withdrawal share per unit of risk"
    )
    risk_memory_days: float = Field(0.5, gt=0.0, le=30.0)
    liquidity_buffer: float = Field(0.05, ge=0.0, le=1.0)
    risk_step: float = Field(0.005, ge=0.0, le=0.1, description="max LT change per step")
    price_step: float = Field(0.05, ge=0.0, le=1.0, description="max slope multiplier move")
    liquidation_threshold_bounds: tuple[float, float] = (0.5, 0.9)
    slope_multiplier_bounds: tuple[float, float] = (0.5, 3.0)

    @pydantic.field_validator("health_factor_distribution")
    @classmethod
    def _opening_health(cls, dist: AnyDistribution | None) -> AnyDistribution | None:
        if dist is not None:
            why = "opening health factors: a position below 1 would open liquidatable"
            check_range(dist, 1.0, MAX_MULTIPLIER, 1.0, why)
        return dist

    def health_factors(self) -> AnyDistribution:
        """The opening health factors' distribution (of which HF - 1 is lognormal)."""
        if self.health_factor_distribution is not None:
            return self.health_factor_distribution
        return Lognormal(median=self.health_factor_median, dispersion=self.health_factor_dispersion)

    @pydantic.model_validator(mode="after")
    def _lever_bounds(self) -> LendingParams:
        # Levers move a parameter by bounded steps inside its bounds; bounds that are
        # inverted or miss the starting value would snap it in one step.
        check_bounds(
            "liquidation_threshold_bounds",
            self.liquidation_threshold_bounds,
            (0.01, 0.999),
            {
                f"collateral.{a}.liquidation_threshold": c.liquidation_threshold
                for a, c in self.collateral.items()
            },
        )
        check_bounds(
            "slope_multiplier_bounds",
            self.slope_multiplier_bounds,
            (0.0, MAX_MULTIPLIER),
            {"the starting slope multiplier": 1.0},
        )
        return self

    def referenced_assets(self) -> list[str]:
        """The collateral assets."""
        return list(self.collateral)
