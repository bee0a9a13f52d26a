"""Scenarios: built-in files, loading with overrides, running, sweeps, the CLI.

The one layer that knows files, Ray and the command line (see docs/architecture.md).
"""

from liqnet.core.errors import ScenarioError
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.scenarios.analyze import amplification, analyze
from liqnet.scenarios.envs import make_env, make_vec_env
from liqnet.scenarios.loader import builtin_names, load
from liqnet.scenarios.run import run
from liqnet.scenarios.sweep import load_sweep, sweep

__all__ = [
    "RunResult",
    "Scenario",
    "ScenarioError",
    "amplification",
    "analyze",
    "builtin_names",
    "load",
    "load_sweep",
    "make_env",
    "make_vec_env",
    "run",
    "sweep",
]
