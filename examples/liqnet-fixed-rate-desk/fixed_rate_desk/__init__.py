"""A fixed-rate lending desk: an example liqnet protocol plugin.

Depositors lend the desk USD at a fixed deposit rate; the desk lends to borrowers at a
fixed loan rate (one aggregate, fully collateralised loan book: nothing to liquidate).
Borrowers pay interest in cash every step; the spread is the desk's income. Every flow
goes through ``self.world.transfer``, and the world checks that nothing else moved money.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from liqnet.core.schema import MAX_USD, MIN_USD
from liqnet.protocols.base import (
    LiquidationOffer,
    LiquidationOutcome,
    Protocol,
    ProtocolParams,
    bounded_step,
)
from liqnet.protocols.flows import run_flows

__all__ = ["FixedRateDesk", "FixedRateDeskParams"]


class FixedRateDeskParams(ProtocolParams):
    """Parameters of a :class:`FixedRateDesk` (scenario table ``protocols.params``)."""

    # USD amounts within the built-ins' physical bounds (liqnet.core.schema: $1 to $1e13),
    # so no scenario file can put 1e308 into the world (the plugin kit checks them).
    deposits_usd: float = Field(20e6, ge=MIN_USD, le=MAX_USD, description="initial USD deposits")
    capital_usd: float = Field(1e6, ge=0.0, le=MAX_USD, description="owners' equity")
    loans_usd: float = Field(12e6, ge=0.0, le=MAX_USD, description="initial loans outstanding")
    loan_rate: float = Field(0.08, ge=0.0, le=1.0, description="annual rate borrowers pay")
    deposit_rate: float = Field(0.04, ge=0.0, le=1.0, description="annual rate paid")
    max_utilization: float = Field(0.9, gt=0.0, lt=1.0, description="loans / deposits cap")
    loan_turnover_per_day: float = Field(0.02, ge=0.0, le=1.0)
    deposit_turnover_per_day: float = Field(0.02, ge=0.0, le=1.0)
    run_sensitivity: float = Field(3.0, ge=0.0, le=100.0)
    risk_memory_days: float = Field(0.5, gt=0.0, le=30.0)
    rate_step: float = Field(0.002, ge=0.0, le=0.1, description="max loan-rate move per step")


class FixedRateDesk(Protocol[FixedRateDeskParams]):
    """Fixed-rate deposits and loans; the ``price`` lever moves the loan rate."""

    type_name = "fixed_rate_desk"
    Params = FixedRateDeskParams

    def __init__(self, model, protocol_id: str, params: FixedRateDeskParams) -> None:
        super().__init__(model, protocol_id, params)
        self.deposits = params.deposits_usd
        self.loans = min(params.loans_usd, params.max_utilization * params.deposits_usd)
        self.loan_rate = params.loan_rate
        self.world.transfer("depositors", self, usd=params.deposits_usd)
        self.world.transfer("owners", self, usd=params.capital_usd)
        self.world.transfer(self, "borrowers", usd=self.loans)

    # -- balance sheet -----------------------------------------------------------------
    def own_equity(self) -> float:
        """Cash + loans - deposits."""
        return self.cash + self.loans - self.deposits

    def total_assets(self) -> float:
        """Cash plus loans."""
        return self.cash + self.loans

    def held_units(self) -> dict[str, float]:
        """The desk lends USD only: it holds no asset units."""
        return {}

    def idle_liquidity(self) -> float:
        """Cash above a 10% buffer of deposits."""
        return max(0.0, self.cash - 0.1 * self.deposits)

    # -- behaviour ---------------------------------------------------------------------
    def apply_levers(self, levers: np.ndarray) -> None:
        """``price`` moves the loan rate by at most ``rate_step`` a step (0 to 100%)."""
        self.loan_rate = bounded_step(self.loan_rate, levers[1], self.params.rate_step, 0.0, 1.0)

    def accrue(self, dt_years: float) -> None:
        """Borrowers pay interest in cash; deposits grow at the deposit rate."""
        interest = self.loans * self.loan_rate * dt_years
        self.world.transfer("borrowers", self, usd=interest)
        accrued = self.deposits * self.params.deposit_rate * dt_years
        self.deposits += accrued
        self.revenue += interest - accrued

    def act_users(self, dt_years: float, rng: np.random.Generator) -> None:
        """Loans repay and renew (fewer when the rate is high); depositors come and go."""
        p, days = self.params, dt_years * 365.0
        repaid = self.loans * min(1.0, p.loan_turnover_per_day * days)
        self.world.transfer("borrowers", self, usd=repaid)
        self.loans -= repaid
        demand = repaid * rng.lognormal(0.0, 0.2) * np.exp(-10.0 * (self.loan_rate - p.loan_rate))
        room = max(0.0, p.max_utilization * self.deposits - self.loans)
        lent = min(demand, room, self.idle_liquidity())
        self.world.transfer(self, "borrowers", usd=lent)
        self.loans += lent
        equity = self.equity()
        signal = min(1.0, max(0.0, -equity) / max(self.deposits, 1.0) * 20.0)
        inflow, paid = run_flows(
            self,
            "depositors",
            self.deposits,
            signal,
            days,
            p.deposit_turnover_per_day,
            p.run_sensitivity,
            p.risk_memory_days,
            lambda: max(0.0, self.cash),
        )
        self.deposits += inflow - paid

    # -- liquidations: loans are fully collateralised off-chain, nothing to liquidate ----
    def liquidation_candidates(self) -> list[LiquidationOffer]:
        """None."""
        return []

    def execute_liquidations(
        self, offer: LiquidationOffer, accepted: np.ndarray
    ) -> LiquidationOutcome:
        """Never called: the desk offers nothing."""
        raise RuntimeError("a fixed-rate desk offers no liquidations")

    # -- observation -------------------------------------------------------------------
    def feature_values(self) -> dict[str, float]:
        """Balance-sheet ratios and the loan rate."""
        assets = max(self.total_assets(), 1.0)
        return {
            "equity_to_assets": self.equity() / assets,
            "cash_to_assets": self.cash / assets,
            "utilization": self.loans / max(self.deposits, 1.0),
            "liquidity_shortfall": self.liquidity_shortfall / assets,
            "price_parameter": self.loan_rate,
            "credit_lent_to_assets": self.credit_lent / assets,
            "credit_borrowed_to_assets": self.credit_borrowed / assets,
        }
