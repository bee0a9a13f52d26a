"""liqnet.core.registry: the generic Registry helper (checks, lazy references, entry points)."""

from __future__ import annotations

import pytest

from liqnet.core import Registry


def test_registry_registers_checks_and_lists_allowed_names() -> None:
    def only_ints(entry: object) -> None:
        if not isinstance(entry, int):
            raise TypeError(f"{entry!r} is not an int")

    numbers: Registry[int] = Registry("number", check=only_ints)
    numbers.register("one", 1)
    assert numbers.get("one") == 1 and numbers["one"] == 1 and "one" in numbers
    with pytest.raises(TypeError, match="not an int"):
        numbers.register("two", "2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contain no ':'"):
        numbers.register("a:b", 3)
    with pytest.raises(KeyError, match="unknown number 'three'; allowed: one"):
        numbers.get("three")
    numbers.unregister("one")
    assert numbers.names() == []


def test_registry_loads_a_lazy_reference_once() -> None:
    joins: Registry[object] = Registry("function")
    joins.register_lazy("join", "os.path:join")
    assert joins.available() == {"join": "os.path:join"}  # not imported yet
    import os.path

    assert joins.get("join") is os.path.join
    assert joins.available() == {"join": os.path.join}


def test_registry_finds_entry_points_of_its_group() -> None:
    protocols: Registry[type] = Registry("protocol type", entry_point_group="liqnet.protocols")
    assert {"lending", "perp", "options"} <= set(protocols.names())
    assert protocols.get("lending").__name__ == "LendingPool"
