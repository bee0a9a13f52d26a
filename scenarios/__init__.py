"""Scenarios: schema, built-in files, loading with overrides, running, the command line."""

from liqnet.scenarios.envs import make_env
from liqnet.scenarios.loader import ScenarioError, builtin_names, load
from liqnet.scenarios.run import RunResult, run
from liqnet.scenarios.schema import Scenario

__all__ = ["RunResult", "Scenario", "ScenarioError", "builtin_names", "load", "make_env", "run"]
