"""Struct-of-arrays position storage and a lazily re-sorted liquidation index.

Every protocol keeps its positions as parallel NumPy arrays (one slot per position) and
finds liquidatable positions through :class:`LiquidationIndex`: positions are sorted by a
*liquidation key* chosen so that the common, market-wide quantities (price, borrow
index, funding index, margin ratio) drop out of the ordering. A liquidation check is then
one ``searchsorted`` instead of a scan, and a step costs O(k log n) for k liquidations.

Positions changed since the last sort (opened, partially liquidated, closed) are held in a
small *dirty* set that is checked directly; the index is rebuilt only when that set grows
past a fraction of the book, so sorting is amortised over many steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from liqnet.protocols.index_stack import IndexStack
    from liqnet.protocols.position_stack import PositionStack

_MIN_CAPACITY = 64
NO_SLOTS = np.empty(0, dtype=np.int64)
NO_SLOTS.flags.writeable = False
"""An empty, read-only array of slot numbers."""


class PositionArrays:
    """Growable parallel float arrays, one slot per position.

    Args:
        fields: Names of the float64 columns (e.g. ``("collateral", "scaled_debt")``).
        capacity: Initial number of slots.
        stack: Store the columns, flags and free list as a row of this stack's shared
            arrays (:mod:`liqnet.protocols.position_stack`); the book behaves the same.
    """

    def __init__(
        self,
        fields: tuple[str, ...],
        capacity: int = _MIN_CAPACITY,
        stack: PositionStack | None = None,
    ) -> None:
        capacity = max(int(capacity), _MIN_CAPACITY)
        self.fields = fields
        self.size = 0  # high-water mark: slots [0, size) have been used
        self.count = 0  # number of active positions
        self._free_count = 0
        # Slots this book may use: with a stack, its own growth history (the stack's
        # storage may be wider), so the index rebuilds exactly when a lone book would.
        self._capacity = capacity
        self.stack = stack
        """The stack whose storage this book is a row of (``None``: its own storage)."""
        self.row = stack.attach(self) if stack is not None else -1
        """This book's row in :attr:`stack`."""
        if stack is not None:
            return
        # One 2-D block, one row per field: sums over a set of slots for every field are
        # then a single gather and a single reduction.
        self.bind(
            np.zeros((len(fields), capacity)),
            np.zeros(capacity, dtype=bool),
            # Freed slots, reused last-in first-out (a NumPy stack: no Python ints per slot).
            np.empty(capacity, dtype=np.int64),
        )

    def bind(self, data: np.ndarray, active: np.ndarray, free: np.ndarray) -> None:
        """Use these arrays (a stack's row views, or storage of its own) as storage."""
        self.data = data
        self.columns: dict[str, np.ndarray] = {f: data[i] for i, f in enumerate(self.fields)}
        self.active = active
        self._free = free

    @property
    def capacity(self) -> int:
        """Number of allocated slots."""
        return self._capacity

    def __getitem__(self, field: str) -> np.ndarray:
        return self.columns[field]

    def _grow(self, needed: int) -> None:
        new_capacity = max(self.capacity * 2, needed)
        if self.stack is not None:
            self.stack.reserve(new_capacity)
            self._capacity = new_capacity
            return
        data = np.zeros((len(self.fields), new_capacity))
        data[:, : self.capacity] = self.data
        self.data = data
        self.columns = {f: data[i] for i, f in enumerate(self.fields)}
        active = np.zeros(new_capacity, dtype=bool)
        active[: self.active.shape[0]] = self.active
        self.active = active
        free = np.empty(new_capacity, dtype=np.int64)
        free[: self._free_count] = self._free[: self._free_count]
        self._free = free
        self._capacity = new_capacity

    def add(self, **values: np.ndarray | float) -> np.ndarray:
        """Append positions; returns their slot numbers. Freed slots are reused first.

        The first column given sets the batch size and must be an array; later ones may
        be scalars, shared by the whole batch (e.g. the step a batch of lines opened at).
        Omitted fields are zero.
        """
        first = next(iter(values.values()))
        if isinstance(first, float | int):
            raise TypeError("the first column sets the batch size: it must be an array")
        n = len(first)
        reuse = min(n, self._free_count)
        slots = np.empty(n, dtype=np.int64)
        if reuse:
            self._free_count -= reuse
            slots[:reuse] = self._free[self._free_count : self._free_count + reuse]
        fresh = n - reuse
        if fresh:
            if self.size + fresh > self.capacity:
                self._grow(self.size + fresh)
            slots[reuse:] = np.arange(self.size, self.size + fresh)
            self.size += fresh
        for field in self.fields:
            self.columns[field][slots] = values.get(field, 0.0)
        self.active[slots] = True
        self.count += n
        return slots

    def block(self, slots: np.ndarray) -> np.ndarray:
        """All fields of ``slots`` as a (fields, len(slots)) array (a copy)."""
        return self.data[:, slots]

    def close(self, slots: np.ndarray) -> None:
        """Deactivate positions (their columns are stale until the slot is reused)."""
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[self.active[slots]]
        if slots.size == 0:
            return
        self.active[slots] = False
        self.count -= slots.size
        self._free[self._free_count : self._free_count + slots.size] = slots
        self._free_count += slots.size

    def sample_active(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Up to ``n`` distinct active slots drawn uniformly (rejection; cheap when dense)."""
        if n <= 0 or self.count == 0:
            return np.empty(0, dtype=np.int64)
        # random() * size is several times cheaper than integers() for small draws.
        return self.pick_from(rng.random(2 * n + 4), n)

    def pick_from(self, uniforms: np.ndarray, n: int) -> np.ndarray:
        """:meth:`sample_active`'s picks from its uniform draws (``2 n + 4`` of them)."""
        picks = (uniforms * self.size).astype(np.int64)
        picks = picks[self.active[picks]]
        if picks.size == 0:
            return NO_SLOTS
        # Distinct picks in the order drawn (a dict of Python ints cost more from a few
        # dozen on).
        return picks[first_occurrences(picks)[:n]]

    def active_slots(self) -> np.ndarray:
        """Slot numbers of all active positions (O(n); for reports, not the hot path)."""
        return self.active[: self.size].nonzero()[0]  # (flatnonzero: 4 Python calls more)


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Sorted indices of the first occurrence of each distinct key (by a stable sort)."""
    order = keys.argsort(kind="stable")
    ranked = keys[order]
    first = order[np.concatenate(([True], ranked[1:] != ranked[:-1]))]
    first.sort()
    return first


def _grown(buffer: np.ndarray, used: int, size: int) -> np.ndarray:
    """A copy of ``buffer`` with room for ``size`` entries, the first ``used`` kept."""
    grown = np.empty(size, dtype=buffer.dtype)
    grown[:used] = buffer[:used]
    return grown


class LiquidationIndex:
    """Positions sorted by liquidation key, with a dirty set and lazy re-sorting.

    The owner computes keys and passes them in; a slot's key is only read for dirty
    slots and at rebuild time. :meth:`tail_sums` adds up *value columns* over the
    positions beyond a threshold (e.g. the shortfall of underwater loans): that tail is
    what :meth:`select` returns, small outside a crash, so no prefix sums over the whole
    book are kept (they made every rebuild several times dearer).

    Args:
        arrays: The position storage this index covers.
        key: Function returning the current key for an array of slots.
        value_columns: Names of columns whose tail sums :meth:`tail_sums` can return.
        rebuild_fraction: Rebuild once dirty slots exceed this share of the book.
        stacked: Keep the dirty-set state in the stack of ``arrays`` (when it is a row of
            one), so :meth:`IndexStack.mark` can mark many books at once.
    """

    def __init__(
        self,
        arrays: PositionArrays,
        key: Callable[[np.ndarray], np.ndarray],
        value_columns: tuple[str, ...] = (),
        rebuild_fraction: float = 1.0 / 4.0,
        stacked: bool = False,
    ) -> None:
        self.arrays = arrays
        self.key = key
        self.value_columns = value_columns
        self.rebuild_fraction = rebuild_fraction
        self.rebuilds = 0
        self.version = 0  # bumped on every change, for owners' caches
        self._dirty_count = 0
        # None until the first rebuild, so rebuild() sorts from scratch and sizes the
        # per-slot flags; then the book capacity they were sized for.
        self._indexed_capacity: int | None = None
        self.stack: IndexStack | None = (
            arrays.stack.indexes() if stacked and arrays.stack is not None else None
        )
        """The :class:`IndexStack` holding this index's dirty set (``None``: its own)."""
        if self.stack is not None:
            self.stack.attach(self)
        else:
            # Dirty slots, each once, and their current keys (NaN once closed: no
            # comparison selects them) in growable parallel buffers: an edit costs O(k),
            # not O(dirty).
            self.bind(
                np.zeros(0, dtype=bool),
                np.zeros(0, dtype=np.int64),
                np.empty(4 * _MIN_CAPACITY, dtype=np.int64),
                np.empty(4 * _MIN_CAPACITY),
            )
        self.rebuild()

    def bind(
        self, is_dirty: np.ndarray, position: np.ndarray, buffer: np.ndarray, keys: np.ndarray
    ) -> None:
        """Use these arrays (a stack's row views, or its own) for the dirty set: per-slot
        flags and buffer positions, and the buffer of dirty slots and their keys."""
        self._is_dirty, self._dirty_position = is_dirty, position
        self._dirty_buffer, self._dirty_keys = buffer, keys

    def rebuild(self, full: bool = False) -> None:
        """Re-sort: merge the dirty slots into the sorted order, or sort from scratch.

        ``full=True`` re-sorts every active slot (after bulk edits that were not marked).

        Merging costs O(n + d log d): the d dirty keys are sorted and merged with the
        n sorted ones in a linear pass; a full argsort happens only at construction and
        when the storage grows.
        """
        capacity = self.arrays.capacity
        if full or self._indexed_capacity != capacity:
            slots = self.arrays.active_slots()
            keys = self.key(slots)
            # Quicksort: several times faster than a stable sort, and deterministic; the
            # order of positions with equal keys is of no consequence.
            order = keys.argsort()
            self._slots, self._keys = slots[order], keys[order]
            if self.stack is None:
                self._is_dirty = np.zeros(capacity, dtype=bool)
                self._dirty_position = np.zeros(capacity, dtype=np.int64)
            else:
                self._is_dirty[:] = False  # (positions are only read for dirty slots)
            self._indexed_capacity = capacity
        else:
            dirty, keys = self._dirty_state()
            live = keys == keys  # closed slots have NaN keys
            live, keys = dirty[live], keys[live]
            keep = ~self._is_dirty[self._slots]
            order = keys.argsort()
            # Two sorted runs, merged by a stable sort: Timsort finds the runs and merges
            # them in one linear pass (cheaper than np.insert's search and scatter).
            keys = np.concatenate((self._keys[keep], keys[order]))
            merged = keys.argsort(kind="stable")
            self._keys = keys[merged]
            self._slots = np.concatenate((self._slots[keep], live[order]))[merged]
            self._is_dirty[dirty] = False
        self._dirty_count = 0
        self._dirty_bounds = (np.inf, -np.inf)  # of the dirty keys, as _bounds of all
        self._bounds = (
            (float(self._keys[0]), float(self._keys[-1])) if self._keys.size else (np.inf, -np.inf)
        )
        # A merge costs O(n); dirty slots cost O(d) only for queries that get past the
        # O(1) bounds check. Rebuilding once d reaches a fixed share of n keeps the
        # amortised merge cost per edited position constant, whatever the book size.
        self._dirty_limit = max(4 * _MIN_CAPACITY, int(self.rebuild_fraction * self._slots.size))
        self.rebuilds += 1
        self.version += 1

    def mark_dirty(self, slots: np.ndarray) -> None:
        """Record that these slots' keys or values changed (or they opened or closed)."""
        slots = np.asarray(slots, dtype=np.int64)
        if self.arrays.capacity != self._indexed_capacity:
            self.rebuild(full=True)  # storage grew: re-sort everything, new slots included
            return
        fresh = slots[~self._is_dirty[slots]]
        if fresh.size > 1:
            # Sorted and deduplicated, as np.unique would, at a third of its overhead.
            fresh = np.sort(fresh)
            fresh = fresh[np.concatenate(([True], fresh[1:] != fresh[:-1]))]
        start, end = self._dirty_count, self._dirty_count + fresh.size
        if end > self._dirty_buffer.size:
            size = max(2 * self._dirty_buffer.size, end)
            if self.stack is not None:
                self.stack.reserve(size)
            else:
                self._dirty_buffer = _grown(self._dirty_buffer, start, size)
                self._dirty_keys = _grown(self._dirty_keys, start, size)
        self._dirty_buffer[start:end] = fresh
        self._dirty_position[fresh] = np.arange(start, end)
        self._dirty_count = end
        self._is_dirty[fresh] = True
        # Keys only change when the owner edits a position and then marks it, so they are
        # computed once here; bounds stay valid (loose) as slots are marked.
        active = self.arrays.active[slots]
        keys = np.full(slots.size, np.nan)
        if active.any():
            live_keys = self.key(slots[active])
            keys[active] = live_keys
            # (ufunc reductions directly: ndarray.min/max add a Python wrapper per call.)
            low, high = float(np.minimum.reduce(live_keys)), float(np.maximum.reduce(live_keys))
            self._bounds = (min(self._bounds[0], low), max(self._bounds[1], high))
            self._dirty_bounds = (min(self._dirty_bounds[0], low), max(self._dirty_bounds[1], high))
        self._dirty_keys[self._dirty_position[slots]] = keys
        self.version += 1
        if self._dirty_count > self._dirty_limit:
            self.rebuild()

    def _dirty_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Dirty slots and their current keys (NaN for closed ones), as views."""
        return self._dirty_buffer[: self._dirty_count], self._dirty_keys[: self._dirty_count]

    def select(self, threshold: float, above: bool) -> np.ndarray:
        """Active slots whose current key is strictly above (or below) ``threshold``."""
        # No key beyond the threshold: O(1), and inline, as the cascade asks every book
        # each round. The bounds include stale sorted entries, so they may be loose but
        # never wrong; in a calm market almost every query ends here.
        if (self._bounds[1] <= threshold) if above else (self._bounds[0] >= threshold):
            return NO_SLOTS
        if above:
            candidates = self._slots[self._keys.searchsorted(threshold, "right") :]
        else:
            candidates = self._slots[: self._keys.searchsorted(threshold, "left")]
        if not self._dirty_count:
            return candidates
        if candidates.size:
            # Sorted entries of dirty slots are stale; the dirty check below replaces them.
            candidates = candidates[~self._is_dirty[candidates]]
        low, high = self._dirty_bounds
        if (high <= threshold) if above else (low >= threshold):
            return candidates  # no dirty key beyond the threshold (new loans are healthy)
        dirty, keys = self._dirty_state()
        hit = dirty[keys > threshold] if above else dirty[keys < threshold]
        return np.concatenate((candidates, hit)) if hit.size else candidates

    def tail_sums(self, threshold: float, above: bool) -> dict[str, float]:
        """Sums of the value columns over the slots :meth:`select` returns (O(tail))."""
        slots = self.select(threshold, above)
        if slots.size == 0:
            return dict.fromkeys(self.value_columns, 0.0)
        return {c: float(np.add.reduce(self.arrays[c][slots])) for c in self.value_columns}
