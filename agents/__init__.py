"""Policies that act for protocols: static, rules of thumb, Bayesian, forecaster, learners.

Built-in policy specs registered here: ``"static"``, ``"vol_target"`` (or
``"vol_target:TARGET_VOL"``), ``"bayesian"``, ``"forecaster:PATH"`` (a checkpoint
written by :func:`liqnet.scenarios.forecast_training.train_forecaster`) and
``"mappo:PATH"``. The forecaster and MAPPO modules import torch, so they are loaded only
when such a policy is built or one of their names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from liqnet.agents.base import (
    Policy,
    PolicyContext,
    group_by_policy,
    make_policy,
    parse_policy_spec,
    policy_names,
    register_policy,
)
from liqnet.agents.bayesian import (
    BayesConfig,
    BayesianRiskManager,
    NormalInverseGamma,
    make_bayesian,
)
from liqnet.agents.rules import (
    ForecastPolicyConfig,
    ForecastRiskPolicy,
    RiskBudget,
    VolatilityTargeting,
    VolTargetConfig,
    make_vol_target,
)
from liqnet.agents.static import DEFAULT_STANDING_LEVERS, StaticGovernance

if TYPE_CHECKING:
    from liqnet.agents.forecaster import CheckpointError, ForecastConfig, Forecaster

_LAZY = {
    "CheckpointError": "forecaster",
    "ForecastConfig": "forecaster",
    "Forecaster": "forecaster",
}

__all__ = [
    "DEFAULT_STANDING_LEVERS",
    "BayesConfig",
    "BayesianRiskManager",
    "CheckpointError",
    "ForecastConfig",
    "ForecastPolicyConfig",
    "ForecastRiskPolicy",
    "Forecaster",
    "NormalInverseGamma",
    "Policy",
    "PolicyContext",
    "RiskBudget",
    "StaticGovernance",
    "VolTargetConfig",
    "VolatilityTargeting",
    "group_by_policy",
    "make_policy",
    "parse_policy_spec",
    "policy_names",
    "register_policy",
]


def __getattr__(name: str) -> Any:
    """Load the torch-backed forecaster names on first use."""
    if name in _LAZY:
        module = importlib.import_module(f"liqnet.agents.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_static(argument: str | None) -> StaticGovernance:
    """Factory for the ``"static"`` spec (takes no argument)."""
    if argument is not None:
        raise ValueError(f"policy spec 'static:{argument}': 'static' takes no argument")
    return StaticGovernance()


def _make_forecaster(argument: str | None) -> Policy:
    """Factory for ``"forecaster:PATH"`` (imports torch only now)."""
    from liqnet.agents.forecaster import make_forecast_policy

    return make_forecast_policy(argument)


register_policy("static", _make_static)
register_policy("vol_target", make_vol_target)
register_policy("bayesian", make_bayesian)
register_policy("forecaster", _make_forecaster)


# Imported on first use: the checkpoint module pulls in torch.
register_policy("mappo", "liqnet.agents.checkpoint:make_mappo_policy")
