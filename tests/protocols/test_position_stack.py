"""A stack's rows behave bit for bit as lone books, edited one at a time or all at once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqnet.protocols import index_stack, position_stack
from liqnet.protocols.index_stack import IndexStack
from liqnet.protocols.position_stack import PositionStack
from liqnet.protocols.positions import LiquidationIndex, PositionArrays

FIELDS = ("size", "margin")

# Up to FEW_ROWS rows an edit goes row by row, above it as one array program: both ways.
BOTH_WAYS = pytest.mark.parametrize("few_rows", [0, 3])


def _threshold(mp: pytest.MonkeyPatch, few_rows: int) -> None:
    mp.setattr(position_stack, "FEW_ROWS", few_rows)
    mp.setattr(index_stack, "FEW_ROWS", few_rows)


def _same_book(stacked: PositionArrays, lone: PositionArrays) -> None:
    assert (stacked.size, stacked.count, stacked.capacity) == (lone.size, lone.count, lone.capacity)
    assert np.array_equal(stacked.active[: lone.size], lone.active[: lone.size])
    assert not stacked.active[lone.size :].any()
    assert np.array_equal(stacked.data[:, : lone.size], lone.data[:, : lone.size])
    assert stacked._free_count == lone._free_count
    assert np.array_equal(stacked._free[: lone._free_count], lone._free[: lone._free_count])


def _books(k: int) -> tuple[PositionStack, list[PositionArrays]]:
    stack = PositionStack(FIELDS)
    for _ in range(k):
        stack.new_row()
    return stack, [PositionArrays(FIELDS) for _ in range(k)]


@BOTH_WAYS
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6), edits=st.integers(1, 25))
def test_batched_edits_equal_each_books_own_edits(
    few_rows: int, seed: int, k: int, edits: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _threshold(mp, few_rows)
        _batched_edits(seed, k, edits)


def _batched_edits(seed: int, k: int, edits: int) -> None:
    rng = np.random.default_rng(seed)
    stack, lone = _books(k)
    # The lone books draw from their own streams; the stack's rows from twins of them.
    lone_rngs = [np.random.default_rng([seed, i]) for i in range(k)]
    row_rngs = [np.random.default_rng([seed, i]) for i in range(k)]
    for _ in range(edits):
        rows = np.sort(rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False))
        action = rng.integers(3)
        if action == 0:  # open: reuses freed slots first, may grow a row past the others
            counts = rng.integers(0, 150, rows.size)
            size = rng.uniform(1, 10, int(counts.sum()))
            margin = rng.uniform(0, 1, int(counts.sum()))
            got = stack.add(rows, counts, size=size, margin=margin)
            bounds = np.concatenate(([0], np.cumsum(counts)))
            for i, row in enumerate(rows):
                part = slice(bounds[i], bounds[i + 1])
                want = lone[row].add(size=size[part], margin=margin[part])
                assert np.array_equal(got[part], want)
        else:  # pick and close, as a trader churn does
            drawn = [r for r in rows if lone[r].count]
            wanted = rng.integers(1, 40, len(drawn))
            uniforms = [
                row_rngs[r].random(2 * int(n) + 4) for r, n in zip(drawn, wanted, strict=True)
            ]
            picked_rows = np.array(drawn, dtype=np.int64)
            slots, counts = stack.pick(picked_rows, uniforms, wanted)
            of_row = np.repeat(picked_rows, counts)
            for r, n in zip(drawn, wanted, strict=True):
                want = lone[r].sample_active(lone_rngs[r], int(n))
                assert np.array_equal(slots[of_row == r], want)
            if action == 1:
                stack.close(of_row, slots)
                for r in drawn:
                    lone[r].close(slots[of_row == r])
        for row in range(k):
            _same_book(stack.rows[row], lone[row])


def test_rows_keep_their_own_capacity_and_index_rebuilds() -> None:
    stack, lone = _books(2)
    stack.rows[0].add(size=np.ones(500), margin=np.ones(500))
    lone[0].add(size=np.ones(500), margin=np.ones(500))
    # Row 1 is as wide as row 0 in storage but as small as its lone twin in capacity.
    assert stack.width >= 500 and stack.rows[1].capacity == lone[1].capacity == 64
    index = LiquidationIndex(stack.rows[1], lambda s: stack.rows[1]["size"][s])
    twin = LiquidationIndex(lone[1], lambda s: lone[1]["size"][s])
    for book, idx in ((stack.rows[1], index), (lone[1], twin)):
        idx.mark_dirty(book.add(size=np.arange(1.0, 41.0), margin=np.zeros(40)))
    assert index.rebuilds == twin.rebuilds
    assert np.array_equal(index.select(20.0, True), twin.select(20.0, True))


def test_per_row_edits_write_the_shared_storage() -> None:
    stack, _ = _books(3)
    slots = stack.rows[2].add(size=np.array([1.0, 2.0]), margin=0.5)
    assert np.array_equal(stack.data[2, 0, slots], [1.0, 2.0])
    assert stack.active[2, slots].all() and not stack.active[:2].any()
    stack.rows[0].add(size=np.ones(1000), margin=0.0)  # the stack grows: views rebind
    stack.rows[2].columns["margin"][slots] = 3.0
    assert np.array_equal(stack.data[2, 1, slots], [3.0, 3.0])


def test_a_book_of_other_fields_is_refused() -> None:
    stack = PositionStack(FIELDS)
    with pytest.raises(ValueError, match="fields"):
        PositionArrays(("size",), stack=stack)


def _key_of(book: PositionArrays):  # type: ignore[no-untyped-def]
    return lambda slots: book["margin"][slots] / book["size"][slots]


def _same_index(stacked: LiquidationIndex, lone: LiquidationIndex) -> None:
    assert (stacked.rebuilds, stacked.version, stacked._dirty_count) == (
        lone.rebuilds,
        lone.version,
        lone._dirty_count,
    )
    assert (stacked._bounds, stacked._dirty_bounds) == (lone._bounds, lone._dirty_bounds)
    assert np.array_equal(stacked._dirty_state()[0], lone._dirty_state()[0])
    assert np.array_equal(stacked._dirty_state()[1], lone._dirty_state()[1], equal_nan=True)
    for threshold in (0.1, 0.3, 0.5, 0.8):
        for above in (True, False):
            assert np.array_equal(stacked.select(threshold, above), lone.select(threshold, above))


@BOTH_WAYS
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5), edits=st.integers(1, 30))
def test_marking_many_indexes_at_once_equals_each_index_marked(
    few_rows: int, seed: int, k: int, edits: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _threshold(mp, few_rows)
        _marking(seed, k, edits)


def _marking(seed: int, k: int, edits: int) -> None:
    rng = np.random.default_rng(seed)
    stack, lone = _books(k)
    stacked = [LiquidationIndex(b, _key_of(b), stacked=True) for b in stack.rows]
    alone = [LiquidationIndex(b, _key_of(b)) for b in lone]
    indexes = stack.indexes()
    assert isinstance(indexes, IndexStack)

    def key(rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return stack.data[rows, 1, slots] / stack.data[rows, 0, slots]

    for _ in range(edits):
        rows = np.sort(rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False))
        # Opens, closes and value edits (partial liquidations), with repeated slots.
        counts = rng.integers(1, 120, rows.size)
        size = rng.uniform(1, 10, int(counts.sum()))
        margin = rng.uniform(0, 1, int(counts.sum()))
        slots = stack.add(rows, counts, size=size, margin=margin)
        for i, row in enumerate(rows):
            part = slice(int(counts[:i].sum()), int(counts[: i + 1].sum()))
            lone[row].add(size=size[part], margin=margin[part])
        marked = []
        for row in rows:
            book = stack.rows[row]
            active = book.active_slots()
            chosen = active[rng.integers(0, active.size, int(rng.integers(1, 30)))]
            if rng.random() < 0.5:
                book.columns["margin"][chosen] *= 0.5
                lone[row].columns["margin"][chosen] *= 0.5
            else:
                book.close(np.unique(chosen))
                lone[row].close(np.unique(chosen))
            marked.append(np.concatenate((slots[np.repeat(rows, counts) == row], chosen)))
        indexes.mark(rows, np.concatenate(marked), np.array([m.size for m in marked]), key)
        for row, chosen in zip(rows, marked, strict=True):
            alone[row].mark_dirty(chosen)
        for row in range(k):
            _same_book(stack.rows[row], lone[row])
            _same_index(stacked[row], alone[row])


def _filled(stack: PositionStack, n: int, seed: int) -> tuple[PositionArrays, LiquidationIndex]:
    """A new book of ``stack`` with ``n`` positions, some closed, and a stacked index."""
    rng = np.random.default_rng(seed)
    book = stack.new_row()
    index = LiquidationIndex(book, _key_of(book), stacked=True)
    slots = book.add(size=rng.uniform(1, 10, n), margin=rng.uniform(0, 1, n))
    book.close(slots[::3])
    index.mark_dirty(slots)
    return book, index


def test_a_released_book_keeps_its_contents_and_its_row_serves_a_fresh_book() -> None:
    stack = PositionStack(FIELDS)
    old, old_index = _filled(stack, 300, seed=1)
    neighbour, _ = _filled(stack, 50, seed=2)
    before = (old.data[:, : old.size].copy(), old.active_slots(), old_index.select(0.1, True))
    row = old.row
    stack.release([row])
    assert old.stack is None and old_index.stack is None
    assert np.array_equal(old.data[:, : old.size], before[0])
    assert np.array_equal(old.active_slots(), before[1])
    assert np.array_equal(old_index.select(0.1, True), before[2])
    assert not stack.active[row].any() and not stack.data[row].any()
    assert stack.occupied() == {neighbour.row}
    # The next book takes the vacant row and behaves as a book of a fresh stack, also
    # when the released book goes on being edited on its own storage.
    reused, reused_index = _filled(stack, 120, seed=3)
    twin, twin_index = _filled(PositionStack(FIELDS), 120, seed=3)
    old.add(size=np.ones(5), margin=np.ones(5))
    assert reused.row == row and len(stack.rows) == 2
    _same_book(reused, twin)
    _same_index(reused_index, twin_index)
    with pytest.raises(ValueError, match="not in use"):
        stack.release([row, row])


def test_a_registry_claims_the_rows_a_world_attaches_and_frees_them() -> None:
    registry = position_stack.StackRegistry()
    with registry.claim() as first:
        registry.stack("books", FIELDS).new_row()
        registry.stack("books", FIELDS).new_row()
    with registry.claim() as second:
        registry.stack("books", FIELDS).new_row()
    assert first == {"books": [0, 1]} and second == {"books": [2]}
    registry.release(first)
    with registry.claim() as third:
        for _ in range(3):
            registry.stack("books", FIELDS).new_row()
    assert sorted(third["books"]) == [0, 1, 3]  # the freed rows first, then a new one
    with pytest.raises(ValueError, match="holds"):
        registry.stack("books", ("size",))
