"""Columnar event log: one row per liquidation (or other forced action) of a run."""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = (
    "step",
    "round",
    "kind",
    "protocol",
    "book",
    "asset",
    "position",
    "repaid_usd",
    "seized_units",
    "proceeds_usd",
    "reward_usd",
    "bad_debt_usd",
    "oracle_price",
)


class EventLog:
    """Appends batches of events as arrays; builds a DataFrame once at the end."""

    def __init__(self) -> None:
        self._batches: list[dict[str, np.ndarray]] = []
        self.count = 0

    def append(self, **columns: np.ndarray | float | int | str) -> None:
        """Add a batch; scalars are broadcast to the batch length of ``position``."""
        n = len(columns["position"])
        batch = {}
        for name in EVENT_COLUMNS:
            value = columns[name]
            batch[name] = value if isinstance(value, np.ndarray) else np.full(n, value)
        self._batches.append(batch)
        self.count += n

    def to_frame(self) -> pd.DataFrame:
        """All events, in the order they happened."""
        if not self._batches:
            frame = pd.DataFrame({c: [] for c in EVENT_COLUMNS})
            numeric = [c for c in EVENT_COLUMNS if c not in ("kind", "protocol", "book", "asset")]
            return frame.astype({c: float for c in numeric})
        return pd.DataFrame(
            {c: np.concatenate([b[c] for b in self._batches]) for c in EVENT_COLUMNS}
        )
