"""The policy interface: observations in, levers out, batched over agents.

Every policy - static governance, rules of thumb, Bayesian risk managers, forecasters,
learned MAPPO actors - implements :class:`Policy`, so the env runner, the scenario runner,
sweeps and evaluation drive them all the same way. Policies see only observations and
spaces (the architecture's rule for ``liqnet.agents``), never protocol internals.

Scenario files pick a policy per protocol with a *policy spec* string: ``"static"``,
``"vol_target"``, ``"bayesian"``, ``"forecaster:PATH"``, ``"mappo:PATH"`` - a registered
name, optionally followed by ``:`` and an argument (usually a checkpoint path).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from liqnet.core.errors import UnknownNameError
from liqnet.core.registry import Registry


@dataclass(frozen=True)
class PolicyContext:
    """What a policy learns about its environment before acting.

    Attributes:
        agent_ids: The agents this policy acts for, in a fixed order.
        observation_space: Each agent's observation space (all the same shape).
        action_space: Each agent's action space (the common levers).
        observation_names: Name of each observation entry, in order (lets rule-based
            policies find e.g. ``realised_vol`` without knowing the env's layout).
        dt_hours: Market time per step.
        seed: Seed for any randomness the policy uses.
        standing_levers: Each agent's standing lever vector (the scenario's ``levers``,
            ``LEVER_NAMES`` order); rule-based policies keep the levers they do not
            set at these values. Empty when unknown (policies then use the schema's
            defaults: the treasury rule lends and borrows).
    """

    agent_ids: tuple[str, ...]
    observation_space: spaces.Box
    action_space: spaces.Box
    observation_names: tuple[str, ...]
    dt_hours: float
    seed: int = 0
    standing_levers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def index(self, name: str) -> int:
        """Position of observation entry ``name`` (clear error if absent)."""
        try:
            return self.observation_names.index(name)
        except ValueError:
            raise KeyError(
                f"observation {name!r} not found; available: {list(self.observation_names)}"
            ) from None


class Policy(abc.ABC):
    """Maps each agent's observation to its lever vector.

    Subclasses set ``name`` (the spec name used in scenario files) and implement
    :meth:`act`. :meth:`reset` is called at the start of every episode.
    """

    name: ClassVar[str]

    def reset(self, context: PolicyContext) -> None:
        """Start an episode; keep what :meth:`act` needs from ``context``."""
        self.context = context

    @abc.abstractmethod
    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Levers (float32, shape ``(6,)``, in [-1, 1]) for every agent observed."""

    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        """Array form: ``(n_agents, D)`` observations -> ``(n_agents, 6)`` levers."""
        ids = self.context.agent_ids[: observations.shape[0]]
        actions = self.act(dict(zip(ids, observations, strict=True)))
        return np.stack([actions[a] for a in ids])


PolicyFactory = Callable[[str | None], Policy]
"""Builds a policy from the argument after ``:`` in a spec (``None`` if absent)."""

POLICIES: Registry[PolicyFactory] = Registry("policy", entry_point_group="liqnet.policies")
"""Policy factories by spec name; ``"name:module:attr"`` references load on first use."""


def register_policy(name: str, factory: PolicyFactory | str) -> None:
    """Make ``name`` (and ``name:ARG``) usable as a policy spec.

    ``factory`` may be a ``"module:attribute"`` reference, imported when first built (so a
    torch-backed policy costs nothing until a scenario uses it).
    """
    if isinstance(factory, str):
        POLICIES.register_lazy(name, factory)
    else:
        POLICIES.register(name, factory)


def policy_names() -> list[str]:
    """Registered policy names."""
    return POLICIES.names()


def parse_policy_spec(spec: str) -> tuple[str, str | None]:
    """``"mappo:runs/x/model.pt"`` -> ``("mappo", "runs/x/model.pt")``; validates the name."""
    name, sep, argument = spec.partition(":")
    if name not in POLICIES:
        raise UnknownNameError(
            f"unknown policy {name!r} in spec {spec!r}; allowed: {policy_names()}"
        )
    return name, (argument if sep else None)


def make_policy(spec: str) -> Policy:
    """Build the policy a spec names."""
    name, argument = parse_policy_spec(spec)
    return POLICIES.get(name)(argument)


def group_by_policy(specs: dict[str, str]) -> dict[str, list[str]]:
    """Agents grouped by identical spec (agents sharing a spec share one policy object)."""
    groups: dict[str, list[str]] = {}
    for agent, spec in specs.items():
        groups.setdefault(spec, []).append(agent)
    return groups
