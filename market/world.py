"""MarketWorld: the market as protocols see it, the transfer API and the conservation check.

Every call the world makes into a protocol that may move money goes through
:meth:`MarketWorld.call`: it notes the protocol's ``cash`` and ``held_units()`` before,
collects the transfers made during the call (and the exchange the world itself makes with
the protocol, e.g. a liquidator's repayment), and afterwards compares. The cost is two
``held_units()`` calls and a few float comparisons per call, not a walk over balances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from liqnet.protocols.base import Protocol
from liqnet.protocols.position_stack import PositionStack, StackRegistry
from liqnet.protocols.world import Account, ConservationError

if TYPE_CHECKING:
    from liqnet.market.model import MarketModel

_RELATIVE_TOLERANCE = 1e-9
"""Round-off allowed, relative to the balance (sums of many positions are not exact)."""


class MarketWorld:
    """The :class:`~liqnet.protocols.world.World` of a :class:`MarketModel`.

    Args:
        model: The market it shows.
    """

    def __init__(self, model: MarketModel) -> None:
        self._model = model
        # A plain attribute, not a property: protocols read prices many times a step.
        self.oracle_prices: Mapping[str, float] = MappingProxyType(model.oracle_prices)
        """Prices the oracles published, per asset (live, read-only)."""
        # Open checks: id(protocol) -> [usd, {asset: units}] moved into it by transfers so
        # far (keyed by id: hashing an agent goes through Python).
        self._flows: dict[int, list[Any]] = {}
        self._constructing: list[Any] | None = None
        self.stacks: StackRegistry = model.position_stacks
        """The position stacks of this world (shared by the worlds of a batch)."""

    # -- the read-only view ------------------------------------------------------------
    @property
    def asset_names(self) -> tuple[str, ...]:
        """The market's assets, in their fixed order."""
        return self._model.asset_names

    @property
    def step_index(self) -> int:
        """Steps taken so far."""
        return self._model.step_index

    @property
    def dt_hours(self) -> float:
        """Market time per step, hours."""
        return self._model.dt_hours

    @property
    def dt_years(self) -> float:
        """Market time per step, years."""
        return self._model.dt_years

    @property
    def time_years(self) -> float:
        """Market time elapsed, years."""
        return self._model.step_index * self._model.dt_years

    @property
    def liquidation_hurdle_usd(self) -> float:
        """Smallest liquidation value some liquidator takes this step."""
        return self._model.liquidation_hurdle_usd

    @property
    def seed(self) -> int:
        """The world seed."""
        return self._model.seed_value

    def pool_price(self, asset: str) -> float:
        """Marginal USD price of ``asset`` on its AMM pool."""
        return self._model.pools[asset].price

    def pool_units(self, asset: str) -> float:
        """Units of ``asset`` in its AMM pool."""
        return self._model.pools[asset].units

    def regime_volatility(self, asset: str) -> float:
        """Annual volatility of ``asset`` in the current volatility regime."""
        process = self._model.price_process
        index = self._model.asset_names.index(asset)
        return float(process.sigma[index] * process.regime_multipliers[process.regime])

    def rng_for(self, stream: str) -> np.random.Generator:
        """An independent generator for a named stream, derived from the world seed."""
        return self._model.rng_for(stream)

    def position_stack(self, kind: str, fields: tuple[str, ...]) -> PositionStack:
        """The world's shared storage for position books of ``kind`` (made on first ask)."""
        return self.stacks.stack(kind, fields)

    # -- moving money ------------------------------------------------------------------
    def transfer(
        self,
        payer: Account,
        payee: Account,
        usd: float = 0.0,
        asset: str | None = None,
        units: float = 0.0,
    ) -> None:
        """Move ``usd`` and ``units`` of ``asset`` from ``payer`` to ``payee`` (signed).

        Raises:
            ValueError: An unknown account or asset, a non-finite amount, or units
                without an asset.
        """
        if not (math.isfinite(usd) and math.isfinite(units)):
            raise ValueError(f"transfer {payer!r} -> {payee!r}: amounts must be finite")
        model = self._model
        if units and asset not in model.external_units:
            raise ValueError(
                f"transfer of units: asset {asset!r} is not a market asset "
                f"(allowed: {list(model.asset_names)})"
            )
        # Both sides inline and a str test first (isinstance against the Protocol ABC is
        # several times slower): transfers run many times a step.
        for party, sign in ((payer, -1.0), (payee, 1.0)):
            if isinstance(party, str):
                if party not in model.external_cash:
                    raise ValueError(
                        f"unknown account {party!r}: a protocol or one of "
                        f"{list(model.external_cash)}"
                    )
                if usd:
                    model.external_cash[party] += sign * usd
                if units:
                    model.external_units[asset] += sign * units  # type: ignore[index]
                continue
            if usd:
                party.cash += sign * usd
            flows = self._flows.get(id(party), self._constructing)
            if flows is not None:
                flows[0] += sign * usd
                if units:
                    flows[1][asset] = flows[1].get(asset, 0.0) + sign * units

    # -- checked calls -----------------------------------------------------------------
    def call(
        self,
        protocol: Protocol,
        phase: str,
        method: Callable[..., Any],
        *args: Any,
        usd: float = 0.0,
        asset: str | None = None,
        units: float | Mapping[str, float] = 0.0,
    ) -> Any:
        """Call ``method(*args)`` of ``protocol`` and check it conserved money and units.

        ``usd`` and ``units`` of ``asset`` are what the world itself exchanges with the
        protocol in this call (a liquidator's repayment net of its reward, a hedge fill,
        a credit payment): the protocol books them, everything else must be a transfer.
        ``units`` may instead map several assets to units (an auction step: stablecoin
        in, collateral out), ``asset`` then unused; a ``dict`` is read after the call, so
        the world may fill it while the call runs (the keeper phase does, bid by bid).

        Raises:
            ConservationError: ``cash`` or ``held_units()`` moved by more than that.
        """
        cash_before = protocol.cash
        units_before = protocol.held_units()
        if isinstance(units, dict):
            exchanged = units  # the same object: filled during the call
        elif isinstance(units, Mapping):
            exchanged = {a: float(u) for a, u in units.items() if u}
        else:
            exchanged = {asset: units} if units else {}
        flows: list[Any] = [usd, exchanged]
        self._flows[id(protocol)] = flows
        try:
            result = method(*args)
        finally:
            del self._flows[id(protocol)]
        # Fast path: cash moved exactly by the flows and no units moved at all.
        if (
            protocol.cash - cash_before != flows[0]
            or flows[1]
            or (protocol.held_units() != units_before)
        ):
            self.check(protocol, phase, cash_before, units_before, flows[0], flows[1])
        return result

    def construct(self, cls: type[Protocol], protocol_id: str, params: Any) -> Protocol:
        """Build a protocol and check its opening balance sheet came from transfers."""
        # The object does not exist before its __init__ transfers its opening balances;
        # only it is being built, so flows to any protocol without an open check are its.
        holder: list[Any] = [0.0, {}]
        self._constructing = holder
        try:
            protocol = cls(self._model, protocol_id, params)
        finally:
            self._constructing = None
        self.check(protocol, "__init__", 0.0, {}, holder[0], holder[1])
        return protocol

    def check(
        self,
        protocol: Protocol,
        phase: str,
        cash_before: float,
        units_before: dict[str, float],
        usd: float,
        units: dict[str, float],
    ) -> None:
        """Raise :class:`ConservationError` unless cash and units moved by the flows."""
        cash = protocol.cash
        created = (cash - cash_before) - usd
        if created and abs(created) > _RELATIVE_TOLERANCE * max(
            1.0, abs(cash), abs(cash_before), abs(usd)
        ):
            raise ConservationError(
                f"protocol {protocol.protocol_id!r} ({type(protocol).__name__}) in {phase}: "
                f"cash changed by {cash - cash_before:+.10g} USD but its transfers account "
                f"for {usd:+.10g} USD: {created:+.10g} USD "
                f"{'created from nothing' if created > 0 else 'destroyed'}"
            )
        held = protocol.held_units()
        if not units and held == units_before:
            return  # the common case: no units moved (a dict comparison in C)
        for name in held.keys() | units_before.keys() | units.keys():
            now, before = held.get(name, 0.0), units_before.get(name, 0.0)
            moved = units.get(name, 0.0)
            created = (now - before) - moved
            if created and abs(created) > _RELATIVE_TOLERANCE * max(
                1.0, abs(now), abs(before), abs(moved)
            ):
                raise ConservationError(
                    f"protocol {protocol.protocol_id!r} ({type(protocol).__name__}) in "
                    f"{phase}: {name} units changed by {now - before:+.10g} but its "
                    f"transfers account for {moved:+.10g}: {created:+.10g} {name} "
                    f"{'created from nothing' if created > 0 else 'destroyed'}"
                )

    # -- world-level checks --------------------------------------------------------------
    def holdings(self) -> tuple[float, dict[str, float], float, dict[str, float]]:
        """Everyone's USD and units (``total_cash``, ``total_units``) and their gross sums
        (the scale of their rounding error: holdings net out across accounts)."""
        model = self._model
        cash = (
            [p.cash for p in model.protocols.values()]
            + [a.cash for a in model.market_agents]
            + [pool.usd for pool in model.pools.values()]
            + list(model.external_cash.values())
        )
        held = [p.held_units() for p in model.protocols.values()]
        units, gross_units = {}, {}
        for asset in model.asset_names:
            parts = [model.pools[asset].units, model.external_units[asset]]
            parts += [h.get(asset, 0.0) for h in held]
            parts += [k.units.get(asset, 0.0) for k in model.keeper_agents]
            units[asset] = math.fsum(parts)
            gross_units[asset] = math.fsum(map(abs, parts))
        return math.fsum(cash), units, math.fsum(map(abs, cash)), gross_units

    def check_phase(
        self, phase: str, before: tuple[float, dict[str, float], float, dict[str, float]]
    ) -> tuple[float, dict[str, float], float, dict[str, float]]:
        """Raise :class:`ConservationError` naming ``phase`` (arbitrage, the cascade's
        liquidator sales, settlement, ...) if it changed the world's USD or units beyond
        round-off since ``before`` (a :meth:`holdings`); returns the holdings now.

        :meth:`call` checks each protocol; this checks the paths that move money between
        the world's own accounts (pools, liquidators, arbitrageurs, external accounts).
        """
        now = self.holdings()
        cash_scale = max(1.0, before[2], now[2])
        if not abs(now[0] - before[0]) <= _RELATIVE_TOLERANCE * cash_scale:  # NaN too
            raise ConservationError(
                f"step {self.step_index}, {phase}: the world's USD changed by "
                f"{now[0] - before[0]:+.10g} (of {cash_scale:.4g} USD in play)"
            )
        for asset, total in now[1].items():
            scale = max(1.0, before[3][asset], now[3][asset])
            if not abs(total - before[1][asset]) <= _RELATIVE_TOLERANCE * scale:
                raise ConservationError(
                    f"step {self.step_index}, {phase}: the world's {asset} units changed "
                    f"by {total - before[1][asset]:+.10g} (of {scale:.4g} in play)"
                )
        return now


def call_together(
    worlds: Sequence[MarketWorld],
    protocols: Sequence[Protocol],
    phase: str,
    method: Callable[..., Any],
    *args: Any,
) -> Any:
    """Call ``method(*args)`` once for several protocols (a stacked type's phase, of one
    world or of the worlds of a batch; ``worlds[i]`` is the world of ``protocols[i]``)
    and check each conserved money and units in its own world, as
    :meth:`MarketWorld.call` checks one."""
    before = [(p.cash, p.held_units()) for p in protocols]
    opened: list[list[Any]] = [[0.0, {}] for _ in protocols]
    for world, protocol, flows in zip(worlds, protocols, opened, strict=True):
        world._flows[id(protocol)] = flows
    try:
        result = method(*args)
    finally:
        for world, protocol in zip(worlds, protocols, strict=True):
            del world._flows[id(protocol)]
    for world, protocol, (cash, units), flows in zip(
        worlds, protocols, before, opened, strict=True
    ):
        if protocol.cash - cash != flows[0] or flows[1] or protocol.held_units() != units:
            world.check(protocol, phase, cash, units, flows[0], flows[1])
    return result
