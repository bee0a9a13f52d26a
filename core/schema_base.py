"""The base of every scenario model: strict pydantic config, physical bounds, error text.

Kept apart from the models (``liqnet.core.schema``) so that model modules of one topic
(``liqnet.core.credit_schema``) can share it without importing each other.
"""

from __future__ import annotations

import typing

import pydantic


def reject_bool_numbers(cls: type[pydantic.BaseModel], data: object) -> object:
    """Before-validator of the strict models: ``true`` is not a number (strict mode
    rejects it too; this message says so in words), and a TOML array given for a tuple
    field becomes a tuple (strict mode takes only tuples, TOML has only arrays)."""
    if not isinstance(data, dict):
        return data
    fixed = dict(data)
    for name, field_info in cls.model_fields.items():
        key = field_info.alias or name
        key = key if key in fixed else name
        value = fixed.get(key)
        if isinstance(value, bool) and field_info.annotation in (float, int):
            raise ValueError(f"{name} = {value!r}: must be a number, not a boolean")
        if isinstance(value, list) and typing.get_origin(field_info.annotation) is tuple:
            fixed[key] = tuple(value)
    return fixed


STRICT_CONFIG = pydantic.ConfigDict(
    extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False, strict=True
)
"""Config of every scenario model: unknown fields, infinities and NaN are errors, and
types are strict (a string is never read as a number or a boolean: ``steps = "3"`` and
``feedback = "yes"`` are errors; integers are accepted for floats)."""

# Physical bounds: generous, finite limits on every amount, price and multiplier, so any
# valid scenario stays within float range however it evolves (docs/architecture.md,
# "Bad input"). Each one is far outside anything observed.
MAX_USD = 1e13
"""Largest USD amount (capital, deposits, open interest, pools): ~4x all crypto (2025)."""
MIN_USD = 1.0
"""Smallest positive USD amount a protocol or agent is sized by (a subnormal one divides
by zero: open_interest_usd = 5e-324 did)."""
MIN_PRICE, MAX_PRICE = 1e-8, 1e8
"""Asset prices in USD: from a memecoin's fraction of a cent to 1000x BTC."""
PRICE_BAND = (1e-6, 1e4)
"""The reference price stays within these multiples of its initial price, so that any
valid scenario's world stays finite (a volatility of 10 times a 1e4 regime multiplier
would otherwise overflow within a step). Terra's LUNA fell by ~1e-6 in a week (May
2022); nothing has risen 1e4-fold within a horizon this simulator runs. A replayed
price path must lie within it too."""
MIN_POOL_USD = 1e4
"""Smallest AMM pool: a pool with less USD than one liquidation is no market."""
MIN_DEPTH_USD = 1e4
"""Smallest CEX 2% depth and daily volume: one market maker's quote."""
MAX_MULTIPLIER = 1e4
"""Largest multiplier (volatility regimes, gas, lever bounds)."""
MAX_POSITIONS = 5_000_000
"""Most positions per protocol."""


def check_bounds(
    name: str,
    bounds: tuple[float, float],
    allowed: tuple[float, float],
    contains: dict[str, float] | None = None,
) -> None:
    """A lever's bounds: ordered (low <= high; equal pins the parameter), inside
    ``allowed`` (inclusive), and holding each starting value in ``contains`` (else the
    first step would snap it to a bound)."""
    low, high = bounds
    if not low <= high:
        raise ValueError(f"{name} = {tuple(bounds)}: must be (low, high) with low <= high")
    if not (allowed[0] <= low and high <= allowed[1]):
        raise ValueError(f"{name} = {tuple(bounds)}: must lie within {allowed}")
    for what, value in (contains or {}).items():
        if not low <= value <= high:
            raise ValueError(f"{what} = {value}: must lie within {name} {tuple(bounds)}")


MAX_SHOWN = 80
"""Longest value repr an error message echoes (a 1 MB string must not make a 1 MB error)."""


def shorten(value: object, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def format_errors(origin: str, err: pydantic.ValidationError, prefix: str = "") -> str:
    """One line per invalid field (its dotted path, value and what is allowed)."""
    lines = [f"{origin}: invalid scenario"]
    for e in err.errors():
        field = (prefix + ".".join(str(p) for p in e["loc"])).rstrip(".") or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {shorten(value)}"
        lines.append(f"  {field}{shown}: {message}")
    return "\n".join(lines)


class StrictModel(pydantic.BaseModel):
    """Base model: unknown fields, infinities, NaN and lax types (strings or booleans as
    numbers) are errors."""

    model_config = STRICT_CONFIG

    _no_bools = pydantic.model_validator(mode="before")(reject_bool_numbers)
