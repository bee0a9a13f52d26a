"""Protocol registry: built-in and third-party protocol types by name.

Third-party packages register a :class:`~liqnet.protocols.base.Protocol` subclass under
the entry-point group ``liqnet.protocols``, e.g. in their ``pyproject.toml``::

    [project.entry-points."liqnet.protocols"]
    my_amm = "my_package.protocol:MyProtocol"

Scenario files then name it by ``type = "my_amm"``. :func:`register` does the same at
run time (useful in notebooks and tests).
"""

from __future__ import annotations

from liqnet.core.registry import Registry
from liqnet.protocols.base import Protocol

ENTRY_POINT_GROUP = "liqnet.protocols"
BUILTIN_TYPES: tuple[str, ...] = ("cdp", "comet", "lending", "options", "perp")
"""Types shipped with liqnet (registered through this distribution's entry points)."""


def _check_protocol_class(cls: type[Protocol]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise TypeError(f"{cls!r} is not a subclass of liqnet.protocols.base.Protocol")


PROTOCOLS: Registry[type[Protocol]] = Registry(
    "protocol type", entry_point_group=ENTRY_POINT_GROUP, check=_check_protocol_class
)
"""Every protocol type by name: registered classes and installed entry points."""


def register(type_name: str, cls: type[Protocol]) -> None:
    """Register ``cls`` under ``type_name`` (overrides an entry point of the same name)."""
    PROTOCOLS.register(type_name, cls)


def available() -> dict[str, type[Protocol] | str]:
    """All known types: registered classes, and entry points not loaded yet (as strings)."""
    return PROTOCOLS.available()


def get_protocol_class(type_name: str) -> type[Protocol]:
    """The protocol class registered as ``type_name``.

    Raises:
        liqnet.core.UnknownNameError: A ``KeyError`` listing the allowed names.
    """
    return PROTOCOLS.get(type_name)
