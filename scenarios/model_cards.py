"""What model each protocol of a scenario runs, for structural similarity.

``model_cards(scenario)`` reads each protocol's ``policy`` spec (and, for a learned
policy, its checkpoint's ``config.json`` -- the weights are not loaded) into a
:class:`~liqnet.analysis.similarity.ModelCard`; ``structural_similarity`` then counts the
protocol pairs that share the fitted model, the architecture and the training data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from liqnet.agents import parse_policy_spec
from liqnet.agents.checkpoint import CONFIG_FILE
from liqnet.agents.weights import CHECKSUM_FIELD
from liqnet.analysis.similarity import ModelCard
from liqnet.core.schema import ProtocolSpec, Scenario

__all__ = ["model_cards"]


def _checkpoint_meta(argument: str | None) -> dict:
    """The checkpoint's ``config.json`` (a directory or its ``model.pt``); {} if unreadable."""
    if not argument:
        return {}
    path = Path(argument)
    config = (path if path.is_dir() else path.parent) / CONFIG_FILE
    try:
        meta = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _card(spec: ProtocolSpec) -> ModelCard:
    name, argument = parse_policy_spec(spec.policy)
    if name == "static":
        # A static policy is its standing levers: equal levers are the same "model".
        levers = ",".join(f"{v:g}" for v in np.asarray(spec.lever_vector()))
        return ModelCard(f"static[{levers}]", "static")
    if name == "mappo":
        meta = _checkpoint_meta(argument)
        config = meta.get("config") or {}
        model = str(meta.get(CHECKSUM_FIELD) or Path(argument or "").resolve())
        if config.get("sharing") == "independent":
            model += f"/{spec.id}"  # each agent slot is its own actor
        hidden = list(config.get("hidden_sizes") or [])
        notes = meta.get("notes") or {}
        data = {k: notes.get(k) for k in ("scenarios", "overrides", "horizon", "env_steps")}
        return ModelCard(model, f"mappo-actor{hidden}", json.dumps(data, sort_keys=True))
    if name == "bayesian":
        # One model class, but each protocol's posterior is fitted to its own observations.
        return ModelCard(f"bayesian/{spec.id}", "bayesian", f"online/{spec.id}")
    # Other rules (and plugins' policies): the spec names the model and its data.
    return ModelCard(spec.policy, name, argument or "")


def model_cards(scenario: Scenario) -> dict[str, ModelCard]:
    """A :class:`ModelCard` per protocol id, from the scenario's policy specs."""
    return {spec.id: _card(spec) for spec in scenario.protocols}
