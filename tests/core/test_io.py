"""liqnet.core.io: atomic writes replace a file whole or leave it untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from liqnet.core import atomic_write


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
