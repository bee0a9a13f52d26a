"""System-wide figures of a world: bad debt, default losses, revenue (USD).

One definition for every consumer: the run summary (:func:`liqnet.scenarios.run.summarise`),
the evaluation metrics (:func:`liqnet.scenarios.evaluate.run_metrics`) and the team reward
(:class:`liqnet.market.wrappers.SystemRewardWrapper`) all add up losses the same way:

    losses = realised bad debt + shortfall of loans still underwater
             + credit losses on lines to defaulted protocols
             + negative equity of each protocol at its default
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel


def unrealised_bad_debt(model: MarketModel) -> float:
    """Shortfall of loans still underwater: losses carried but not yet written off, USD."""
    return sum(p.unrealised_losses() for p in model.protocols.values())


def realised_bad_debt(model: MarketModel) -> float:
    """Bad debt the protocols have written off so far, USD."""
    return sum(p.realised_bad_debt for p in model.protocols.values())


def default_losses(credit_losses: Iterable[float], defaults: Iterable[Mapping[str, Any]]) -> float:
    """Losses from defaults, USD: lenders' credit losses plus each defaulter's negative equity.

    Args:
        credit_losses: Credit-line losses per lender (``model.credit_losses.values()``).
        defaults: Default records with ``equity_usd`` at the default (``model.defaults``).
    """
    return sum(credit_losses) + sum(max(0.0, -d["equity_usd"]) for d in defaults)


def system_losses(model: MarketModel) -> float:
    """Bad debt (realised and underwater) plus default losses so far, USD."""
    bad_debt = realised_bad_debt(model) + unrealised_bad_debt(model)
    return bad_debt + default_losses(model.credit_losses.values(), model.defaults)


def system_revenue(model: MarketModel) -> float:
    """Income earned by all protocols so far, USD."""
    return sum(p.revenue for p in model.protocols.values())
