"""liqnet.core: the version, the registry helper, atomic writes and error types."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import liqnet
from liqnet.core import (
    CheckpointError,
    InputError,
    Registry,
    ScenarioError,
    UnknownNameError,
    atomic_write,
)
from liqnet.core.levers import DEFAULT_LEVERS, DEFAULT_STANDING_LEVERS, LEVER_NAMES
from liqnet.core.units import HOURS_PER_YEAR


def test_version_is_the_distribution_version_and_the_cli_prints_it() -> None:
    assert liqnet.__version__ == version("liqnet")
    out = subprocess.run(
        [sys.executable, "-m", "liqnet.scenarios.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"liqnet {version('liqnet')}"


def test_levers_and_units_agree() -> None:
    assert tuple(DEFAULT_LEVERS) == LEVER_NAMES
    assert DEFAULT_STANDING_LEVERS == (0.0, 0.0, -1.0, 0.0, -1.0, 0.0)
    assert HOURS_PER_YEAR == 8760.0


def test_input_errors_are_value_errors() -> None:
    for cls in (ScenarioError, CheckpointError, UnknownNameError):
        assert issubclass(cls, InputError)
        assert issubclass(cls, ValueError)
    assert issubclass(UnknownNameError, KeyError)
    assert str(UnknownNameError("unknown thing 'x'")) == "unknown thing 'x'"


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


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "data.txt"
    atomic_write(target, lambda p: p.write_text("first"))
    assert target.read_text() == "first"

    def broken(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]
