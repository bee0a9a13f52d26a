"""liqnet.__version__: the installed distribution's version, printed by ``--version``."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import liqnet


def test_version_is_the_distribution_version_and_the_cli_prints_it() -> None:
    assert liqnet.__version__ == version("liqnet")
    out = subprocess.run(
        [sys.executable, "-m", "liqnet.scenarios.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"liqnet {version('liqnet')}"
