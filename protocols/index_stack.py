"""The dirty sets of many liquidation indexes in shared storage, marked all at once.

A :class:`~liqnet.protocols.positions.LiquidationIndex` keeps the positions edited since
its last sort in a *dirty set*: per-slot flags and buffer positions, and a buffer of
dirty slots and their keys. For the books of a :class:`PositionStack` those arrays can be
rows of one :class:`IndexStack` (``LiquidationIndex(..., stacked=True)``), so that
:meth:`IndexStack.mark` records an edit of many books as one array program. It equals
each index's :meth:`~liqnet.protocols.positions.LiquidationIndex.mark_dirty` called in
turn, bit for bit: the same dirty slots in the same buffer order, the same keys and
bounds, the same rebuilds at the same edits (each index keeps its own counters, limit
and bounds; only the arrays are shared).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from liqnet.protocols.position_stack import FEW_ROWS

if TYPE_CHECKING:
    from liqnet.protocols.position_stack import PositionStack
    from liqnet.protocols.positions import LiquidationIndex

_BUFFER = 256


class IndexStack:
    """Dirty-set storage of one liquidation index per book of ``positions``.

    Args:
        positions: The stack whose books the indexes cover (row for row).
    """

    def __init__(self, positions: PositionStack) -> None:
        self.positions = positions
        self.indexes: dict[int, LiquidationIndex] = {}
        """Each index, by its book's row."""
        self.is_dirty = np.zeros((0, 0), dtype=bool)
        self.position = np.zeros((0, 0), dtype=np.int64)
        self.buffer = np.empty((0, _BUFFER), dtype=np.int64)
        self.keys = np.empty((0, _BUFFER))

    def attach(self, index: LiquidationIndex) -> None:
        """Hold ``index``'s dirty set (called by the index); one index per book."""
        row = index.arrays.row
        if row in self.indexes:
            raise ValueError(f"book row {row} already has a stacked index")
        self.indexes[row] = index
        if self.is_dirty.shape == self.positions.active.shape:
            self._bind_row(row, index)  # a reused row: only the new index binds
        else:
            self.resize()

    def release(self, row: int, capacity: int) -> None:
        """Detach book row ``row``'s index (its book was released): the index keeps a
        copy of its dirty set for its first ``capacity`` slots; the row is cleared."""
        index = self.indexes.pop(row, None)
        if index is not None:
            index.stack = None
            index.bind(
                self.is_dirty[row, :capacity].copy(),
                self.position[row, :capacity].copy(),
                self.buffer[row].copy(),
                self.keys[row].copy(),
            )
        self.is_dirty[row] = False
        self.position[row] = 0

    def resize(self) -> None:
        """Follow the book stack's rows and width (its storage grew); contents kept."""
        rows, width = self.positions.active.shape
        old_rows, old_width = self.is_dirty.shape
        if (rows, width) != (old_rows, old_width):
            is_dirty = np.zeros((rows, width), dtype=bool)
            is_dirty[:old_rows, :old_width] = self.is_dirty
            position = np.zeros((rows, width), dtype=np.int64)
            position[:old_rows, :old_width] = self.position
            self.is_dirty, self.position = is_dirty, position
        if rows != self.buffer.shape[0]:
            self._resize_buffer(self.buffer.shape[1])
        self._bind()

    def reserve(self, size: int) -> None:
        """Room for ``size`` dirty slots in every row (an index's dirty set is growing)."""
        if size > self.buffer.shape[1]:
            self._resize_buffer(max(size, 2 * self.buffer.shape[1]))
            self._bind()

    def _resize_buffer(self, size: int) -> None:
        rows = self.positions.active.shape[0]
        old_rows, old_size = self.buffer.shape
        buffer = np.empty((rows, size), dtype=np.int64)
        buffer[:old_rows, :old_size] = self.buffer
        keys = np.empty((rows, size))
        keys[:old_rows, :old_size] = self.keys
        self.buffer, self.keys = buffer, keys

    def _bind(self) -> None:
        for row, index in self.indexes.items():
            self._bind_row(row, index)

    def _bind_row(self, row: int, index: LiquidationIndex) -> None:
        index.bind(self.is_dirty[row], self.position[row], self.buffer[row], self.keys[row])

    def mark_edits(
        self,
        edits: list[tuple[int, np.ndarray]],
        key: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """:meth:`mark` of ``(book row, slots)`` pairs (distinct rows, slots non-empty)."""
        if len(edits) <= FEW_ROWS:
            for row, slots in edits:
                self.indexes[row].mark_dirty(slots)
        else:
            self.mark(
                np.array([row for row, _ in edits], dtype=np.int64),
                np.concatenate([slots for _, slots in edits]),
                np.array([slots.size for _, slots in edits], dtype=np.int64),
                key,
            )

    def mark(
        self,
        rows: np.ndarray,
        slots: np.ndarray,
        counts: np.ndarray,
        key: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """Record edits of ``slots`` in the books ``rows`` (``counts[i] > 0`` slots for
        distinct ``rows[i]``, grouped alike), as each index's ``mark_dirty`` in turn.

        ``key(book_rows, slots)`` is the indexes' key for slots of any of these books.
        """
        indexes = [self.indexes[row] for row in rows.tolist()]
        if rows.size <= FEW_ROWS:
            ends = np.cumsum(counts).tolist()
            for index, start, end in zip(indexes, [0, *ends[:-1]], ends, strict=True):
                index.mark_dirty(slots[start:end])
            return
        # A book that grew since its index last sorted re-sorts everything instead.
        grown = [ix.arrays.capacity != ix._indexed_capacity for ix in indexes]
        if any(grown):
            for index, regrow in zip(indexes, grown, strict=True):
                if regrow:
                    index.rebuild(full=True)
            keep = ~np.array(grown)
            slots = slots[np.repeat(keep, counts)]
            rows, counts = rows[keep], counts[keep]
            indexes = [ix for ix, regrow in zip(indexes, grown, strict=True) if not regrow]
            if not indexes:
                return
        at = np.repeat(np.arange(rows.size), counts)
        book_rows = rows[at]
        # New dirty slots, each once, sorted within their book (as mark_dirty's).
        width = self.is_dirty.shape[1]
        fresh = ~self.is_dirty[book_rows, slots]
        # Sorted and deduplicated (np.unique's result, without its overhead).
        unique = np.sort(at[fresh] * width + slots[fresh])
        if unique.size:
            unique = unique[np.concatenate(([True], unique[1:] != unique[:-1]))]
        fresh_at, fresh_slots = np.divmod(unique, width)
        fresh_rows = rows[fresh_at]
        added = np.bincount(fresh_at, minlength=rows.size)
        starts = np.array([ix._dirty_count for ix in indexes], dtype=np.int64)
        ends = starts + added
        self.reserve(int(ends.max()))
        # Each fresh slot's place: its book's dirty count, plus its rank in its book.
        where = np.arange(unique.size) + np.repeat(starts - (np.cumsum(added) - added), added)
        self.buffer[fresh_rows, where] = fresh_slots
        self.position[fresh_rows, fresh_slots] = where
        self.is_dirty[fresh_rows, fresh_slots] = True
        live = self.positions.active[book_rows, slots]
        keys = np.full(slots.size, np.nan)
        bounds: dict[int, tuple[float, float]] = {}
        if live.any():
            live_keys = key(book_rows[live], slots[live])
            keys[live] = live_keys
            live_at = at[live]
            # Each book's lowest and highest new key (min and max are exact in any order).
            first = np.flatnonzero(np.concatenate(([True], live_at[1:] != live_at[:-1])))
            low = np.minimum.reduceat(live_keys, first).tolist()
            high = np.maximum.reduceat(live_keys, first).tolist()
            bounds = dict(zip(live_at[first].tolist(), zip(low, high, strict=True), strict=True))
        self.keys[book_rows, self.position[book_rows, slots]] = keys
        for i, (index, end) in enumerate(zip(indexes, ends.tolist(), strict=True)):
            index._dirty_count = end
            if i in bounds:
                low_key, high_key = bounds[i]
                index._bounds = (min(index._bounds[0], low_key), max(index._bounds[1], high_key))
                index._dirty_bounds = (
                    min(index._dirty_bounds[0], low_key),
                    max(index._dirty_bounds[1], high_key),
                )
            index.version += 1
            if index._dirty_count > index._dirty_limit:
                index.rebuild()
