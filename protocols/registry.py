"""Protocol registry: built-in and third-party protocol types by name.

Third-party packages register a :class:`~liqnet.protocols.base.Protocol` subclass under
the entry-point group ``liqnet.protocols``, e.g. in their ``pyproject.toml``::

    [project.entry-points."liqnet.protocols"]
    my_amm = "my_package.protocol:MyProtocol"

Scenario files then name it by ``type = "my_amm"``. :func:`register` does the same at
run time (useful in notebooks and tests).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from liqnet.protocols.base import Protocol

ENTRY_POINT_GROUP = "liqnet.protocols"
BUILTIN_TYPES: tuple[str, ...] = ("lending", "options", "perp")
"""Types shipped with liqnet (registered through this distribution's entry points)."""

_registered: dict[str, type[Protocol]] = {}


def register(type_name: str, cls: type[Protocol]) -> None:
    """Register ``cls`` under ``type_name`` (overrides an entry point of the same name)."""
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise TypeError(f"{cls!r} is not a subclass of liqnet.protocols.base.Protocol")
    _registered[type_name] = cls


def available() -> dict[str, type[Protocol] | str]:
    """All known types: registered classes, and entry points not loaded yet (as strings)."""
    found: dict[str, type[Protocol] | str] = {
        ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)
    }
    found.update(_registered)
    return found


def get_protocol_class(type_name: str) -> type[Protocol]:
    """The protocol class registered as ``type_name``.

    Raises:
        KeyError: With the allowed names, if ``type_name`` is unknown.
    """
    if type_name in _registered:
        return _registered[type_name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == type_name:
            cls = ep.load()
            register(type_name, cls)
            return cls
    raise KeyError(f"unknown protocol type {type_name!r}; allowed: {sorted(available())}")
