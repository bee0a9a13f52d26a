"""Columnar event log: one row per liquidation (or other forced action) of a run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from liqnet.core.result import EVENT_COLUMNS

__all__ = ["EVENT_COLUMNS", "EventLog"]


class EventLog:
    """Appends batches of events as arrays; builds a DataFrame once at the end."""

    def __init__(self) -> None:
        # (batch length, columns): a column is an array of that length or a scalar.
        self._batches: list[tuple[int, dict[str, np.ndarray | float | int | str]]] = []
        self.count = 0

    def append(self, *, position: np.ndarray, **columns: np.ndarray | float | int | str) -> None:
        """Add a batch; scalars are broadcast to the batch length of ``position``.

        Broadcasting waits until :meth:`to_frame`: appending is on the cascade's hot path.
        """
        n = len(position)
        columns["position"] = position
        self._batches.append((n, columns))
        self.count += n

    def to_frame(self) -> pd.DataFrame:
        """All events, in the order they happened."""
        if not self._batches:
            text = ("kind", "protocol", "book", "asset")
            return pd.DataFrame(
                {c: pd.Series([], dtype=str if c in text else float) for c in EVENT_COLUMNS}
            )

        def column(name: str) -> np.ndarray:
            parts = [
                v if isinstance(v := batch[name], np.ndarray) else np.full(n, v)
                for n, batch in self._batches
            ]
            return np.concatenate(parts)

        return pd.DataFrame({c: column(c) for c in EVENT_COLUMNS})
