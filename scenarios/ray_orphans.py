"""Stopping what a killed driver's local Ray instance left running (Linux).

A local instance (``ray.init`` with no cluster to join) fate-shares with its driver: after
a ``kill -9`` of ``liqnet sweep`` or ``liqnet train`` its GCS, raylet and workers exit at
once, but Ray's dashboard agent and runtime-env agent (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) stay for about a minute: on their raylet's death they report it
to the GCS, which is dead too, and retry until the GCS client's reconnect timeout (60 s,
``gcs_rpc_server_reconnect_timeout_s``) before exiting (issue 19 measured 61 s in
``runtime_env_agent.log``: "Raylet is dead! Exiting", then "SystemExit! 0").

Every process of a local instance that liqnet starts inherits :data:`MARKER` in its
environment: the driver's pid and start time. :func:`reap_orphans`, run before the next
local instance starts, stops the processes of this user whose marker names a driver that
no longer runs. Nothing else is touched: a ``ray start`` cluster (the user's own head or
worker nodes), another live driver's instance, and processes without the marker carry no
marker of a dead liqnet driver. Where ``/proc`` does not exist (macOS) it does nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from contextlib import suppress
from pathlib import Path

__all__ = ["MARKER", "orphans", "owner_marker", "reap_orphans"]

log = logging.getLogger(__name__)

MARKER = "LIQNET_RAY_OWNER"
"""Environment variable of a liqnet local instance's processes: ``<driver pid>:<start>``."""

_PROC = Path("/proc")
_GRACE_S = 5.0  # SIGTERM first: Ray's agents exit cleanly on it; then SIGKILL


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and start time (clock ticks after boot), or None if gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)


def owner_marker(pid: int | None = None) -> str | None:
    """The marker naming process ``pid`` (default: this one), or None without ``/proc``."""
    pid = os.getpid() if pid is None else pid
    stat = _stat(pid)
    return None if stat is None else f"{pid}:{stat[1]}"


def _owner_alive(marker: str) -> bool:
    """Whether the driver a marker names still runs (same pid *and* start time: a pid
    reused by another process does not count). A malformed marker counts as alive."""
    pid, _, start = marker.partition(":")
    if not (pid.isdigit() and start.isdigit()):
        return True
    stat = _stat(int(pid))
    return stat is not None and stat[0] != "Z" and stat[1] == int(start)


def _marker_of(pid: int) -> str | None:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    prefix = MARKER.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("ascii", errors="replace")
    return None


def orphans() -> dict[int, int]:
    """Processes of this user left by a liqnet local instance whose driver is gone:
    ``{pid: start time}``."""
    if not (_PROC / "self" / "stat").exists():
        return {}
    me, uid = os.getpid(), os.getuid()
    found: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        marker = _marker_of(int(entry.name))
        if marker is None or _owner_alive(marker):
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[0] != "Z":
            found[int(entry.name)] = stat[1]
    return found


def _still_running(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[1] == start


def _signal_all(procs: dict[int, int], signum: int) -> dict[int, int]:
    """Send ``signum`` to each process still running; wait up to the grace period for
    them to exit; return those still running."""
    for pid, start in procs.items():
        if _still_running(pid, start):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
    deadline = time.monotonic() + _GRACE_S
    left = {p: s for p, s in procs.items() if _still_running(p, s)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p: s for p, s in left.items() if _still_running(p, s)}
    return left


def reap_orphans() -> list[int]:
    """Stop what earlier, killed liqnet drivers' local Ray instances left running (see the
    module docstring); returns their pids. SIGTERM, then SIGKILL what is left after 5 s."""
    procs = orphans()
    if not procs:
        return []
    left = _signal_all(procs, signal.SIGTERM)
    if left:
        left = _signal_all(left, signal.SIGKILL)
    log.warning(
        "stopped %d process(es) left by the local Ray instance of a killed liqnet driver (pids %s)",
        len(procs) - len(left),
        ", ".join(str(p) for p in sorted(set(procs) - set(left))),
    )
    return sorted(set(procs) - set(left))
