"""liqnet.core.levers and liqnet.core.units: lever names, defaults and time units agree."""

from __future__ import annotations

from liqnet.core.levers import DEFAULT_LEVERS, DEFAULT_STANDING_LEVERS, LEVER_NAMES
from liqnet.core.units import HOURS_PER_YEAR


def test_levers_and_units_agree() -> None:
    assert tuple(DEFAULT_LEVERS) == LEVER_NAMES
    assert all(lever == 0.0 for lever in DEFAULT_STANDING_LEVERS)  # the treasury rule
    assert len(DEFAULT_STANDING_LEVERS) == len(LEVER_NAMES)
    assert HOURS_PER_YEAR == 8760.0
