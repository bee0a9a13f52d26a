"""Scenario composition: a file with ``base`` merged over its base's resolved table.

Tables merge key by key and arrays replace wholesale, with three forms to remove or
replace what a base defines (docs/architecture.md, "Scenario composition"):

- ``[protocols.ID]`` tables (protocols keyed by id, the path overrides use) merge into
  the base protocol with that id, or append a new one; ``replace = true`` in one makes it
  replace the base protocol wholesale. A ``[[protocols]]`` array replaces the base's
  whole list, as it always has (the built-ins rely on it).
- ``replace = true`` in a ``[market.assets.NAME]`` table replaces that asset wholesale.
- ``[remove]`` drops base protocols by id (``protocols = [...]``) and base assets by name
  (``assets = [...]``), with the base's correlation entries and shocks on those assets.
  A protocol still using a removed asset is an error naming it.

Scenario files are data: nothing here executes anything from them.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic
from pydantic import Field

from liqnet.core.errors import ScenarioError
from liqnet.core.schema import StrictModel, format_errors, shorten
from liqnet.protocols.registry import get_protocol_class

__all__ = ["RemoveSpec", "compose", "deep_merge"]


class RemoveSpec(StrictModel):
    """The ``[remove]`` table of an extending scenario: what of its base to drop."""

    protocols: list[str] = Field(default_factory=list, description="base protocol ids")
    assets: list[str] = Field(default_factory=list, description="base market asset names")


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else (values, arrays) is replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def compose(
    base: dict[str, Any] | None, raw: dict[str, Any], origin: str, base_name: str = ""
) -> dict[str, Any]:
    """``raw`` (its ``base`` key already taken out) merged over the resolved ``base``.

    With ``base`` None (a file extending nothing) only ``raw``'s own compose forms are
    resolved: keyed protocol tables become the list, ``replace`` flags are dropped.

    Raises:
        ScenarioError: Naming the field: a ``[remove]`` entry its base does not have, an
            asset still used after its removal, nothing left, a malformed compose form.
    """
    raw = copy.deepcopy(raw)
    merged = copy.deepcopy(base) if base is not None else {}
    removed = _apply_remove(merged, raw.pop("remove", None), origin, base, base_name)
    protocols = raw.pop("protocols", None)
    _take_replaced_assets(merged, raw, origin)
    merged = deep_merge(merged, raw)
    if isinstance(protocols, dict):
        merged["protocols"] = _merge_protocols(merged.get("protocols", []), protocols, origin)
    elif protocols is not None:  # an array (or a wrong type, for the schema to name)
        merged["protocols"] = protocols
    _check_removed(merged, removed, origin)
    return merged


def _apply_remove(
    merged: dict[str, Any],
    table: Any,
    origin: str,
    base: dict[str, Any] | None,
    base_name: str,
) -> RemoveSpec:
    """Drop ``[remove]``'s protocols and assets from the base (in place), with the base's
    correlation entries and shocks naming a removed asset."""
    if table is None:
        return RemoveSpec()
    if base is None:
        raise ScenarioError(f"{origin}: remove: only a scenario with a base can remove from it")
    try:
        spec = RemoveSpec.model_validate(table)
    except pydantic.ValidationError as err:
        raise ScenarioError(format_errors(origin, err, "remove.")) from None
    found = merged.get("protocols")
    protocols: list[Any] = found if isinstance(found, list) else []
    ids = [p.get("id") for p in protocols if isinstance(p, dict)]
    found = merged.get("market")
    market: dict[str, Any] = found if isinstance(found, dict) else {}
    found = market.get("assets")
    assets: dict[str, Any] = found if isinstance(found, dict) else {}
    problems = [
        f"  remove.{field}: {shorten(name)} is not {what} of base {base_name!r}; allowed: {allowed}"
        for field, names, allowed, what in (
            ("protocols", spec.protocols, ids, "a protocol"),
            ("assets", spec.assets, list(assets), "an asset"),
        )
        for name in names
        if name not in allowed
    ]
    if problems:
        raise ScenarioError("\n".join([f"{origin}: invalid scenario", *problems]))
    if spec.protocols:
        merged["protocols"] = [
            p for p in protocols if not (isinstance(p, dict) and p.get("id") in spec.protocols)
        ]
    if spec.assets:
        gone = set(spec.assets)
        market["assets"] = {name: a for name, a in assets.items() if name not in gone}
        if isinstance(market.get("correlations"), dict):
            market["correlations"] = {
                pair: rho
                for pair, rho in market["correlations"].items()
                if not gone & set(pair.split("/"))
            }
        if isinstance(merged.get("shocks"), list):
            merged["shocks"] = [
                s for s in merged["shocks"] if not (isinstance(s, dict) and s.get("asset") in gone)
            ]
    return spec


def _replace_flag(table: dict[str, Any], where: str, origin: str) -> bool:
    """Pop and check a table's ``replace`` flag (a boolean; absent is false)."""
    flag = table.pop("replace", False)
    if not isinstance(flag, bool):
        raise ScenarioError(
            f"{origin}: invalid scenario\n  {where}.replace = {shorten(flag)}: "
            "must be true or false"
        )
    return flag


def _take_replaced_assets(merged: dict[str, Any], raw: dict[str, Any], origin: str) -> None:
    """Drop the base's table of each asset ``raw`` marks ``replace = true``, so the file's
    table is the whole asset (flags popped from ``raw`` in place)."""
    market = raw.get("market")
    assets = market.get("assets") if isinstance(market, dict) else None
    if not isinstance(assets, dict):
        return
    base_market = merged.get("market")
    base_assets = base_market.get("assets") if isinstance(base_market, dict) else None
    for name, table in assets.items():
        # The flag is popped first, whether or not the base has the asset.
        replace = isinstance(table, dict) and _replace_flag(table, f"market.assets.{name}", origin)
        if replace and isinstance(base_assets, dict):
            base_assets.pop(name, None)


def _merge_protocols(base: Any, tables: dict[str, Any], origin: str) -> list[dict[str, Any]] | Any:
    """Protocol tables keyed by id merged into the base list: an existing id is updated
    (deep merge, or wholesale with ``replace = true``), a new id is appended."""
    merged = copy.deepcopy(base) if isinstance(base, list) else []
    ids = [p.get("id") if isinstance(p, dict) else None for p in merged]
    for key, table in tables.items():
        where = f"protocols.{key}"
        if not isinstance(table, dict):
            raise ScenarioError(
                f"{origin}: invalid scenario\n  {where} = {shorten(table)}: must be a table "
                "(a protocol keyed by its id)"
            )
        table = dict(table)
        if table.setdefault("id", key) != key:
            raise ScenarioError(
                f"{origin}: invalid scenario\n  {where}.id = {shorten(table['id'])}: must be "
                f"{key!r} (its key) or left out"
            )
        replace = _replace_flag(table, where, origin)
        if key in ids:
            k = ids.index(key)
            merged[k] = table if replace else deep_merge(merged[k], table)
        else:
            merged.append(table)
            ids.append(key)
    return merged


def _check_removed(merged: dict[str, Any], removed: RemoveSpec, origin: str) -> None:
    """Nothing left (no protocol, no asset) and protocols still using a removed asset are
    errors; an asset the file defines again is not removed."""
    protocols = merged.get("protocols")
    market = merged.get("market")
    assets = market.get("assets") if isinstance(market, dict) else None
    if removed.protocols and isinstance(protocols, list) and not protocols:
        raise ScenarioError(
            f"{origin}: invalid scenario\n  remove.protocols = {shorten(removed.protocols)}: "
            "leaves no protocol; a scenario has at least one (add one as [protocols.ID])"
        )
    if not removed.assets or not isinstance(assets, dict):
        return
    if not assets:
        raise ScenarioError(
            f"{origin}: invalid scenario\n  remove.assets = {shorten(removed.assets)}: "
            "leaves no market asset; a scenario has at least one"
        )
    gone = [a for a in removed.assets if a not in assets]
    problems = []
    for k, spec in enumerate(protocols if isinstance(protocols, list) else []):
        if not isinstance(spec, dict):
            continue
        for asset in gone:
            for path in _asset_uses(spec, asset):
                pid = spec.get("id")
                problems.append(
                    f"  remove.assets: {asset!r} is still used by protocols.{k} ({pid}) {path}; "
                    f"remove that protocol (remove.protocols) or replace it "
                    f"([protocols.{pid}] with replace = true)"
                )
    if problems:
        raise ScenarioError("\n".join([f"{origin}: invalid scenario", *problems]))


def _asset_uses(spec: dict[str, Any], asset: str) -> list[str]:
    """Where a raw protocol table uses ``asset``: its params' keys and string values
    naming it, and (when the params validate) the defaults its type fills in."""
    params = spec.get("params", {})
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("params", params)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == asset:
                    found.append(f"{path}.{key}")
                else:
                    stack.append((f"{path}.{key}", value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}", value) for i, value in enumerate(node))
        elif node == asset:
            found.append(path)
    if found:
        return sorted(found)
    try:  # a default (lending collateral, perp markets and option underlyings are ETH)
        referenced = get_protocol_class(spec["type"]).Params.model_validate(params)
        return ["params (by default)"] if asset in referenced.referenced_assets() else []
    except (KeyError, TypeError, pydantic.ValidationError):
        return []  # an unknown type or bad params: validation names those
