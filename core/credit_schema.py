"""Scenario models of inter-protocol credit: how orders are made, cleared and limited.

``[negotiation]`` in a scenario. The treasury rule, the rounds of quotes and the limits
are described in ``docs/architecture.md`` ("Negotiation"); the code is
``liqnet.market.treasury`` and ``liqnet.market.settlement``.
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import Field

from liqnet.core.schema_base import StrictModel


class CreditLimitSpec(StrictModel):
    """How much unsecured credit a lender gives one borrower, from what it observes of it.

    A lender's limit on borrower ``j`` is ``max_exposure_to_equity`` x its own equity,
    scaled by ``j``'s health: its equity ratio against ``healthy_equity_ratio`` (full
    limit at or above it, none at or below 0) and its recent losses (the limit falls
    linearly to 0 as ``j``'s equity drawdown over the negotiation horizon reaches
    ``loss_cutoff``). What it already lends ``j`` unsecured counts against the limit.
    """

    max_exposure_to_equity: float = Field(
        0.25,
        gt=0.0,
        le=10.0,
        description="claims on one borrower / own equity (Basel large-exposure limit: 0.25)",
    )
    healthy_equity_ratio: float = Field(
        0.02, gt=0.0, le=1.0, description="borrower equity / assets that earns the full limit"
    )
    loss_cutoff: float = Field(
        0.5, gt=0.0, le=1.0, description="borrower equity drawdown at which the limit is 0"
    )


class NegotiationSpec(StrictModel):
    """How liquidity orders are made and cleared, and what the resulting credit lines look like.

    Orders come from the treasury rule, moved by each protocol's ``lend``/``borrow``
    levers (0 = the rule itself, -1 = no order, +1 = the most the lever allows) and rate
    levers (+-1 = the rule's rate +- half the ``min_rate``..``max_rate`` span).
    """

    enabled: bool = Field(True, description="false: no orders, no credit lines (an ablation)")
    mechanism: str = "call_auction"
    params: dict[str, Any] = Field(default_factory=dict)
    maturity_steps: int = Field(24, ge=1, le=1_000_000)
    min_rate: float = Field(0.0, ge=0.0, le=5.0, description="lowest annual rate quoted")
    max_rate: float = Field(0.5, gt=0.0, le=5.0, description="highest annual rate quoted")
    horizon_hours: float = Field(
        24.0, gt=0.0, le=24.0 * 90, description="how far ahead needs and outflows are projected"
    )
    lender_spread: float = Field(
        0.02, ge=0.0, le=1.0, description="lender's margin over its own funding rate"
    )
    distress_premium: float = Field(
        0.25, ge=0.0, le=5.0, description="most a borrower adds to pay for an urgent need"
    )
    rounds: int = Field(3, ge=1, le=20, description="rounds of quotes within one step")
    secured_haircut: float = Field(
        0.25,
        ge=0.0,
        lt=1.0,
        description="credit beyond the unsecured limit is lent against assets worth "
        "amount / (1 - haircut); 0 disables secured lending",
    )
    limits: CreditLimitSpec = Field(default_factory=CreditLimitSpec)

    @pydantic.model_validator(mode="after")
    def _check(self) -> NegotiationSpec:
        if self.min_rate >= self.max_rate:
            raise ValueError(f"min_rate ({self.min_rate}) must be below max_rate ({self.max_rate})")
        return self
