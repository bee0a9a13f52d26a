"""Loading scenarios: built-in names or TOML paths, dotted overrides, one clear error.

Scenario files are TOML (``tomllib``): data only, never code.
"""

from __future__ import annotations

import copy
import importlib.resources
from pathlib import Path
from typing import Any

import pydantic
import tomllib

from liqnet.core.errors import ScenarioError
from liqnet.core.schema import Scenario, format_errors, shorten
from liqnet.market.negotiation import get_mechanism
from liqnet.protocols.registry import available, get_protocol_class
from liqnet.scenarios.compose import compose
from liqnet.scenarios.replay import mark_replay_files, read_replay_csvs

__all__ = [
    "ScenarioError",
    "apply_overrides",
    "builtin_names",
    "load",
    "parse_override_value",
    "read_raw",
    "resolve_raw",
    "validate",
]


MAX_FILE_BYTES = 1 << 20
"""Largest scenario file read (1 MiB; the built-ins are about 2 KB)."""
MAX_DEPTH = 16
"""Deepest nesting of tables and arrays in a scenario (the built-ins use 4)."""
MAX_BASE_CHAIN = 8
"""Longest chain of ``base`` references (a scenario extending one extending one ...)."""
MAX_KEY_SEGMENTS = 16
"""Most segments in a dotted override key (``protocols.aave.params.ltv`` has 4)."""


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with liqnet."""
    files = importlib.resources.files("liqnet.scenarios.builtin").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def read_raw(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML table of a built-in name or a file path, and where it came from."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {shorten(str(path))} does not exist")
        origin = str(path)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"{origin}: {size:,} bytes; a scenario file is at most {MAX_FILE_BYTES:,}"
            )
        text = _decode(path.read_bytes(), origin)
        folder = path.parent
    else:
        name = str(name_or_path)
        if name not in builtin_names():
            raise ScenarioError(
                f"unknown scenario {shorten(name)}: not a file, and not a built-in "
                f"(built-ins: {builtin_names()})"
            )
        resource = importlib.resources.files("liqnet.scenarios.builtin") / f"{name}.toml"
        text, origin = resource.read_text(encoding="utf-8"), f"built-in {name!r}"
        folder = Path(str(resource)).parent
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{origin}: not valid TOML: {err}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays/tables
        raise ScenarioError(f"{origin}: nested deeper than {MAX_DEPTH} levels") from None
    if _depth(raw) > MAX_DEPTH:
        raise ScenarioError(f"{origin}: nested deeper than {MAX_DEPTH} levels")
    return mark_replay_files(raw, folder, origin), origin


def _decode(data: bytes, origin: str) -> str:
    """A scenario file's text: TOML files are UTF-8 (TOML 1.0, "Spec")."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(
            f"{origin}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "TOML files are UTF-8"
        ) from None


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of tables and arrays, counted up to ``limit`` (iteratively: never
    recursing, so any depth is measured safely)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list) and level < limit:
            deepest = max(deepest, level + 1)
            stack.extend(
                (child, level + 1) for child in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def resolve_raw(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> tuple[dict, str]:
    """The raw table with its ``base`` chain merged in (a scenario may extend another).

    ``base = "baseline"`` (a built-in name, or a path relative to the file) loads that
    scenario first; this file's tables are merged over it, with its ``[remove]`` table,
    ``[protocols.ID]`` tables and ``replace`` flags (:func:`liqnet.scenarios.compose.compose`).
    """
    raw, origin = read_raw(name_or_path)
    base = raw.pop("base", None)
    if base is None:
        return compose(None, raw, origin), origin
    if not isinstance(base, str):
        raise ScenarioError(f"{origin}: base = {shorten(base)}: must be a scenario name or path")
    if base in _seen:
        raise ScenarioError(f"{origin}: base = {base!r}: circular ({' -> '.join(_seen)})")
    if len(_seen) >= MAX_BASE_CHAIN:
        raise ScenarioError(
            f"{origin}: base = {shorten(base)}: a chain of more than {MAX_BASE_CHAIN} bases"
        )
    base_ref: str | Path = base
    if base.endswith(".toml") and not Path(base).is_absolute():
        base_ref = Path(str(name_or_path)).parent / base
    base_raw, _ = resolve_raw(base_ref, (*_seen, base))
    return compose(base_raw, raw, origin, base), origin


def parse_override_value(text: str) -> Any:
    """A CLI override value as TOML (numbers, booleans, arrays, tables), else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ScenarioError(
            f"override value {shorten(text)}: nested deeper than {MAX_DEPTH} levels"
        ) from None


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with dotted-key overrides set.

    List elements are addressed by index (``protocols.0.params.ltv``) or, for tables with
    an ``id``, by that id (``protocols.aave.params.ltv``).
    """
    data = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        parts = dotted.split(".", MAX_KEY_SEGMENTS)
        if len(parts) > MAX_KEY_SEGMENTS:
            raise ScenarioError(
                f"override {shorten(dotted)}: more than {MAX_KEY_SEGMENTS} key segments"
            )
        if not all(parts):
            raise ScenarioError(f"override {shorten(dotted)}: empty key segment")
        if _depth(value) > MAX_DEPTH:
            raise ScenarioError(f"override {shorten(dotted)}: nested deeper than {MAX_DEPTH}")
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = node[_list_position(node, part, dotted, where)]
                if not isinstance(node, dict | list):
                    raise ScenarioError(
                        f"override {shorten(dotted)}: {shorten(where)} is a value "
                        f"({shorten(node)}), not a table"
                    )
            elif isinstance(node, dict):
                child = node.setdefault(part, {})
                if not isinstance(child, dict | list):
                    raise ScenarioError(
                        f"override {shorten(dotted)}: {shorten(where)} is a value "
                        f"({shorten(child)}), not a table"
                    )
                node = child
        last = parts[-1]
        if isinstance(node, list):
            node[_list_position(node, last, dotted, dotted)] = value
        else:
            node[last] = value
    return data


def _list_position(items: list[Any], part: str, dotted: str, where: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    ids = [item.get("id") for item in items if isinstance(item, dict)]
    if part in ids:
        return ids.index(part)
    raise ScenarioError(
        f"override {shorten(dotted)}: {shorten(where)} selects no element; "
        f"use an index 0..{len(items) - 1}" + (f" or an id from {ids}" if any(ids) else "")
    )


def validate(raw: dict[str, Any], origin: str = "scenario") -> Scenario:
    """Validate a raw table into a :class:`Scenario`, including protocol parameters (a
    replay CSV is read and resampled here, when ``dt_hours`` and ``steps`` are final)."""
    raw = read_replay_csvs(raw, origin)
    try:
        scenario = Scenario.model_validate(raw)
    except pydantic.ValidationError as err:
        raise ScenarioError(format_errors(origin, err)) from None
    protocols, problems = [], []
    for k, spec in enumerate(scenario.protocols):
        try:
            cls = get_protocol_class(spec.type)
        except KeyError:
            problems.append(
                f"  protocols.{k}.type = {spec.type!r}: unknown protocol type; "
                f"allowed: {sorted(available())}"
            )
            continue
        try:
            params = cls.Params.model_validate(spec.params)
        except pydantic.ValidationError as err:
            problems.extend(format_errors(origin, err, f"protocols.{k}.params.").splitlines()[1:])
            continue
        unknown = sorted(set(params.referenced_assets()) - set(scenario.market.assets))
        if unknown:
            problems.append(
                f"  protocols.{k}.params: assets {unknown} are not market assets; "
                f"allowed: {list(scenario.market.assets)}"
            )
        # JSON-shaped (lists, not tuples), so a saved scenario.json reads back equal.
        protocols.append(spec.model_copy(update={"params": params.model_dump(mode="json")}))
    negotiation = scenario.negotiation
    try:
        get_mechanism(negotiation.mechanism, **negotiation.params)
    except (TypeError, ValueError) as err:
        problems.append(f"  negotiation.mechanism = {negotiation.mechanism!r}: {err}")
    if problems:
        raise ScenarioError("\n".join([f"{origin}: invalid scenario", *problems]))
    return scenario.model_copy(update={"protocols": protocols})


def load(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load a built-in scenario by name, or a TOML file, with dotted-key overrides.

    Args:
        name_or_path: A built-in name (see :func:`builtin_names`) or a ``.toml`` path.
        overrides: ``{"market.assets.ETH.volatility": 0.9, ...}``.

    Raises:
        ScenarioError: Naming each invalid field, its value and what is allowed.
    """
    raw, origin = resolve_raw(name_or_path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate(raw, origin)
