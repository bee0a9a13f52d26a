"""Small built-in scenarios that build in milliseconds (behind the ``small`` fixture)."""

from __future__ import annotations

from collections.abc import Callable

from liqnet.protocols.base import Protocol
from liqnet.protocols.perp import PerpExchange
from liqnet.scenarios import Scenario, load

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
