"""Helpers for the scenario loader tests: a minimal scenario file, writing and failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from liqnet.scenarios import ScenarioError, load

MINIMAL_TOML = """\
name = "tiny"
steps = 10

[market.assets.ETH]
price = 3000.0
volatility = 0.7

[[protocols]]
id = "pool"
type = "lending"
[protocols.params]
positions = 50

[[liquidators]]
capital_usd = 1e6
"""


def write_toml(directory: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``directory/name`` (creating the folder) and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def scenario_error(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> str:
    """The message of the :class:`ScenarioError` that loading must raise."""
    with pytest.raises(ScenarioError) as info:
        load(name_or_path, overrides)
    return str(info.value)
