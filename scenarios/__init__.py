"""Scenarios: schema, built-in files, loading with overrides, running, sweeps, the CLI."""

from liqnet.scenarios.envs import make_env
from liqnet.scenarios.loader import ScenarioError, builtin_names, load
from liqnet.scenarios.run import RunResult, run
from liqnet.scenarios.schema import Scenario
from liqnet.scenarios.sweep import load_sweep, sweep

__all__ = [
    "RunResult",
    "Scenario",
    "ScenarioError",
    "builtin_names",
    "load",
    "load_sweep",
    "make_env",
    "run",
    "sweep",
]
