"""Bit-for-bit fingerprints of every built-in's trajectory, the guard for engine rewrites.

Issue 14's stacked engine must reproduce today's trajectories exactly (stages 2-3 of
"Stacked protocols" in ``docs/architecture.md``). This runs every built-in on a few
seeds for up to ``--steps`` steps with its default policies, hashes the time series and
the event log (their float bytes, so a change in the last bit shows), and either writes
the hashes (``--write``) or compares them with the stored ones (``--check``, exit 1 on any
difference, naming each run that moved and its first differing column).

Bit-exact hashes hold for one machine and one set of library builds (BLAS may round a
correlated draw differently elsewhere), so this is a tool to run before and after a
change on the same machine, not a test in CI. Write the reference on the commit before
the change, check on the one after.

    python benchmarks/trajectory_fingerprint.py --write
    python benchmarks/trajectory_fingerprint.py --check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from liqnet.scenarios import load, run
from liqnet.scenarios.loader import builtin_names

DEFAULT_OUT = Path(__file__).parent / "results" / "trajectory_fingerprints.json"


def column_digests(frame: pd.DataFrame) -> dict[str, str]:
    """One hash per column (values by their bytes, with the index), so a check can name
    the first column that moved."""
    return {
        str(c): hashlib.sha256(
            pd.util.hash_pandas_object(frame[c]).to_numpy().tobytes()
        ).hexdigest()[:12]
        for c in frame.columns
    }


def digest(columns: dict[str, str]) -> str:
    """One hash of a frame, from its column names and column hashes in order."""
    return hashlib.sha256(json.dumps(list(columns.items())).encode()).hexdigest()[:20]


def fingerprints(seeds: list[int], steps: int) -> dict[str, dict[str, Any]]:
    """``"name/seed"`` -> hashes of the time series (whole and per column) and events."""
    out: dict[str, dict[str, Any]] = {}
    for name in builtin_names():
        scenario = load(name)
        for seed in seeds:
            result = run(scenario, seed=seed, steps=min(scenario.steps, steps))
            columns = column_digests(result.timeseries)
            key = f"{name}/{seed}"
            out[key] = {
                "timeseries": digest(columns),
                "events": digest(column_digests(result.events)),
                "columns": columns,
            }
            print(f"{name:>16} seed {seed}: {out[key]['timeseries']}", flush=True)
    return out


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per run whose hashes differ (or that is missing on either side)."""
    lines = []
    for key in sorted(set(stored) | set(now)):
        if key not in stored or key not in now:
            lines.append(f"{key}: only in {'the stored file' if key in stored else 'this run'}")
            continue
        before, after = stored[key], now[key]
        if before["timeseries"] != after["timeseries"]:
            moved = [c for c, h in after["columns"].items() if before["columns"].get(c) != h]
            lines.append(f"{key}: time series differs ({len(moved)} columns, first {moved[:3]})")
        if before["events"] != after["events"]:
            lines.append(f"{key}: event log differs")
    return lines


def main() -> int:
    """Write or check the fingerprints; exit 1 when a check finds a difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="store this run's hashes")
    mode.add_argument("--check", action="store_true", help="compare with the stored hashes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 7])
    parser.add_argument("--steps", type=int, default=400, help="at most this many per run")
    parser.add_argument("--file", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    stored: dict[str, Any] = {}
    if args.check:
        if not args.file.exists():
            parser.error(f"--file {args.file} does not exist; write one first with --write")
        stored = json.loads(args.file.read_text())
        if (stored["seeds"], stored["steps"]) != (args.seeds, args.steps):
            parser.error(
                f"--seeds/--steps {args.seeds}/{args.steps} differ from the stored "
                f"{stored['seeds']}/{stored['steps']}"
            )
    now = fingerprints(args.seeds, args.steps)
    if args.write:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        record = {"commit": commit, "seeds": args.seeds, "steps": args.steps, "runs": now}
        args.file.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.file}")
        return 0
    lines = differences(stored["runs"], now)
    print("\n".join(lines) if lines else f"all {len(now)} runs identical to {stored['commit']}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
