"""The bottom layer: types and helpers every other layer shares; it imports none of them.

``RunResult`` and its files, the scenario schema, lever and feature names, time units,
``atomic_write``, error types, the registry helper, observation naming and the
forecaster interface.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from liqnet.core.errors import (
    CheckpointError,
    ConservationError,
    InputError,
    LiqnetError,
    ScenarioError,
    UnknownNameError,
)
from liqnet.core.io import atomic_write
from liqnet.core.levers import (
    DEFAULT_LEVERS,
    DEFAULT_STANDING_LEVERS,
    FEATURE_NAMES,
    LEVER_NAMES,
)
from liqnet.core.observations import ForecasterLike, observation_indices
from liqnet.core.registry import Registry
from liqnet.core.result import CREDIT_EVENT_COLUMNS, EVENT_COLUMNS, RunResult
from liqnet.core.schema import Scenario
from liqnet.core.units import DAYS_PER_YEAR, HOURS_PER_DAY, HOURS_PER_YEAR

try:
    __version__ = version("liqnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "CREDIT_EVENT_COLUMNS",
    "DAYS_PER_YEAR",
    "DEFAULT_LEVERS",
    "DEFAULT_STANDING_LEVERS",
    "EVENT_COLUMNS",
    "FEATURE_NAMES",
    "HOURS_PER_DAY",
    "HOURS_PER_YEAR",
    "LEVER_NAMES",
    "CheckpointError",
    "ConservationError",
    "ForecasterLike",
    "InputError",
    "LiqnetError",
    "Registry",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "UnknownNameError",
    "__version__",
    "atomic_write",
    "observation_indices",
]
