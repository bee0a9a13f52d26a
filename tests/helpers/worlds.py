"""Small built-in scenarios that build in milliseconds (behind the ``small`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from liqnet.market.negotiation import Matches
from liqnet.market.settlement import sync_credit
from liqnet.protocols.base import Protocol
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios import Scenario, load

if TYPE_CHECKING:
    from liqnet.market import MarketModel

#: The type of the ``small`` fixture: ``small(name, positions, **overrides) -> Scenario``.
Small = Callable[..., Scenario]


def small(name: str = "baseline", positions: int = 300, **overrides: object) -> Scenario:
    """A built-in scenario with ``positions`` positions per protocol, plus overrides.

    Override keys use ``__`` for dots (``market__permanent_impact=0.0``). A CDP's book
    size is its ``vaults``.
    """
    types = [spec.type for spec in load(name).protocols][:3]
    values: dict[str, object] = {
        f"protocols.{k}.params.{'vaults' if t == 'cdp' else 'positions'}": positions
        for k, t in enumerate(types)
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load(name, values)


def drain(protocol: Protocol, beyond_equity: float = 1e6) -> float:
    """An exploit takes the protocol's equity plus ``beyond_equity`` USD of its cash.

    The protocol then defaults in the next settlement and winds down. A perp exchange's
    cash is its LP vault's, so the vault loses it. Returns the USD taken.
    """
    usd = protocol.equity() + beyond_equity
    if isinstance(protocol, PerpExchange):
        protocol.vault_cash -= usd
    protocol.world.transfer(protocol, "owners", usd=usd)
    return usd


def lines_to_compound(model: MarketModel, collateral: np.ndarray | None = None) -> None:
    """aave lends compound 3M and dydx lends it 1M, for 100 steps at 10%.

    Cash moves as negotiation moves it; ``collateral`` (USD per line) secures them.
    """
    matches = Matches(
        lender=np.array([0, 2]), borrower=np.array([1, 1]), amount=[3e6, 1e6], rate=[0.1, 0.1]
    )
    aave, compound, dydx = model.protocols.values()
    for payer, usd in ((aave, 3e6), (dydx, 1e6)):
        model.world.call(payer, "pay_cash", payer.pay_cash, usd, usd=-usd)
    model.world.call(compound, "receive_cash", compound.receive_cash, 4e6, usd=4e6)
    model.ledger.open(matches, model.step_index, 100, collateral=collateral)
    sync_credit(model)
