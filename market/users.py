"""Phase 6 of a market step: every protocol accrues, then its users act.

Each protocol's users draw from a stream of their own, not one shared in protocol order:
adding, removing or reordering a protocol leaves the others' user draws as they were
(paired comparisons between scenario variants), and protocols of one type can be stepped
as array rows, each with its own stream. Protocols of a *stacked* type (one that defines
``act_users_stacked`` itself) accrue and act as one array program per type, in one
checked ``call_together``, across all the worlds of a batch (:func:`run_together`); the
rest one by one. Stacking goes by exact type: a plug-in subclass of a stacked type is
stepped per object (docs/architecture.md, "Stacked protocols").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from liqnet.market.world import MarketWorld, call_together
from liqnet.protocols.base import Protocol


class UserPhase:
    """Accrual and users of a world's protocols, in their per-type groups.

    Args:
        world: The world whose checked calls step them.
        protocols: The protocols by id, in scenario order.
        rng_for: The world's named random streams.
    """

    def __init__(
        self,
        world: MarketWorld,
        protocols: Mapping[str, Protocol],
        rng_for: Callable[[str], np.random.Generator],
    ) -> None:
        self.world = world
        self.protocols = protocols
        self.rngs = {pid: rng_for(f"protocol:{pid}:users") for pid in protocols}
        """Each protocol's users' generator, by id."""
        self.stacks: dict[type[Protocol], list[Protocol]] = {}
        """The protocols of each stacked type, in scenario order."""
        for protocol in protocols.values():
            if type(protocol).is_stacked():
                self.stacks.setdefault(type(protocol), []).append(protocol)
        self._alone = [(pid, p) for pid, p in protocols.items() if type(p) not in self.stacks]

    def run_alone(self, dt_years: float) -> None:
        """The per-object types' protocols accrue, then their users act."""
        call = self.world.call
        for _, protocol in self._alone:
            call(protocol, "accrue", protocol.accrue, dt_years)
        for protocol_id, protocol in self._alone:
            call(protocol, "act_users", protocol.act_users, dt_years, self.rngs[protocol_id])


STACKED_PHASE = "accrue, act_users"
"""The phase name of a stacked type's checked call (in conservation errors, timings)."""


def run_together(phases: Sequence[UserPhase], dt_years: float) -> None:
    """Phase 6 of several worlds of one scenario (a batch; one world for a lone step).

    In each world the per-object types' protocols accrue, then their users act; then
    each stacked type's protocols of *all* the worlds accrue and their users act, in one
    checked call per type (each protocol checked in its own world). A protocol's
    accrual and users see only its own state and the prices, so the stacked types going
    after the others, and the worlds going together, change only the order of
    independent edits (and of additions to each world's external accounts): every world
    ends the phase as it would alone, bit for bit.

    Raises:
        ValueError: The worlds do not share their position stacks, their stacked
            types differ, or a world's step is not ``dt_years`` long.
    """
    first = phases[0]
    for phase in phases:
        if phase.world.dt_years != dt_years:
            raise ValueError(
                f"run_together of {dt_years} years: a world steps {phase.world.dt_years}"
            )
        if phase.world.stacks is not first.world.stacks:
            raise ValueError(
                "run_together needs worlds that share their position stacks "
                "(MarketModel(..., position_stacks=one StackRegistry))"
            )
        if list(phase.stacks) != list(first.stacks):
            raise ValueError(
                "run_together needs worlds with the same stacked types: "
                f"{[c.__name__ for c in phase.stacks]} against {[c.__name__ for c in first.stacks]}"
            )
    for phase in phases:
        phase.run_alone(dt_years)
    for cls in first.stacks:
        worlds: list[MarketWorld] = []
        stack: list[Protocol] = []
        rngs: list[np.random.Generator] = []
        for phase in phases:
            members = phase.stacks[cls]
            worlds += [phase.world] * len(members)
            stack += members
            rngs += [phase.rngs[p.protocol_id] for p in members]
        call_together(worlds, stack, STACKED_PHASE, _accrue_then_act, cls, stack, dt_years, rngs)


def _accrue_then_act(
    cls: type[Protocol],
    protocols: list[Protocol],
    dt_years: float,
    rngs: list[np.random.Generator],
) -> None:
    """Every protocol of a stacked type accrues, then their users act together (one
    checked call for both: a check per phase and protocol costs more than accrual)."""
    for protocol in protocols:
        protocol.accrue(dt_years)
    cls.act_users_stacked(protocols, dt_years, rngs)
