"""Tests of model cards and the structural similarity of a scenario's policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liqnet.analysis import structural_similarity
from liqnet.scenarios import load
from liqnet.scenarios.model_cards import model_cards


def _checkpoint(directory: Path, sha: str, sharing: str = "shared") -> str:
    directory.mkdir(parents=True)
    meta = {
        "config": {"sharing": sharing, "hidden_sizes": [64, 64]},
        "weights_sha256": sha,
        "notes": {"scenarios": ["flash_crash"], "overrides": {}, "horizon": 48, "env_steps": 1},
    }
    (directory / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    return str(directory / "model.pt")


def test_cards_from_policy_specs(tmp_path: Path) -> None:
    shared = _checkpoint(tmp_path / "a", "aa")
    other = _checkpoint(tmp_path / "b", "bb")
    scenario = load(
        "credit_crunch",
        {
            "protocols.0.policy": f"mappo:{shared}",
            "protocols.1.policy": f"mappo:{shared}",
            "protocols.2.policy": f"mappo:{other}",
        },
    )
    cards = model_cards(scenario)
    ids = [p.id for p in scenario.protocols]
    assert cards[ids[0]] == cards[ids[1]] and cards[ids[0]].model == "aa"
    assert cards[ids[2]].model == "bb"
    assert cards[ids[2]].architecture == cards[ids[0]].architecture == "mappo-actor[64, 64]"
    assert cards[ids[2]].training == cards[ids[0]].training  # same notes: same data
    assert structural_similarity(cards) == {
        "same_model": pytest.approx(1 / 3),
        "same_architecture": 1.0,
        "same_training": 1.0,
    }


def test_independent_actors_and_rules_are_distinct_models(tmp_path: Path) -> None:
    independent = _checkpoint(tmp_path / "i", "ii", sharing="independent")
    scenario = load(
        "credit_crunch",
        {f"protocols.{k}.policy": f"mappo:{independent}" for k in range(2)}
        | {"protocols.2.policy": "bayesian"},
    )
    cards = model_cards(scenario)
    first, second, third = (cards[p.id] for p in scenario.protocols)
    assert first.model != second.model and first.architecture == second.architecture
    assert third.architecture == "bayesian" and third.training.startswith("online/")
    # Static policies are their standing levers: different levers, different models.
    static = model_cards(load("credit_crunch"))
    assert len({c.model for c in static.values()}) == 3
    assert structural_similarity(static)["same_architecture"] == 1.0
