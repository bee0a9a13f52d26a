"""Position books of one kind stacked in shared storage, edited row by row or all at once.

A :class:`PositionStack` holds the storage of many :class:`PositionArrays` with the same
fields (say every side of every perpetual exchange in a world) as one ``(rows, fields,
capacity)`` block. Each book is a *row*: its ``data``, ``columns``, ``active`` flags and
free list are views of the stack's arrays, laid out as a lone book's own arrays are
(``data[row]`` is a C-contiguous ``(fields, capacity)`` block), so the per-book code runs
unchanged on it and gathers, sums and products come out bit for bit the same.

The stack's methods do one edit for many rows as one array program: :meth:`pick` (the
uniform picks of :meth:`PositionArrays.sample_active`), :meth:`close` and :meth:`add`.
Each gives exactly what calling the rows' own methods in row order would (the same
slots, in the same order, the same free lists), because each row keeps its own slot
space: its high-water mark, its last-in first-out free list and its capacity (how far a
lone book would have grown; the stack's storage is as wide as its widest row). That is
rule one of "Stacked protocols" in ``docs/architecture.md``. The rows' counters stay
plain ints on the books, so per-book code pays nothing for being stacked; the stack
reads and writes them once per edit.

Rows share storage: copying or pickling one book alone breaks the link, so a model
holding stacks is rebuilt from its scenario (as the Ray workers do), never copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from liqnet.protocols.positions import NO_SLOTS, PositionArrays, first_occurrences

if TYPE_CHECKING:
    from liqnet.protocols.index_stack import IndexStack

_MIN_CAPACITY = 64
FEW_ROWS = 4
"""Up to this many rows an edit calls each row's own method: one row's array program
costs fewer NumPy calls than the stacked one's fixed set (the results are the same)."""


def ranks(groups: np.ndarray) -> np.ndarray:
    """Each entry's position within its run of equal, contiguous ``groups`` values."""
    if groups.size == 0:
        return groups
    starts, lengths = _runs(groups)
    return np.arange(groups.size) - np.repeat(starts, lengths)


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of equal, contiguous entries."""
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    return starts, np.diff(np.append(starts, values.size))


class PositionStack:
    """Shared storage for many position books with the same fields.

    Args:
        fields: Names of the float64 columns every row has.
    """

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.rows: list[PositionArrays] = []
        """The books, by row (a released row holds :attr:`vacant`, an empty lone book)."""
        self.vacant = PositionArrays(fields)
        self._vacant: list[int] = []
        self.data = np.zeros((0, len(fields), _MIN_CAPACITY))
        self.active = np.zeros((0, _MIN_CAPACITY), dtype=bool)
        self.free = np.empty((0, _MIN_CAPACITY), dtype=np.int64)
        self._indexes: IndexStack | None = None

    def indexes(self) -> IndexStack:
        """The dirty-set storage of the books' liquidation indexes (made on first ask)."""
        if self._indexes is None:
            from liqnet.protocols.index_stack import IndexStack  # (it imports this module)

            self._indexes = IndexStack(self)
        return self._indexes

    def new_row(self, capacity: int = _MIN_CAPACITY) -> PositionArrays:
        """A new, empty book stored as the stack's next row."""
        return PositionArrays(self.fields, capacity, stack=self)

    @property
    def width(self) -> int:
        """Slots allocated per row (at least every row's own capacity)."""
        return self.active.shape[1]

    def attach(self, book: PositionArrays) -> int:
        """Add ``book`` as a row (called by :class:`PositionArrays`); returns its row."""
        if book.fields != self.fields:
            raise ValueError(f"a book with fields {book.fields} in a stack of {self.fields}")
        if not self._vacant:
            self.rows.append(book)
            self._resize(len(self.rows), max(self.width, book.capacity))
            return len(self.rows) - 1
        # A released row is zeroed, as a new row's storage is: its book starts as a
        # fresh one would (rule one holds for any row, wherever it lies in the stack).
        row = self._vacant.pop()
        self.rows[row] = book
        if book.capacity > self.width:
            self._resize(len(self.rows), book.capacity)
        else:
            book.bind(self.data[row], self.active[row], self.free[row])
        return row

    def release(self, rows: list[int]) -> None:
        """Give ``rows`` back for new books (their world ended).

        Each released book (and its stacked index) keeps a copy of its storage and goes
        on as a book of its own, so whoever still holds the old world reads it as it
        was, and nothing it does reaches the rows' next books.
        """
        for row in rows:
            book = self.rows[row]
            if book is self.vacant:
                raise ValueError(f"row {row} of the stack is not in use")
            capacity = book.capacity
            book.stack, book.row = None, -1
            book.bind(
                self.data[row, :, :capacity].copy(),
                self.active[row, :capacity].copy(),
                self.free[row, :capacity].copy(),
            )
            if self._indexes is not None:
                self._indexes.release(row, capacity)
            self.data[row] = 0.0
            self.active[row] = False
            self.rows[row] = self.vacant
            self._vacant.append(row)

    def occupied(self) -> set[int]:
        """The rows that hold a book."""
        return {row for row, book in enumerate(self.rows) if book is not self.vacant}

    def reserve(self, capacity: int) -> None:
        """Make every row at least ``capacity`` slots wide (a row's book is growing)."""
        if capacity > self.width:
            self._resize(len(self.rows), max(capacity, 2 * self.width))

    def _resize(self, rows: int, width: int) -> None:
        old_rows, old_width = self.active.shape
        data = np.zeros((rows, len(self.fields), width))
        data[:old_rows, :, :old_width] = self.data
        active = np.zeros((rows, width), dtype=bool)
        active[:old_rows, :old_width] = self.active
        free = np.empty((rows, width), dtype=np.int64)
        free[:old_rows, :old_width] = self.free
        self.data, self.active, self.free = data, active, free
        for row, book in enumerate(self.rows):
            if book is not self.vacant:
                book.bind(data[row], active[row], free[row])
        if self._indexes is not None:
            self._indexes.resize()

    # -- one edit for many rows --------------------------------------------------------
    def pick(
        self, rows: np.ndarray, uniforms: list[np.ndarray], wanted: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct active slots from uniform draws, as each row's ``sample_active``.

        ``uniforms[i]`` are the draws row ``rows[i]`` made (``rng.random(2 n + 4)``, drawn
        by the caller from the row's own stream, in stream order); ``wanted[i]`` is that
        row's ``n``. Returns the slots, grouped by row in the order of ``rows`` and each
        row's in draw order, and how many each row got. Rows must be distinct.
        """
        if not uniforms:
            return NO_SLOTS, np.zeros(rows.size, dtype=np.int64)
        if rows.size <= FEW_ROWS:
            parts = [
                self.rows[r].pick_from(u, int(n))
                for r, u, n in zip(rows, uniforms, wanted, strict=True)
            ]
            return np.concatenate(parts), np.array([p.size for p in parts], dtype=np.int64)
        lengths = np.array([u.size for u in uniforms], dtype=np.int64)
        row_of = np.repeat(rows, lengths)
        sizes = np.array([self.rows[r].size for r in rows], dtype=np.int64)
        picks = (np.concatenate(uniforms) * np.repeat(sizes, lengths)).astype(np.int64)
        live = self.active[row_of, picks]
        picks = picks[live]
        if picks.size == 0:
            return NO_SLOTS, np.zeros(rows.size, dtype=np.int64)
        # Groups stay in the order of ``rows`` and draws in order within each: the first
        # occurrence of each (row, slot), then each row's first ``n`` of those.
        position = np.repeat(np.arange(rows.size), lengths)[live]
        first = first_occurrences(position * self.width + picks)
        position = position[first]
        keep = ranks(position) < wanted[position]
        return picks[first][keep], np.bincount(position[keep], minlength=rows.size)

    def close(self, rows: np.ndarray, slots: np.ndarray) -> None:
        """Deactivate ``slots`` of ``rows`` (parallel arrays, grouped by row), as each
        row's :meth:`PositionArrays.close` called in turn."""
        if slots.size == 0:
            return
        touched, counts = _run_lengths(rows)
        if touched.size <= FEW_ROWS:
            ends = np.cumsum(counts).tolist()
            for row, start, end in zip(touched.tolist(), [0, *ends[:-1]], ends, strict=True):
                self.rows[row].close(slots[start:end])
            return
        live = self.active[rows, slots]
        rows, slots = rows[live], slots[live]
        if slots.size == 0:
            return
        self.active[rows, slots] = False
        # Each row pushes its slots on its own free list, in the order given.
        touched, counts = _run_lengths(rows)
        tops = np.array([self.rows[r]._free_count for r in touched], dtype=np.int64)
        self.free[rows, np.repeat(tops, counts) + ranks(rows)] = slots
        for row, count in zip(touched.tolist(), counts.tolist(), strict=True):
            book = self.rows[row]
            book.count -= count
            book._free_count += count

    def add(self, rows: np.ndarray, counts: np.ndarray, **values: np.ndarray) -> np.ndarray:
        """Open ``counts[i]`` positions in row ``rows[i]``, as each row's
        :meth:`PositionArrays.add` called in turn; ``values`` are flat columns, grouped by
        row (omitted fields are zero). Returns the slots, grouped alike."""
        total = int(counts.sum())
        if total == 0:
            return NO_SLOTS
        if rows.size <= FEW_ROWS:
            ends = np.cumsum(counts).tolist()
            return np.concatenate(
                [
                    self.rows[row].add(**{f: v[start:end] for f, v in values.items()})
                    for row, start, end in zip(rows.tolist(), [0, *ends[:-1]], ends, strict=True)
                ]
            )
        free_counts = np.array([self.rows[r]._free_count for r in rows], dtype=np.int64)
        sizes = np.array([self.rows[r].size for r in rows], dtype=np.int64)
        reuse = np.minimum(counts, free_counts)
        fresh = counts - reuse
        for row, needed in zip(rows.tolist(), (sizes + fresh).tolist(), strict=True):
            book = self.rows[row]
            if needed > book.capacity:
                book._grow(needed)  # as a lone book would: its own capacity doubles
        row_of = np.repeat(rows, counts)
        rank = ranks(np.repeat(np.arange(rows.size), counts))
        # A row's first ``reuse`` slots come off the top of its free list, in list order
        # (as PositionArrays.add takes them); the rest extend its high-water mark.
        from_free = rank < np.repeat(reuse, counts)
        base = np.repeat(free_counts - reuse, counts)
        slots = np.where(
            from_free,
            self.free[row_of, np.minimum(base + rank, self.width - 1)],
            np.repeat(sizes - reuse, counts) + rank,
        )
        for i, field in enumerate(self.fields):
            self.data[row_of, i, slots] = values.get(field, 0.0)
        self.active[row_of, slots] = True
        for row, n, reused, grown in zip(
            rows.tolist(), counts.tolist(), reuse.tolist(), fresh.tolist(), strict=True
        ):
            book = self.rows[row]
            book._free_count -= reused
            book.size += grown
            book.count += n
        return slots


class StackRegistry:
    """The position stacks of one world, or shared by the worlds of a batch, by kind.

    Worlds of a batch (:class:`~liqnet.market.world_batch.WorldBatch`) share one
    registry, so the books of one kind across all its worlds are rows of one stack and a
    stacked type's edit of ``B`` worlds is one array program. A world's rows are those
    its protocols attach while it is built (:meth:`claim`); when it ends, :meth:`release`
    frees them for the next world. A book attached later stays until the registry goes.
    """

    def __init__(self) -> None:
        self.stacks: dict[str, PositionStack] = {}
        """Each kind's stack."""

    def stack(self, kind: str, fields: tuple[str, ...]) -> PositionStack:
        """The stack of ``kind`` (made on first ask).

        Raises:
            ValueError: ``kind`` already holds books with other fields.
        """
        stack = self.stacks.get(kind)
        if stack is None:
            stack = self.stacks[kind] = PositionStack(fields)
        elif stack.fields != fields:
            raise ValueError(f"position stack {kind!r} holds {stack.fields}, not {fields}")
        return stack

    @contextlib.contextmanager
    def claim(self) -> Iterator[dict[str, list[int]]]:
        """Within the block, note the rows attached in each stack (filled on exit)."""
        before = {kind: stack.occupied() for kind, stack in self.stacks.items()}
        claimed: dict[str, list[int]] = {}
        yield claimed
        for kind, stack in self.stacks.items():
            rows = sorted(stack.occupied() - before.get(kind, set()))
            if rows:
                claimed[kind] = rows

    def release(self, claimed: dict[str, list[int]]) -> None:
        """Free the rows of a :meth:`claim` (see :meth:`PositionStack.release`)."""
        for kind, rows in claimed.items():
            self.stacks[kind].release(rows)


def _run_lengths(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of the runs of equal, contiguous entries and the runs' lengths."""
    starts, lengths = _runs(values)
    return values[starts], lengths
