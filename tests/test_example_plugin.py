"""The example plugin package installs as a user's would and runs through ``liqnet run``.

It is installed with pip into a private folder (``--target``), not into the test
environment, and found through ``PYTHONPATH``: its entry point is read from the
installed metadata exactly as for ``pip install -e examples/liqnet-fixed-rate-desk``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "liqnet-fixed-rate-desk"


@pytest.mark.slow
def test_example_installs_and_runs_its_scenario(tmp_path: Path) -> None:
    site = tmp_path / "site"
    # Offline and without build isolation: setuptools comes from the test environment.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(site), str(EXAMPLE)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "liqnet.scenarios.cli", "run", str(EXAMPLE / "desk.toml"),
         "--out", str(out), "--no-figure", "--set", "steps=12"],
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["protocol_types"] == {"desk": "fixed_rate_desk"}
    assert summary["summary"]["steps"] == 12
