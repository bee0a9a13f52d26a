"""Tests of cascade amplification against the ``feedback=False`` twin."""

from __future__ import annotations

import math

import pytest

from liqnet.analysis import amplification_from_results, feedback_channels, ratio
from liqnet.scenarios import amplification, run
from tests.helpers.worlds import Small

STEPS = 40  # through flash_crash's crash (steps 20-23) and the first recovery steps


def test_ratio_conventions() -> None:
    assert ratio(0.0, 0.0) == 1.0
    assert ratio(5.0, 0.0) == math.inf
    assert ratio(6.0, 3.0) == 2.0
    assert ratio(0.0, 3.0) == 0.0
    for bad in ((-1.0, 1.0), (1.0, -1.0), (math.nan, 1.0)):
        with pytest.raises(ValueError, match=">= 0"):
            ratio(*bad)


def test_feedback_channels(small: Small) -> None:
    assert feedback_channels(small("flash_crash")) == ("price_impact",)
    assert feedback_channels(small("credit_crunch")) == ("price_impact", "credit")
    assert feedback_channels(small("flash_crash", market__permanent_impact=0.0)) == ()
    # One protocol willing to lend and another to borrow opens the credit channel.
    lend = small("flash_crash", market__permanent_impact=0.0, protocols__aave__levers__lend=0.0)
    assert feedback_channels(lend) == ()
    both = small(
        "flash_crash",
        market__permanent_impact=0.0,
        protocols__aave__levers__lend=0.0,
        protocols__dydx__levers__borrow=0.0,
    )
    assert feedback_channels(both) == ("credit",)
    # A learner may set any lever, but a line still needs a counterpart.
    alone = small("flash_crash", market__permanent_impact=0.0, protocols__aave__policy="mappo")
    assert feedback_channels(alone) == ()
    pair = small(
        "flash_crash",
        market__permanent_impact=0.0,
        protocols__aave__policy="mappo",
        protocols__dydx__policy="mappo",
    )
    assert feedback_channels(pair) == ("credit",)


def test_amplification_is_exactly_one_without_feedback_channels(small: Small) -> None:
    # No permanent impact and no credit line: feedback=False changes nothing at all.
    scenario = small("flash_crash", market__permanent_impact=0.0)
    assert feedback_channels(scenario) == ()
    result = amplification(scenario, steps=STEPS)
    assert result.channels == ()
    assert (result.bad_debt, result.liquidated, result.drawdown) == (1.0, 1.0, 1.0)
    assert result.with_feedback == result.without_feedback
    assert result.with_feedback["liquidated"] > 0.0  # the crash did liquidate: 1 is not 0/0
    assert result.as_row() == {
        "amplification_bad_debt": 1.0,
        "amplification_liquidated": 1.0,
        "amplification_drawdown": 1.0,
    }


def test_price_impact_amplifies_a_crash(small: Small) -> None:
    scenario = small("flash_crash")
    with_feedback = run(scenario, steps=STEPS)
    result = amplification(scenario, result=with_feedback)
    assert result.channels == ("price_impact",)
    assert result.drawdown > 1.0 and result.liquidated > 1.0
    assert result.with_feedback["drawdown"] == with_feedback.summary["max_drawdown"]
    assert result.to_dict()["channels"] == ["price_impact"]


def test_amplification_from_results_checks_twins(small: Small) -> None:
    scenario = small("flash_crash")
    a = run(scenario, steps=10)
    with pytest.raises(ValueError, match="feedback=False"):
        amplification_from_results(a, a)
    with pytest.raises(ValueError, match="not twins"):
        amplification_from_results(a, run(scenario, steps=10, seed=99, feedback=False))
    twin = run(scenario, steps=10, feedback=False)
    assert amplification_from_results(a, twin).bad_debt == 1.0  # 0 / 0 before the crash
    with pytest.raises(ValueError, match="feedback run"):
        amplification(scenario, result=twin)
