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

import numpy as np

_MIN_CAPACITY = 64


class PositionArrays:
    """Growable parallel float arrays, one slot per position.

    Args:
        fields: Names of the float64 columns (e.g. ``("collateral", "scaled_debt")``).
        capacity: Initial number of slots.
    """

    def __init__(self, fields: tuple[str, ...], capacity: int = _MIN_CAPACITY) -> None:
        capacity = max(int(capacity), _MIN_CAPACITY)
        self.fields = fields
        self.columns: dict[str, np.ndarray] = {f: np.zeros(capacity) for f in fields}
        self.active = np.zeros(capacity, dtype=bool)
        self.size = 0  # high-water mark: slots [0, size) have been used
        self.count = 0  # number of active positions
        self._free: list[int] = []

    @property
    def capacity(self) -> int:
        """Number of allocated slots."""
        return self.active.shape[0]

    def __getitem__(self, field: str) -> np.ndarray:
        return self.columns[field]

    def _grow(self, needed: int) -> None:
        new_capacity = max(self.capacity * 2, needed)
        for field, column in self.columns.items():
            grown = np.zeros(new_capacity)
            grown[: column.shape[0]] = column
            self.columns[field] = grown
        active = np.zeros(new_capacity, dtype=bool)
        active[: self.active.shape[0]] = self.active
        self.active = active

    def add(self, **values: np.ndarray) -> np.ndarray:
        """Append positions; returns their slot numbers. Freed slots are reused first."""
        n = len(next(iter(values.values())))
        reuse = min(n, len(self._free))
        slots = np.empty(n, dtype=np.int64)
        if reuse:
            slots[:reuse] = self._free[-reuse:]
            del self._free[-reuse:]
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

    def close(self, slots: np.ndarray) -> None:
        """Deactivate positions and zero their columns (closed positions hold nothing)."""
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[self.active[slots]]
        if slots.size == 0:
            return
        self.active[slots] = False
        for column in self.columns.values():
            column[slots] = 0.0
        self.count -= slots.size
        self._free.extend(slots.tolist())

    def active_slots(self) -> np.ndarray:
        """Slot numbers of all active positions (O(n); for reports, not the hot path)."""
        return np.flatnonzero(self.active[: self.size])


class LiquidationIndex:
    """Positions sorted by liquidation key, with a dirty set and lazy re-sorting.

    The owner computes keys and passes them in; a slot's key is only read for dirty
    slots and at rebuild time. Optional *value columns* get prefix sums at rebuild, so
    aggregates over all positions beyond a threshold (e.g. the total shortfall of
    underwater loans) also cost O(log n + dirty).

    Args:
        arrays: The position storage this index covers.
        key: Function returning the current key for an array of slots.
        value_columns: Names of columns whose tail sums :meth:`tail_sums` can return.
        rebuild_fraction: Rebuild once dirty slots exceed this share of active positions.
    """

    def __init__(
        self,
        arrays: PositionArrays,
        key: callable,
        value_columns: tuple[str, ...] = (),
        rebuild_fraction: float = 0.05,
    ) -> None:
        self.arrays = arrays
        self.key = key
        self.value_columns = value_columns
        self.rebuild_fraction = rebuild_fraction
        self.rebuilds = 0
        self._dirty: set[int] = set()
        self.rebuild()

    def rebuild(self) -> None:
        """Sort all active positions by their current key and clear the dirty set."""
        slots = self.arrays.active_slots()
        keys = self.key(slots)
        order = np.argsort(keys, kind="stable")
        self._slots = slots[order]
        self._keys = keys[order]
        # Snapshot of what the sorted arrays were built from, per slot, so dirty slots'
        # stale contributions can be removed exactly from the prefix sums.
        capacity = self.arrays.capacity
        self._in_sorted = np.zeros(capacity, dtype=bool)
        self._in_sorted[self._slots] = True
        self._snapshot_key = np.zeros(capacity)
        self._snapshot_key[self._slots] = self._keys
        self._snapshot = {c: self.arrays[c].copy() for c in self.value_columns}
        self._prefix = {
            c: np.concatenate(([0.0], np.cumsum(self.arrays[c][self._slots])))
            for c in self.value_columns
        }
        self._dirty.clear()
        self.rebuilds += 1

    def mark_dirty(self, slots: np.ndarray) -> None:
        """Record that these slots' keys or values changed (or they opened or closed)."""
        self._dirty.update(np.asarray(slots, dtype=np.int64).tolist())
        limit = max(_MIN_CAPACITY, int(self.rebuild_fraction * max(self.arrays.count, 1)))
        if len(self._dirty) > limit or self.arrays.capacity != self._in_sorted.shape[0]:
            self.rebuild()

    def _dirty_array(self) -> np.ndarray:
        return np.fromiter(self._dirty, dtype=np.int64, count=len(self._dirty))

    def _sorted_range(self, threshold: float, above: bool) -> np.ndarray:
        if above:
            start = np.searchsorted(self._keys, threshold, side="right")
            return self._slots[start:]
        stop = np.searchsorted(self._keys, threshold, side="left")
        return self._slots[:stop]

    def select(self, threshold: float, above: bool) -> np.ndarray:
        """Active slots whose current key is strictly above (or below) ``threshold``."""
        candidates = self._sorted_range(threshold, above)
        if not self._dirty:
            return candidates
        dirty = self._dirty_array()
        if candidates.size:
            # Sorted entries of dirty slots are stale; the dirty check below replaces them.
            stale = np.isin(candidates, dirty, assume_unique=False)
            candidates = candidates[~stale]
        live = dirty[self.arrays.active[dirty]]
        if live.size:
            keys = self.key(live)
            live = live[keys > threshold] if above else live[keys < threshold]
            candidates = np.concatenate((candidates, live))
        return candidates

    def tail_sums(self, threshold: float, above: bool) -> dict[str, float]:
        """Sums of the value columns over active slots with key beyond ``threshold``."""
        if above:
            start = np.searchsorted(self._keys, threshold, side="right")
            sums = {c: float(p[-1] - p[start]) for c, p in self._prefix.items()}
        else:
            stop = np.searchsorted(self._keys, threshold, side="left")
            sums = {c: float(p[stop]) for c, p in self._prefix.items()}
        if self._dirty:
            dirty = self._dirty_array()
            # Remove what the snapshot counted for dirty slots, add their current values.
            was_in = self._in_sorted[dirty]
            old_keys = self._snapshot_key[dirty]
            old_hit = was_in & ((old_keys > threshold) if above else (old_keys < threshold))
            live = self.arrays.active[dirty]
            new_hit = np.zeros(dirty.size, dtype=bool)
            if live.any():
                keys = self.key(dirty[live])
                new_hit[live] = (keys > threshold) if above else (keys < threshold)
            for c in self.value_columns:
                sums[c] += float(
                    self.arrays[c][dirty[new_hit]].sum() - self._snapshot[c][dirty[old_hit]].sum()
                )
        return sums
