"""Aave v3 liquidation arithmetic of the lending pool: close factor, bonus, protocol fee.

Two versions of Aave v3's close-factor rules are modelled (``close_factor_rule``):

- ``"v3.0"`` (aave-v3-core ``LiquidationLogic._calculateDebt``): 50% of the debt
  (``DEFAULT_LIQUIDATION_CLOSE_FACTOR``), 100% when the health factor is at or below
  ``CLOSE_FACTOR_HF_THRESHOLD`` = 0.95. Nothing else.
- ``"v3.3"`` (aave-v3-origin ``LiquidationLogic.executeLiquidationCall``, deployed on
  Aave's Ethereum market since v3.3): 50% only when the health factor is above 0.95 *and*
  both the position's collateral and its debt are worth at least
  ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD`` = $2,000, else 100%; and a liquidation that
  neither repays all the debt nor takes all the collateral must leave at least
  ``MIN_LEFTOVER_BASE`` = $1,000 of debt and of collateral (``MUST_NOT_LEAVE_DUST``).

Both versions take the liquidation protocol fee the same way
(``_calculateAvailableCollateralToLiquidate``): of the collateral seized,
``seized - seized / (1 + bonus)`` is the bonus; ``liquidationProtocolFee`` of the bonus
goes to the treasury and the liquidator receives the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from liqnet.protocols.lending_params import LendingParams


class LiquidationTerms(NamedTuple):
    """Per position: the largest liquidation allowed and its split.

    Attributes:
        repay_usd: Debt the liquidator repays.
        seize_units: Collateral the borrower loses (liquidator's part plus the fee).
        liquidator_units: Collateral the liquidator receives.
        fee_units: Collateral the protocol keeps (liquidation protocol fee).
        partial_cap: Largest share of the liquidation that may be taken short of all of
            it (the v3.3 dust rule; 1 under v3.0).
    """

    repay_usd: np.ndarray
    seize_units: np.ndarray
    liquidator_units: np.ndarray
    fee_units: np.ndarray
    partial_cap: np.ndarray


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 1 where the denominator is not positive."""
    return np.divide(numerator, denominator, out=np.ones(numerator.shape), where=denominator > 0)


def liquidation_terms(
    params: LendingParams,
    collateral: np.ndarray,
    debt: np.ndarray,
    price: float,
    liquidation_threshold: float,
    bonus: float,
    protocol_fee: float,
) -> LiquidationTerms:
    """The largest liquidation of each position under ``params.close_factor_rule``."""
    value = collateral * price
    health = np.divide(
        value * liquidation_threshold, debt, out=np.full(value.shape, np.inf), where=debt > 0
    )
    full = health <= params.full_close_health_factor
    v33 = params.close_factor_rule == "v3.3"
    if v33:
        # Aave v3.3: the close factor stays at 50% only if collateral and debt are both at
        # least MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD ($2,000).
        small = params.small_position_usd
        full |= (value < small) | (debt < small)
    repay = np.where(full, 1.0, params.close_factor) * debt
    seize = repay * (1.0 + bonus) / price
    # Seizure is capped by the collateral; the repayment then shrinks to match.
    capped = seize > collateral
    seize = np.where(capped, collateral, seize)
    repay = np.where(capped, collateral * price / (1.0 + bonus), repay)
    # liquidationProtocolFee x the bonus part of the seized collateral, to the treasury.
    fee = seize * (bonus / (1.0 + bonus)) * protocol_fee
    net = seize - fee
    if not v33:
        return LiquidationTerms(repay, seize, net, fee, np.ones(repay.shape))
    # MUST_NOT_LEAVE_DUST: short of repaying all the debt (full close factor, uncapped) or
    # taking all the collateral (capped), a liquidation must leave MIN_LEFTOVER_BASE of
    # debt and of collateral. Aave counts the collateral left as the balance minus the
    # liquidator's part (not the fee); so does this.
    leftover = params.min_leftover_usd
    cap = np.clip(
        np.minimum(_ratio(debt - leftover, repay), _ratio(value - leftover, net * price)),
        0.0,
        1.0,
    )
    # The largest liquidation short of a full close must itself leave no dust (Aave
    # reverts it): it shrinks to the largest one that does.
    shrink = ~(full | capped) & (cap < 1.0)
    scale = np.where(shrink, cap, 1.0)
    cap = np.where(shrink, 1.0, cap)
    return LiquidationTerms(repay * scale, seize * scale, net * scale, fee * scale, cap)
