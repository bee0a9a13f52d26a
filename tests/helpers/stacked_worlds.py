"""Worlds whose stacked protocol types are stepped once as stacks, once per object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from liqnet.market import MarketModel
from liqnet.protocols import registry
from liqnet.protocols.base import Protocol
from liqnet.scenarios import load, run
from liqnet.scenarios.loader import validate

Vary = Callable[[dict[str, Any], int], None]
"""Edits a protocol's params table for copy ``k`` (so rows mixed up in a stack show)."""


def per_object(type_name: str) -> str:
    """Register a subclass of ``type_name`` that does not define the stacked hook (so the
    world steps it per object); returns its type name."""
    cls = registry.get_protocol_class(type_name)
    alone = f"{type_name}_alone"
    registry.register(alone, type(f"{cls.__name__}Alone", (cls,), {"type_name": alone}))
    return alone


def repeated(name: str, copies: int, vary: dict[str, Vary], alone: bool) -> dict[str, Any]:
    """Built-in ``name`` with its protocols repeated ``copies`` times, each copy's
    protocols of the types in ``vary`` edited by it; ``alone``: those types per object."""
    raw = load(name).model_dump(by_alias=True)
    protocols = []
    for copy in range(copies):
        for spec in raw["protocols"]:
            spec = {**spec, "id": f"{spec['id']}_{copy}", "params": dict(spec["params"])}
            if spec["type"] in vary:
                vary[spec["type"]](spec["params"], copy)
                if alone:
                    spec["type"] = per_object(spec["type"])
            protocols.append(spec)
    raw["protocols"] = protocols
    return raw


def stepped_both_ways(
    name: str, copies: int, vary: dict[str, Vary], seed: int
) -> tuple[dict[str, MarketModel], dict[str, Any]]:
    """The world stepped with stacks and per object: its models (run to the end) by
    ``"stacked"`` / ``"alone"``, after checking that their series and events are equal
    bit for bit."""
    models, results = {}, {}
    for label, alone in (("stacked", False), ("alone", True)):
        scenario = validate(repeated(name, copies, vary, alone), f"{name} x {copies}")
        results[label] = run(scenario, seed=seed)
        models[label] = model = MarketModel(scenario, seed=seed)
        for _ in range(scenario.steps):
            model.step()
    stacked, alone_ = results["stacked"], results["alone"]
    pd.testing.assert_frame_equal(stacked.timeseries, alone_.timeseries, check_exact=True)
    pd.testing.assert_frame_equal(stacked.events, alone_.events, check_exact=True)
    return models, results


def twins(models: dict[str, MarketModel], cls: type[Protocol]) -> list[tuple[Any, Any]]:
    """(stacked, per-object) pairs of the protocols of exactly ``cls``."""
    alone = models["alone"].protocols
    return [(p, alone[pid]) for pid, p in models["stacked"].protocols.items() if type(p) is cls]
