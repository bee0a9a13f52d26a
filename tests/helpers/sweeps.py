"""Small sweep tables and readers of a sweep directory, for the sweep tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def small(positions: int = 200) -> dict[str, Any]:
    """Overrides shrinking every protocol of the built-in worlds to ``positions``."""
    return {f"protocols.{k}.params.positions": positions for k in range(3)}


def spec(**fields: Any) -> dict[str, Any]:
    """A small flash-crash sweep table, with ``fields`` replacing its entries."""
    table: dict[str, Any] = {
        "name": "test",
        "base": "flash_crash",
        "overrides": small(),
        "steps": 24,
        "seeds": [0, 1],
        "grid": {"market.assets.ETH.pool_usd": [100e6, 400e6]},
    }
    table.update(fields)
    return table


def rows_on_disk(out: Path) -> dict[str, dict[str, Any]]:
    """Every run directory's ``row.json``, by run id."""
    return {
        p.parent.name: json.loads(p.read_text(encoding="utf-8"))
        for p in (out / "runs").glob("*/row.json")
    }


def mtimes(out: Path) -> dict[str, int]:
    """Modification time of every ``row.json``, by run id."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("[!.]*/row.json")}


def canonical(row: dict[str, Any]) -> str:
    """A row as text, so NaN equals NaN."""
    return json.dumps(row, sort_keys=True, default=str)
