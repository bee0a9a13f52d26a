"""Historical replay files: a CSV of ``timestamp,price`` becomes a replay's knots.

The schema holds knots only (``liqnet.core.schema.ReplaySpec``; core reads no files).
The loader calls :func:`mark_replay_files` on every scenario file it reads (a CSV path
is relative to that file, a built-in's to ``scenarios/builtin/``) and
:func:`read_replay_csvs` before validating, when ``dt_hours`` and ``steps`` are final:
the CSV is resampled onto the step grid and recorded in ``csv`` and ``csv_grid``.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from liqnet.core.errors import ScenarioError
from liqnet.core.schema import MAX_PRICE, MIN_PRICE, shorten

__all__ = [
    "MAX_CSV_BYTES",
    "MAX_CSV_ROWS",
    "mark_replay_files",
    "read_price_csv",
    "read_replay_csvs",
    "resample",
]

MAX_CSV_BYTES = 64 << 20
"""Largest replay CSV read (64 MiB: a million rows of ISO timestamps and prices)."""
MAX_CSV_ROWS = 1_000_000
"""Most data rows of a replay CSV (two years of minute bars)."""
PRICE_MATCH = 1e-9
"""Largest relative gap between a CSV's first price and the asset's initial ``price``."""


def _replays(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(asset name, asset table, replay table)`` of every replay table in ``raw``."""
    market = raw.get("market")
    assets = market.get("assets") if isinstance(market, dict) else None
    if not isinstance(assets, dict):
        return []
    return [
        (name, table, table["replay"])
        for name, table in assets.items()
        if isinstance(table, dict) and isinstance(table.get("replay"), dict)
    ]


def _error(origin: str, field: str, message: str) -> ScenarioError:
    return ScenarioError(f"{origin}: invalid scenario\n  {field}: {message}")


def mark_replay_files(raw: dict[str, Any], folder: Path, origin: str) -> dict[str, Any]:
    """One scenario file's replay tables, ready to merge: a CSV path made absolute
    (relative to ``folder``, the file's own), and the other source (knots or CSV) set to
    ``None`` so that a file's replay replaces its base's rather than mixing with it.

    Raises:
        ScenarioError: A replay table gives both ``knots`` and ``csv``.
    """
    for name, _, replay in _replays(raw):
        field = f"market.assets.{name}.replay"
        if "csv" in replay and "knots" in replay:
            raise _error(origin, field, "give knots or csv, not both")
        if isinstance(replay.get("csv"), str):
            path = Path(replay["csv"])
            replay["csv"] = str(path if path.is_absolute() else folder / path)
            replay["knots"] = replay["csv_grid"] = None
        elif "knots" in replay:
            replay["csv"] = replay["csv_grid"] = None
    return raw


def read_replay_csvs(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    """``raw`` with each replay CSV read and resampled into knots for its ``dt_hours``
    and ``steps`` (a copy where anything changed). Knots already resampled for this grid
    (a validated scenario's dump) are kept without reading the file again.

    Raises:
        ScenarioError: Naming the field, and the file, line and column of a bad value.
    """
    dt_hours, steps = raw.get("dt_hours", 1.0), raw.get("steps")
    if not _is_number(dt_hours) or not 0 < dt_hours <= 1e6 or type(steps) is not int:
        return raw  # the schema names the bad dt_hours or steps
    out = raw
    for name, table, replay in _replays(raw):
        path, knots, grid = replay.get("csv"), replay.get("knots"), replay.get("csv_grid")
        if not isinstance(path, str):
            continue  # no CSV, or one of the wrong type (the schema names it)
        field = f"market.assets.{name}.replay.csv = {shorten(path)}"
        if grid is None and knots is not None:
            raise _error(origin, field, "give knots or csv, not both")
        if _fits(grid, dt_hours, steps) and knots is not None:
            continue
        try:
            seconds, prices = read_price_csv(Path(path))
            new_knots = resample(seconds, prices, float(dt_hours), steps)
        except ValueError as err:
            raise _error(origin, field, str(err)) from None
        start, first = table.get("price"), float(prices[0])
        if _is_number(start) and abs(first - start) > PRICE_MATCH * abs(start):
            raise _error(
                origin,
                field,
                f"its first price {first!r} is not the asset's initial price {start!r} "
                f"(the replay starts there at step 0); set market.assets.{name}.price = "
                f"{first!r}",
            )
        if out is raw:
            out = {**raw, "market": {**raw["market"], "assets": dict(raw["market"]["assets"])}}
        out["market"]["assets"][name] = {
            **table,
            "replay": {**replay, "knots": new_knots, "csv_grid": [float(dt_hours), steps]},
        }
    return out


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fits(grid: object, dt_hours: float, steps: int) -> bool:
    """Knots resampled for ``grid = (dt_hours, steps)`` serve this run (same step, no
    more steps)."""
    return (
        isinstance(grid, list | tuple)
        and len(grid) == 2
        and grid[0] == dt_hours
        and _is_number(grid[1])
        and grid[1] >= steps
    )


def read_price_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds and prices of a ``timestamp,price`` CSV (UTF-8, a header row; other
    columns ignored). A timestamp is unix seconds or ISO-8601 (UTC unless it says).

    Raises:
        ValueError: Naming the file, and the line and column of a bad value.
    """
    where = shorten(str(path))
    if not path.is_file():
        raise ValueError(f"{where} does not exist")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ValueError(f"{where}: {size:,} bytes; a replay CSV is at most {MAX_CSV_BYTES:,}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{where}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    if "timestamp" not in header or "price" not in header:
        raise ValueError(
            f"{where} line 1: header {shorten(header)} must name the columns timestamp and price"
        )
    ti, pi = header.index("timestamp"), header.index("price")
    seconds: list[float] = []
    prices: list[float] = []
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(seconds) >= MAX_CSV_ROWS:
            raise ValueError(f"{where} line {line}: more than {MAX_CSV_ROWS:,} rows")
        if len(row) <= max(ti, pi):
            raise ValueError(f"{where} line {line}: {len(row)} fields, header has {len(header)}")
        at = f"{where} line {line}, column"
        t = _timestamp(row[ti].strip(), f"{at} timestamp")
        if seconds and t <= seconds[-1]:
            raise ValueError(f"{at} timestamp: {row[ti].strip()!r} is not after the row before")
        seconds.append(t)
        prices.append(_price(row[pi].strip(), f"{at} price"))
    if len(seconds) < 2:
        raise ValueError(f"{where}: {len(seconds)} data rows; a replay needs at least 2")
    return np.array(seconds), np.array(prices)


def _timestamp(text: str, at: str) -> float:
    """Unix seconds of a cell: a number, or an ISO-8601 time (naive: UTC)."""
    try:
        value = float(text)
    except ValueError:
        try:
            # Python 3.10's fromisoformat does not read a "Z" (UTC) suffix.
            iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            moment = datetime.fromisoformat(iso)
        except ValueError:
            raise ValueError(
                f"{at}: {shorten(text)} is neither unix seconds nor an ISO-8601 time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{at}: {shorten(text)} is not a finite time")
    return value


def _price(text: str, at: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{at}: {shorten(text)} is not a number") from None
    if not MIN_PRICE <= value <= MAX_PRICE:  # also NaN
        raise ValueError(f"{at}: {shorten(text)} must lie in [{MIN_PRICE:g}, {MAX_PRICE:g}]")
    return value


def resample(
    seconds: np.ndarray, prices: np.ndarray, dt_hours: float, steps: int
) -> list[list[float]]:
    """Knots ``[step, price]`` at the end of steps ``1 .. min(steps, whole steps the CSV
    covers)``, step 0 at the first row: log-linear between rows, exactly a row's price
    where a step ends on a row's time.

    Raises:
        ValueError: The CSV covers less than one step.
    """
    offsets = seconds - seconds[0]
    step_seconds = dt_hours * 3600.0
    covered = math.floor(float(offsets[-1]) / step_seconds * (1.0 + 1e-12))
    n = min(steps, covered)
    if n < 1:
        raise ValueError(f"covers {offsets[-1]:g} s, less than one step of dt_hours = {dt_hours:g}")
    at = step_seconds * np.arange(1, n + 1, dtype=float)
    path = np.clip(np.exp(np.interp(at, offsets, np.log(prices))), MIN_PRICE, MAX_PRICE)
    # A step ending on a row's time takes the row's price itself (not exp(log(price))).
    rows = np.minimum(np.searchsorted(offsets, at), offsets.size - 1)
    on_row = offsets[rows] == at
    path[on_row] = prices[rows[on_row]]
    return [[k, float(p)] for k, p in zip(range(1, n + 1), path.tolist(), strict=True)]
