"""Liquidation index: every query equals a brute-force scan, under random edits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.protocols.positions import LiquidationIndex, PositionArrays


def _book(n: int, rng: np.random.Generator) -> tuple[PositionArrays, LiquidationIndex]:
    arrays = PositionArrays(("collateral", "debt"), capacity=8)

    def key(slots: np.ndarray) -> np.ndarray:
        return arrays["debt"][slots] / arrays["collateral"][slots]

    arrays.add(collateral=rng.uniform(1, 10, n), debt=rng.uniform(1, 10, n))
    index = LiquidationIndex(arrays, key, value_columns=("collateral", "debt"))
    return arrays, index


def _brute(arrays: PositionArrays, threshold: float, above: bool) -> set[int]:
    slots = arrays.active_slots()
    keys = arrays["debt"][slots] / arrays["collateral"][slots]
    return set(slots[keys > threshold] if above else slots[keys < threshold])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), edits=st.integers(1, 30))
def test_select_and_tail_sums_match_brute_force(seed: int, n: int, edits: int) -> None:
    rng = np.random.default_rng(seed)
    arrays, index = _book(n, rng)
    for _ in range(edits):
        action = rng.integers(3)
        if action == 0:  # open positions (may reuse freed slots or grow the storage)
            k = int(rng.integers(1, 20))
            slots = arrays.add(collateral=rng.uniform(1, 10, k), debt=rng.uniform(1, 10, k))
            index.mark_dirty(slots)
        elif action == 1 and arrays.count:  # close some
            slots = arrays.sample_active(rng, int(rng.integers(1, 10)))
            arrays.close(slots)
            index.mark_dirty(slots)
        elif arrays.count:  # partial liquidation: both columns change
            slots = arrays.sample_active(rng, int(rng.integers(1, 10)))
            arrays["debt"][slots] *= rng.uniform(0.2, 1.5, slots.size)
            arrays["collateral"][slots] *= rng.uniform(0.2, 1.0, slots.size)
            index.mark_dirty(slots)
        for threshold in rng.uniform(0, 5, 3):
            for above in (True, False):
                got = index.select(threshold, above)
                assert len(got) == len(set(got.tolist()))
                assert set(got.tolist()) == _brute(arrays, threshold, above)
                sums = index.tail_sums(threshold, above)
                chosen = np.array(sorted(_brute(arrays, threshold, above)), dtype=int)
                for column in ("collateral", "debt"):
                    assert sums[column] == pytest.approx(
                        arrays[column][chosen].sum(), rel=1e-9, abs=1e-9
                    )


def test_rebuild_is_amortised_not_per_edit() -> None:
    rng = np.random.default_rng(0)
    arrays, index = _book(10_000, rng)
    before = index.rebuilds
    for _ in range(100):
        slots = arrays.sample_active(rng, 2)
        arrays.close(slots)
        index.mark_dirty(slots)
    # The dirty set absorbs edits until it reaches n / 16 = 625 slots.
    assert index.rebuilds - before <= 1


def test_sample_active_returns_distinct_active_slots() -> None:
    rng = np.random.default_rng(1)
    arrays, _ = _book(50, rng)
    arrays.close(np.arange(0, 50, 2))
    picks = arrays.sample_active(rng, 10)
    assert len(set(picks.tolist())) == len(picks) <= 10
    assert arrays.active[picks].all()


def test_sample_active_draws_distinct_live_slots_in_random_order() -> None:
    rng = np.random.default_rng(3)
    arrays = PositionArrays(("x",))
    arrays.add(x=np.zeros(2000))
    arrays.close(np.arange(0, 2000, 10))  # every tenth slot closed
    draws = [arrays.sample_active(rng, 50) for _ in range(1000)]
    for slots in draws:
        assert len(slots) == len(set(slots.tolist())) <= 50
        assert arrays.active[slots].all()
    # Dense enough that rejection fills every request; the order is random, not sorted.
    assert all(len(s) == 50 for s in draws)
    assert any((np.diff(s) < 0).any() for s in draws)
    # Every live slot is drawn at about the same rate.
    counts = np.bincount(np.concatenate(draws), minlength=2000)[arrays.active_slots()]
    assert counts.min() > 0.3 * counts.mean() and counts.max() < 2 * counts.mean()
    assert len(PositionArrays(("x",)).sample_active(rng, 5)) == 0
