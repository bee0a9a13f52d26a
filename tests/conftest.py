"""Shared fixtures: small worlds that build in milliseconds.

Tests request these as fixture arguments; nothing imports this module. Plain helpers
live in :mod:`tests.helpers` and are imported normally.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from liqnet.market import MarketModel
from tests.helpers.worlds import Small
from tests.helpers.worlds import small as _small

# `pytest --hypothesis-profile=long`: a local soak run of the fuzz suite
# (tests/scenarios/test_fuzz.py takes this profile's count instead of its CI count).
settings.register_profile("long", max_examples=2_000, deadline=None)
# `.ci/run` selects this one: every property test draws the same examples on every CI run,
# as the fuzz suite's always do, so main turns red for a reason, not for a lucky draw (a
# random draw found a slow Picard case in test_clearing once). Plain `make test` and
# local runs keep drawing new examples.
settings.register_profile("ci", derandomize=True)


@pytest.fixture(autouse=True)
def phase_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every world in the suite checks conservation after each phase of a step."""
    monkeypatch.setattr(MarketModel, "check_phases", True)


@pytest.fixture(scope="session")
def small() -> Small:
    """Factory ``small(name="baseline", positions=300, **overrides) -> Scenario``.

    Session-scoped because it is a pure function: module-scoped fixtures and Hypothesis
    tests may request it.
    """
    return _small


@pytest.fixture
def small_world(small: Small) -> MarketModel:
    """The baseline world with 300 positions per protocol."""
    return MarketModel(small())
