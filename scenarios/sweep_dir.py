"""The sweep directory: run folders that appear whole, the one-writer lock, the progress bar.

``runs/<run_id>/`` appears by one rename with ``row.json`` inside, so a folder with
``row.json`` is a finished run (done or failed); see :mod:`liqnet.scenarios.sweep`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from liqnet.scenarios.sweep_schema import SweepError

ROW = "row.json"


def write_run(runs: Path, row: dict[str, Any], files: dict[str, bytes]) -> None:
    """Write one run directory under a temporary name, then rename it into place."""
    final = runs / row["run_id"]
    tmp = runs / f".tmp-{row['run_id']}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / ROW).write_text(json.dumps(row, indent=1, default=str), encoding="utf-8")
        if final.exists():  # a run directory whose row.json was removed: replace it whole
            trash = runs / f".trash-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_row(runs: Path, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((runs / run_id / ROW).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


@contextmanager
def lock(out: Path) -> Iterator[None]:
    """One sweep at a time per directory; a lock left by a dead process is taken over."""
    lock, mine = out / ".sweep.lock", out / f".sweep.lock.{os.getpid()}"
    mine.write_text(str(os.getpid()), encoding="utf-8")
    try:
        for _ in range(2):
            try:
                os.link(mine, lock)  # atomic: the lock appears with its pid already in it
                break
            except FileExistsError:
                text = lock.read_text(encoding="utf-8").strip()
                pid = int(text) if text.isdigit() else 0
                if _alive(pid):
                    raise SweepError(f"{out}: another sweep (pid {pid}) is writing here") from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
        else:
            raise SweepError(f"{out}: could not take {lock}")
    finally:
        mine.unlink(missing_ok=True)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class SweepProgress:
    """Rich progress bar: runs done, failed, remaining, elapsed and estimated time left.

    It shows from the start: ``total`` is the plan's length, known before any run is built;
    a run found already done as the plan reaches it leaves the total (:meth:`skip`), so the
    estimate of time left counts only runs computed."""

    def __init__(self, name: str, total: int, enabled: bool, console: Console):
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
            TextColumn("{task.fields[remaining]} remaining"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self.name = name
        self.task = self.bar.add_task(name, total=total, done=0, failed=0, remaining=total)
        self.done = self.failed = self.skipped = 0
        self.total = total

    def skip(self) -> None:
        """Count one run found already done: it leaves the total."""
        self.skipped += 1
        self.total -= 1
        self.bar.update(
            self.task,
            total=self.total,
            description=f"{self.name} ({self.skipped} already done)",
            remaining=self.total - self.done - self.failed,
        )

    def advance(self, failed: bool) -> None:
        """Count one finished run."""
        self.failed += failed
        self.done += not failed
        remaining = self.total - self.done - self.failed
        self.bar.update(
            self.task, advance=1, done=self.done, failed=self.failed, remaining=remaining
        )
