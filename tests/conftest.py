"""Shared fixtures: small worlds that build in milliseconds."""

from __future__ import annotations

import pytest

from liqnet.market import MarketModel
from liqnet.scenarios import Scenario, load


def small(name: str = "baseline", positions: int = 300, **overrides: object) -> Scenario:
    """A built-in scenario with ``positions`` positions per protocol, plus overrides."""
    values: dict[str, object] = {f"protocols.{k}.params.positions": positions for k in range(3)}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load(name, values)


@pytest.fixture
def small_world() -> MarketModel:
    """The baseline world with 300 positions per protocol."""
    return MarketModel(small())
