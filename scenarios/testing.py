"""Plugin kit: check a protocol type against the interface, as PettingZoo's API tests do.

:func:`check_protocol` runs a protocol beside a built-in lending pool on the baseline
market, once calm and once through an ETH crash, and checks that

- money and units are conserved after every call the world makes (the world's own
  check, :class:`~liqnet.core.ConservationError`), and in total every step;
- the interface methods return the right types and shapes: finite balance-sheet
  numbers, features named in ``FEATURE_NAMES``, finite and in a sane range, well-formed
  liquidation offers;
- the same seed gives the same time series twice;
- every number of its ``Params`` is bounded on both sides (``Field(ge=, le=)``), as the
  built-ins' are, and out-of-range parameters are refused with a
  :class:`~liqnet.core.ScenarioError` naming the field.

It lives in ``liqnet.scenarios`` because it builds worlds from scenario tables: protocols
import only ``liqnet.core`` (docs/architecture.md), so there is no
``liqnet.protocols.testing``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, cast

import annotated_types
import numpy as np
import pydantic

from liqnet.core.errors import ConservationError, ScenarioError
from liqnet.core.levers import FEATURE_NAMES
from liqnet.core.schema import Scenario
from liqnet.market.model import MarketModel
from liqnet.protocols.base import LiquidationOffer, Protocol
from liqnet.protocols.registry import get_protocol_class, register
from liqnet.scenarios.loader import resolve_raw, validate

FEATURE_LIMIT = 1e3
"""Largest magnitude a feature (a dimensionless ratio) may take in the check worlds."""

NEIGHBOUR_POSITIONS = 300
"""Borrowers of the built-in lending pool beside the protocol (small: the check is quick)."""

_PLUGIN_INDEX = 1
"""Position of the protocol under test in the check worlds' ``protocols`` list."""

STABLE_ASSET: dict[str, Any] = {
    "price": 1.0,
    "volatility": 0.02,
    "pool_usd": 20e6,
    "cex_depth_2pct_usd": 5e6,
    "daily_volume_usd": 200e6,
}
"""A $1 asset with a thin pool, added to the check worlds for each asset a protocol names
that the baseline market lacks (a CDP's stablecoin: it must be a market asset)."""

_CRASH = [
    {"step": 3, "asset": "ETH", "return": -0.3},
    {"step": 4, "asset": "ETH", "return": -0.2},
]
"""The crash world's shocks: ETH falls 44% over two steps."""


class ProtocolCheckError(AssertionError):
    """A protocol failed :func:`check_protocol`; the message says which check and why."""


@dataclass
class CheckReport:
    """What :func:`check_protocol` ran: one line per passed check."""

    type_name: str
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"check_protocol({self.type_name!r}): passed", *self.lines])


def check_protocol(
    protocol: type[Protocol] | str,
    params: dict[str, Any] | None = None,
    steps: int = 48,
    seed: int = 0,
    verbose: bool = False,
) -> CheckReport:
    """Run ``protocol`` (a class or a registered type name) through the plugin checks.

    Args:
        protocol: The class (registered under its ``type_name`` if not yet) or a name.
        params: Its ``params`` table for the check worlds (defaults if omitted).
        steps: Steps of each world (at least 5, so the crash happens).
        seed: World seed.
        verbose: Print the report.

    Raises:
        ProtocolCheckError: With the failed check, the protocol, the step and the value.
    """
    if isinstance(protocol, str):
        cls = get_protocol_class(protocol)
        type_name = protocol
    else:
        cls, type_name = protocol, protocol.type_name
        register(type_name, cls)
    params = dict(params or {})
    _check_bounded(cls)
    report = CheckReport(type_name)
    for name, crash in (("calm", False), ("crash", True)):
        try:
            scenario = validate(_raw(type_name, params, max(steps, 5), seed, crash), name)
        except ScenarioError as err:
            raise ProtocolCheckError(f"{type_name}: the check world is invalid: {err}") from None
        first = _run(scenario, name)
        second = _run(scenario, name)
        _same(first, second, f"{type_name} in the {name} world")
        report.lines.append(
            f"  {name} world: {scenario.steps} steps conserved money and units, interface "
            "contract held, same seed gave the same time series"
        )
    report.lines.append(_check_style(cls, type_name, params, max(steps, 5), seed))
    if cls.treasury_reader() is not Protocol.treasury_reads:
        report.lines.append("  treasury reads: its own, equal to its methods' at every step")
    checked = _check_bad_params(cls, type_name, params)
    report.lines.append(f"  bad parameters: {checked} refused naming the field")
    if verbose:
        print(report)
    return report


def _raw(
    type_name: str, params: dict[str, Any], steps: int, seed: int, crash: bool
) -> dict[str, Any]:
    """The baseline market with its first lending pool (small) and the protocol under test."""
    raw, _ = resolve_raw("baseline")
    for asset in _named_assets(type_name, params):
        raw["market"]["assets"].setdefault(asset, dict(STABLE_ASSET))
    neighbour = copy.deepcopy(next(p for p in raw["protocols"] if p["type"] == "lending"))
    neighbour["params"]["positions"] = NEIGHBOUR_POSITIONS
    raw.update(
        name=f"check-{type_name}-{'crash' if crash else 'calm'}",
        seed=seed,
        steps=steps,
        protocols=[neighbour, {"id": "plugin", "type": type_name, "params": params}],
        shocks=copy.deepcopy(_CRASH) if crash else [],
    )
    return raw


def _check_style(
    cls: type[Protocol], type_name: str, params: dict[str, Any], steps: int, seed: int
) -> str:
    """Name the style; a stacked type must equal itself stepped per object, bit for bit.

    Two copies of the protocol in the crash world, once as the type (one stack) and once
    as a subclass that does not define ``act_users_stacked`` (so stepped one by one).
    """
    if not cls.is_stacked():
        return "  style: per object (no act_users_stacked of its own): one protocol at a time"
    alone_name = f"{type_name}__per_object"
    register(alone_name, type(f"{cls.__name__}PerObject", (cls,), {"type_name": alone_name}))
    series = {}
    for name in (type_name, alone_name):
        raw = _raw(name, params, steps, seed, crash=True)
        twin = {**copy.deepcopy(raw["protocols"][-1]), "id": "plugin_2"}
        raw["protocols"].append(twin)
        series[name] = _run(validate(raw, f"stacked check of {type_name}"), "stacked check")
    stacked, alone = series[type_name], series[alone_name]
    if not stacked.equals(alone):
        moved = [c for c in stacked.columns if not stacked[c].equals(alone[c])]
        raise ProtocolCheckError(
            f"{type_name}: act_users_stacked differs from each protocol's act_users in turn "
            f"(two protocols, crash world): columns {moved[:5]}"
        )
    return (
        "  style: stacked (act_users_stacked): two protocols stepped as one stack equal "
        "them stepped one by one, bit for bit"
    )


def _named_assets(type_name: str, params: dict[str, Any]) -> list[str]:
    """Assets the protocol's parameters name (its defaults' if these are invalid)."""
    model = get_protocol_class(type_name).Params
    try:
        return model.model_validate(params).referenced_assets()
    except (pydantic.ValidationError, ValueError, TypeError):
        try:
            return model().referenced_assets()
        except (pydantic.ValidationError, ValueError, TypeError):
            return []


def _run(scenario: Scenario, world_name: str) -> Any:
    """Step the world, checking the contract and total conservation every step."""
    try:
        model = MarketModel(scenario)
    except ConservationError as err:
        raise ProtocolCheckError(f"{world_name} world, set-up: {err}") from None
    model.check_phases = True  # a violation names the phase of the step
    protocol = model.protocols["plugin"]
    cash, units = model.total_cash(), model.total_units()
    _check_contract(protocol, f"{world_name} world, step 0")
    for _ in range(scenario.steps):
        where = f"{world_name} world, step {model.step_index + 1}"
        try:
            model.step()
        except ConservationError as err:
            raise ProtocolCheckError(f"{where}: {err}") from None
        _check_totals(model, cash, units, where)
        if not protocol.defaulted:
            _check_contract(protocol, where)
    return model.timeseries()


def _check_totals(model: MarketModel, cash: float, units: dict[str, float], where: str) -> None:
    scale = max(1.0, *(abs(v) for v in model.external_cash.values()))
    if abs(model.total_cash() - cash) > 1e-9 * scale:
        raise ProtocolCheckError(f"{where}: total cash moved by {model.total_cash() - cash:+.6g}")
    # Round-off relative to the units in play: a minted asset (a CDP's stablecoin) nets
    # to zero over everyone, so its total is no scale.
    gross = model.world.holdings()[3]
    for asset, total in model.total_units().items():
        if abs(total - units[asset]) > 1e-9 * max(1.0, abs(units[asset]), gross[asset]):
            raise ProtocolCheckError(f"{where}: total {asset} moved by {total - units[asset]:+.6g}")


def _number(value: object, what: str, where: str, low: float = -math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ProtocolCheckError(f"{where}: {what} returned {value!r}, not a number")
    if not math.isfinite(value) or value < low:
        raise ProtocolCheckError(f"{where}: {what} = {value!r}, must be finite and >= {low}")
    return float(value)


def _check_contract(protocol: Protocol, where: str) -> None:
    """Types, shapes and ranges of everything the world and the observation read."""
    name = f"{where}: {type(protocol).__name__}"
    for method in ("own_equity", "total_assets", "equity"):
        _number(getattr(protocol, method)(), f"{method}()", name)
    _number(protocol.idle_liquidity(), "idle_liquidity()", name, 0.0)
    _number(protocol.liquidity_need(), "liquidity_need()", name, 0.0)
    _number(protocol.unrealised_losses(), "unrealised_losses()", name, 0.0)
    assets = set(protocol.world.asset_names)
    for method in ("held_units", "asset_exposures"):
        values = getattr(protocol, method)()
        if not isinstance(values, dict) or not set(values) <= assets:
            raise ProtocolCheckError(f"{name}: {method}() = {values!r}: a dict over {assets}")
        for asset, value in values.items():
            _number(value, f"{method}()[{asset!r}]", name)
    features = protocol.feature_values()
    extra = sorted(set(features) - set(FEATURE_NAMES))
    if extra:
        raise ProtocolCheckError(f"{name}: features {extra} are not in FEATURE_NAMES")
    for key, value in features.items():
        if abs(_number(value, f"feature {key!r}", name)) > FEATURE_LIMIT:
            raise ProtocolCheckError(f"{name}: feature {key!r} = {value:g} out of range")
    vector = protocol.features()
    if vector.shape != (len(FEATURE_NAMES),) or vector.dtype != np.float32:
        raise ProtocolCheckError(f"{name}: features() has shape {vector.shape}, {vector.dtype}")
    for offer in protocol.liquidation_candidates():
        _check_offer(protocol, offer, name)
    reader = type(protocol).treasury_reader()
    if reader is not Protocol.treasury_reads:  # a fused version of the type's own
        for days, maturing in ((1.0, 0.0), (3.0, 1e5)):
            own, methods = (
                reader(protocol, days, maturing),
                Protocol.treasury_reads(protocol, days, maturing),
            )
            if own != methods:
                raise ProtocolCheckError(
                    f"{name}: its own treasury_reads({days}, {maturing}) = {own} differs "
                    f"from what its methods give, {methods}"
                )


def _check_offer(protocol: Protocol, offer: object, name: str) -> None:
    if not isinstance(offer, LiquidationOffer) or offer.protocol is not protocol:
        raise ProtocolCheckError(f"{name}: liquidation_candidates() gave {offer!r}")
    if offer.asset not in protocol.world.asset_names:
        raise ProtocolCheckError(f"{name}: offer on unknown asset {offer.asset!r}")
    n = offer.slots.shape
    if offer.slots.ndim != 1 or not np.issubdtype(offer.slots.dtype, np.integer):
        raise ProtocolCheckError(f"{name}: offer slots must be a 1-D integer array")
    for column in ("repay_usd", "seize_units", "reward_usd", "fee_units", "partial_cap"):
        values = getattr(offer, column)
        if values is None and column in ("fee_units", "partial_cap"):
            continue  # optional: no protocol fee; all-or-nothing entries
        if values.shape != n or not np.isfinite(values).all() or (values < 0).any():
            raise ProtocolCheckError(
                f"{name}: offer {column} must be {n[0]} finite values >= 0, got {values!r}"
            )
    if offer.partial_cap is not None and (offer.partial_cap > 1).any():
        raise ProtocolCheckError(f"{name}: offer partial_cap must be shares in [0, 1]")


def _same(first: Any, second: Any, what: str) -> None:
    if first.equals(second):
        return
    for column in first.columns:
        a, b = first[column].to_numpy(), second[column].to_numpy()
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            row = int(np.flatnonzero(a != b)[0]) if a.shape == b.shape else 0
            raise ProtocolCheckError(
                f"{what}: not deterministic: two runs with the same seed differ in "
                f"{column!r} at step {row} ({a[row]!r} vs {b[row]!r}); draw randomness "
                "only from world.rng_for(...) or the rng passed to act_users"
            )
    raise ProtocolCheckError(f"{what}: not deterministic: the time series differ")


def _check_bounded(cls: type[Protocol]) -> None:
    """Every number of ``cls.Params`` has a lower and an upper bound.

    An unbounded amount lets a scenario file put 1e308 into the world, which overflows to
    NaN within a step (issue 19: deposits of 1e308 wrote NaN into summary.json); the
    built-ins bound every number with the limits of :mod:`liqnet.core.schema`.
    """
    for name, info in cls.Params.model_fields.items():
        if info.annotation not in (float, int):
            continue
        lower = any(isinstance(b, annotated_types.Gt | annotated_types.Ge) for b in info.metadata)
        upper = any(isinstance(b, annotated_types.Lt | annotated_types.Le) for b in info.metadata)
        if not (lower and upper):
            missing = (
                "a lower and an upper"
                if not (lower or upper)
                else ("an upper" if lower else "a lower")
            )
            raise ProtocolCheckError(
                f"{cls.Params.__name__}.{info.alias or name}: a number without {missing} "
                "bound; give it Field(ge=..., le=...) (liqnet.core.schema has MAX_USD, "
                "MIN_USD, MAX_MULTIPLIER, MAX_POSITIONS for amounts, multipliers, counts)"
            )


def _check_bad_params(cls: type[Protocol], type_name: str, params: dict[str, Any]) -> int:
    """Each bounded number set out of bounds must fail naming the field; returns how many.

    Every bad value goes through the scenario loader, as a scenario file's would: the
    :class:`ScenarioError` must name ``protocols.<k>.params.<field>``.
    """
    checked = 0
    for name, info in cls.Params.model_fields.items():
        key = info.alias or name
        for bound in info.metadata:
            bad = _outside(bound)
            if bad is None:
                continue
            raw = _raw(type_name, {**params, key: bad}, 5, 0, False)
            where = f"protocols.{_PLUGIN_INDEX}.params.{key}"
            try:
                validate(raw, "bad parameters")
            except ScenarioError as err:
                if where not in str(err):
                    raise ProtocolCheckError(
                        f"{cls.__name__}.Params: {key} = {bad}: the error does not name "
                        f"{where}: {err}"
                    ) from None
            else:
                raise ProtocolCheckError(f"{cls.__name__}.Params accepted {key} = {bad}")
            checked += 1
    return checked


def _outside(bound: object) -> float | None:
    """A value just outside a numeric bound, or None for other metadata."""
    # Numeric fields only: their bounds are numbers (annotated_types types them loosely).
    if isinstance(bound, annotated_types.Gt | annotated_types.Ge):
        low = bound.gt if isinstance(bound, annotated_types.Gt) else bound.ge
        return float(cast(float, low)) - 1.0
    if isinstance(bound, annotated_types.Lt | annotated_types.Le):
        high = bound.lt if isinstance(bound, annotated_types.Lt) else bound.le
        return float(cast(float, high)) + 1.0
    return None
