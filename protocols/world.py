"""What a protocol sees of the world, and the one way it moves money.

A protocol never reaches into the market model. It reads prices, time and market data
through :class:`World` (``protocol.world``) and moves cash and asset units with
:meth:`World.transfer`. The world (``liqnet.market.MarketModel``) implements the view and
checks conservation after every phase call that may move money (``apply_levers``,
``accrue``, ``act_users``, ``execute_liquidations``, hedge fills, credit payments and
construction; queries such as ``liquidation_candidates`` are not): a phase that changes the
protocol's ``cash`` or ``held_units()`` by more than its transfers (and the exchanges the
world itself made with it, such as a liquidation) raises :class:`ConservationError`
naming the protocol, the phase, the asset and the amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

import numpy as np

from liqnet.core.errors import ConservationError

if TYPE_CHECKING:
    from liqnet.protocols.base import Protocol as LiqnetProtocol
    from liqnet.protocols.position_stack import PositionStack

__all__ = ["EXTERNAL_ACCOUNTS", "Account", "ConservationError", "World"]

EXTERNAL_ACCOUNTS: tuple[str, ...] = (
    "depositors",
    "borrowers",
    "traders",
    "lps",
    "cex",
    "gas",
    "owners",
)
"""Accounts of everyone outside the modelled balance sheets (for conservation)."""

Account = Union["LiqnetProtocol", str]
"""A transfer party: a protocol, or the name of an external account."""


@runtime_checkable
class World(Protocol):
    """The read-only market view a protocol gets, plus :meth:`transfer`."""

    @property
    def oracle_prices(self) -> Mapping[str, float]:
        """Prices the oracles published, per asset (a live, read-only mapping)."""
        ...

    @property
    def asset_names(self) -> tuple[str, ...]:
        """The market's assets, in their fixed order."""
        ...

    @property
    def step_index(self) -> int:
        """Steps taken so far (0 before the first step)."""
        ...

    @property
    def dt_hours(self) -> float:
        """Market time per step, hours."""
        ...

    @property
    def dt_years(self) -> float:
        """Market time per step, years."""
        ...

    @property
    def time_years(self) -> float:
        """Market time elapsed, years."""
        ...

    @property
    def liquidation_hurdle_usd(self) -> float:
        """Smallest liquidation value some liquidator takes this step (inf: none)."""
        ...

    @property
    def seed(self) -> int:
        """The world seed (for models that take an integer seed)."""
        ...

    def pool_price(self, asset: str) -> float:
        """Marginal USD price of ``asset`` on its AMM pool."""
        ...

    def pool_units(self, asset: str) -> float:
        """Units of ``asset`` in its AMM pool (its depth)."""
        ...

    def regime_volatility(self, asset: str) -> float:
        """Annual volatility of ``asset`` in the current volatility regime."""
        ...

    def rng_for(self, stream: str) -> np.random.Generator:
        """An independent generator for a named stream, derived from the world seed."""
        ...

    def position_stack(self, kind: str, fields: tuple[str, ...]) -> PositionStack:
        """The world's shared storage for position books of ``kind`` (made on first ask).

        Books of one kind across the world's protocols are rows of one stack, so a
        protocol type can edit all of them as one array program (``position_stack``).
        """
        ...

    def transfer(
        self,
        payer: Account,
        payee: Account,
        usd: float = 0.0,
        asset: str | None = None,
        units: float = 0.0,
    ) -> None:
        """Move ``usd`` cash and ``units`` of ``asset`` from ``payer`` to ``payee``.

        Amounts are signed (negative: the payee pays). Cash moves with the transfer: a
        protocol's ``cash`` is updated here. Units live in a protocol's own books, so a
        protocol edits its books itself; the world checks that ``held_units()`` moved
        by the amount transferred.
        """
        ...
