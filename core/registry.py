"""One registry helper for everything users can add by name.

Protocol types, policies and negotiation mechanisms are each a :class:`Registry`. Entries
are objects registered at run time, ``"module:attribute"`` references loaded on first
use (so naming a torch-backed policy costs nothing until it is built), or entry points of
a group that installed packages declare in their ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from liqnet.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: What the entries are, for messages (``"protocol type"``).
        entry_point_group: Entry-point group searched for names not registered here.
        check: Called with every entry as it is registered or loaded; raises
            ``TypeError`` for an entry of the wrong kind.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        check: Callable[[T], None] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._explicit: set[str] = set()  # names given to register()/register_lazy()

    def register(self, name: str, entry: T) -> None:
        """Register ``entry`` as ``name`` (overrides an entry point of the same name)."""
        if not name or ":" in name:
            raise ValueError(f"{self.kind} name {name!r}: must be non-empty and contain no ':'")
        self._store(name, entry)
        self._explicit.add(name)

    def _store(self, name: str, entry: T) -> None:
        if self._check is not None:
            self._check(entry)
        self._lazy.pop(name, None)
        self._entries[name] = entry

    def register_lazy(self, name: str, reference: str) -> None:
        """Register ``"module:attribute"`` as ``name``, imported on first :meth:`get`."""
        if ":" not in reference:
            raise ValueError(f"{self.kind} {name!r}: reference {reference!r} is not module:attr")
        self._entries.pop(name, None)
        self._lazy[name] = reference
        self._explicit.add(name)

    def _entry_points(self) -> dict[str, str]:
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep.value for ep in entry_points(group=self.entry_point_group)}

    def available(self) -> dict[str, T | str]:
        """Every known name: loaded entries, and references not loaded yet (as strings)."""
        found: dict[str, T | str] = dict(self._entry_points())
        found.update(self._lazy)
        found.update(self._entries)
        return found

    def registered_here(self) -> dict[str, T | str]:
        """Names given to ``register`` or ``register_lazy`` in this process (not entry
        points loaded by :meth:`get`): what another process, such as a Ray worker, may
        not know."""
        found: dict[str, T | str] = {k: v for k, v in self._lazy.items() if k in self._explicit}
        found.update({k: v for k, v in self._entries.items() if k in self._explicit})
        return found

    def names(self) -> list[str]:
        """Every known name, sorted."""
        return sorted(self.available())

    def unregister(self, name: str) -> None:
        """Forget ``name`` if registered here (entry points stay discoverable)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)
        self._explicit.discard(name)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.available()

    def get(self, name: str) -> T:
        """The entry registered as ``name``, loading a reference or entry point once.

        Raises:
            UnknownNameError: ``name`` is unknown; the message lists the allowed names.
        """
        if name in self._entries:
            return self._entries[name]
        reference = self._lazy.get(name) or self._entry_points().get(name)
        if reference is None:
            allowed = ", ".join(self.names()) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; allowed: {allowed}")
        module, _, attribute = reference.partition(":")
        entry: T = getattr(importlib.import_module(module), attribute)
        self._store(name, entry)  # keeps a lazy reference's explicit mark
        return entry
