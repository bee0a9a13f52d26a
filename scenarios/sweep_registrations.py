"""Shipping run-time ``register()`` entries from a sweep's driver to its Ray workers.

A worker process starts with only the built-ins and the installed entry points, so types,
policies and mechanisms a user registered in the driver travel with every task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from liqnet.core.registry import Registry

Registrations = dict[str, dict[str, Any]]
"""Per registry (``protocols``, ``policies``, ``mechanisms``): names registered at run time."""


def _registries() -> dict[str, Registry[Any]]:
    from liqnet.agents.base import POLICIES
    from liqnet.market.negotiation import MECHANISMS
    from liqnet.protocols.registry import PROTOCOLS

    return {"protocols": PROTOCOLS, "policies": POLICIES, "mechanisms": MECHANISMS}


def driver_registrations(values: Iterable[Any]) -> Registrations:
    """What this process added with ``register()`` and ``values`` name: sent with every
    task, since a worker process starts with only the built-ins and installed entry
    points. ``values`` are what the runs' scenarios are made of (a sweep passes
    :meth:`SweepPlan.named_values`: the base table, the mixes' settings, the grid values
    and the choices, so no run needs to be built to find them). A class travels by
    reference (its module must import on the workers: installed, or shipped with the
    runtime_env's ``py_modules``), one defined in ``__main__`` by value. Entries no value
    names stay here."""
    named: set[str] = set()
    for value in values:
        _names(value, named)
    found = {
        key: {k: v for k, v in registry.registered_here().items() if k in named}
        for key, registry in _registries().items()
    }
    return {key: entries for key, entries in found.items() if entries}


def _names(value: Any, into: set[str]) -> None:
    """Every string in a raw scenario, and the name part of ``"name:argument"`` specs."""
    if isinstance(value, dict):
        for item in value.values():
            _names(item, into)
    elif isinstance(value, list):
        for item in value:
            _names(item, into)
    elif isinstance(value, str):
        into.update({value, value.partition(":")[0]})


def apply_registrations(registrations: Registrations) -> None:
    """Register on this (worker) process what the driver sent (see :func:`driver_registrations`)."""
    if not registrations:  # the usual case: import nothing more on the worker
        return
    for key, entries in registrations.items():
        registry = _registries()[key]
        for name, entry in entries.items():
            if registry.available().get(name) is not entry:
                if isinstance(entry, str):
                    registry.register_lazy(name, entry)
                else:
                    registry.register(name, entry)
