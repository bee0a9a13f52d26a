"""Tests for liqnet.market.vector_groups: what GroupedVectorEnv refuses (its batches are
checked against the per-env loop in tests/scenarios/test_rollout.py)."""

from __future__ import annotations

import pytest

from liqnet.market.vector_env import VectorLiquidityEnv
from liqnet.market.vector_groups import GroupedVectorEnv
from tests.helpers.worlds import Small


def test_grouped_parts_must_match_and_be_placed_once(small: Small) -> None:
    def engine(name: str, worlds: int, autoreset: bool = False) -> VectorLiquidityEnv:
        return VectorLiquidityEnv(small(name, positions=100), worlds, autoreset=autoreset)

    baseline = engine("baseline", 2)
    with pytest.raises(ValueError, match="same agents"):
        GroupedVectorEnv([baseline, engine("black_thursday", 1)], [(0, 0), (0, 1), (1, 0)])
    with pytest.raises(ValueError, match="each world of each part once"):
        GroupedVectorEnv([baseline], [(0, 0), (0, 0)])
    with pytest.raises(ValueError, match="must not autoreset"):
        GroupedVectorEnv([baseline, engine("baseline", 1, True)], [(0, 0), (0, 1), (1, 0)])
