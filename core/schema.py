"""Scenario schema: the pydantic models a scenario is validated against.

The schema describes a world; it reads no files (``liqnet.scenarios.loader`` does).
Unknown fields are errors everywhere. Protocol ``params`` tables and the negotiation
mechanism are validated against their registries by ``liqnet.scenarios.loader.validate``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import Field

from liqnet.core.credit_schema import CreditLimitSpec, NegotiationSpec
from liqnet.core.levers import DEFAULT_LEVERS
from liqnet.core.schema_base import (
    MAX_MULTIPLIER,
    MAX_POSITIONS,
    MAX_PRICE,
    MAX_SHOWN,
    MAX_USD,
    MIN_DEPTH_USD,
    MIN_POOL_USD,
    MIN_PRICE,
    MIN_USD,
    PRICE_BAND,
    STRICT_CONFIG,
    StrictModel,
    check_bounds,
    format_errors,
    reject_bool_numbers,
    shorten,
)

__all__ = [
    "MAX_MULTIPLIER",
    "MAX_POSITIONS",
    "MAX_PRICE",
    "MAX_SHOWN",
    "MAX_USD",
    "MIN_DEPTH_USD",
    "MIN_POOL_USD",
    "MIN_PRICE",
    "MIN_USD",
    "NAME_PATTERN",
    "PRICE_BAND",
    "STRICT_CONFIG",
    "AgentSpec",
    "AssetSpec",
    "CreditLimitSpec",
    "GasSpikeSpec",
    "KeeperSpec",
    "MarketSpec",
    "NegotiationSpec",
    "OracleSpec",
    "ProtocolSpec",
    "RegimeSpec",
    "ReplaySpec",
    "Scenario",
    "ShockSpec",
    "StrictModel",
    "check_bounds",
    "format_errors",
    "reject_bool_numbers",
    "shorten",
]


class OracleSpec(StrictModel):
    """Oracle of one asset (defaults: Chainlink ETH/USD, 0.5% deviation, 1 h heartbeat)."""

    deviation_threshold: float = Field(0.005, ge=0.0, le=0.5)
    heartbeat_hours: float = Field(1.0, gt=0.0, le=168.0)
    latency_steps: int = Field(0, ge=0, le=1000)


MAX_KNOTS = 10_000_000
"""Most knots of a replayed price path (one per step of the longest run)."""


class ReplaySpec(StrictModel):
    """A replayed price path (docs/architecture.md, "Historical replay"): ``knots`` of
    ``(step, price)``, steps from 1, interpolated in log price from the asset's ``price``
    at step 0. The loader turns a file's ``csv`` into knots and records the file in
    ``csv`` and the ``(dt_hours, steps)`` it resampled for in ``csv_grid``."""

    knots: list[tuple[int, float]] | None = Field(None, max_length=MAX_KNOTS)
    mode: Literal["replace", "add"] = "replace"
    csv: str | None = Field(None, max_length=4096)
    csv_grid: tuple[float, int] | None = None

    @pydantic.field_validator("knots", "csv_grid", mode="before")
    @classmethod
    def _as_tuples(cls, value: object, info: pydantic.ValidationInfo) -> object:
        # TOML and JSON have arrays only; strict mode takes a tuple only as a tuple.
        if isinstance(value, list) and info.field_name == "csv_grid":
            return tuple(value)
        if isinstance(value, list):
            return [tuple(k) if isinstance(k, list) else k for k in value]
        return value

    @pydantic.model_validator(mode="after")
    def _check(self) -> ReplaySpec:
        if self.csv is not None and self.csv_grid is None:
            raise ValueError(
                f"csv = {shorten(self.csv)}: a CSV is read by the scenario loader "
                "(liqnet.scenarios.load), which resamples it into knots"
            )
        if not self.knots:
            raise ValueError('give knots = [[step, price], ...] (at least one) or csv = "f.csv"')
        previous = 0
        for k, (step, price) in enumerate(self.knots):
            if step <= previous:
                after = f"after step {previous} (knots[{k - 1}])" if k else ">= 1 (steps from 1)"
                raise ValueError(f"knots[{k}] = {(step, price)}: step {step} is not {after}")
            previous = step
        return self


class AssetSpec(StrictModel):
    """One market asset: price dynamics, its AMM pool and its oracle."""

    price: float = Field(ge=MIN_PRICE, le=MAX_PRICE, description="initial price in USD")
    volatility: float = Field(gt=0.0, le=10.0, description="annual volatility (calm regime)")
    drift: float = Field(0.0, ge=-10.0, le=10.0)
    jump_intensity: float = Field(0.0, ge=0.0, le=1000.0, description="jumps per year")
    jump_mean: float = Field(0.0, ge=-2.0, le=2.0, description="mean log jump")
    jump_std: float = Field(0.0, ge=0.0, le=2.0)
    pool_usd: float = Field(
        100e6, ge=MIN_POOL_USD, le=MAX_USD, description="USD reserve of the AMM pool"
    )
    pool_fee: float = Field(0.003, ge=0.0, lt=0.1)
    # Centralised-exchange order-book depth: USD of bids within 2% below mid, summed over
    # the major exchanges, the measure Kaiko publishes ("2% market depth"). What
    # arbitrageurs can sell there within a dislocation, and what forced flow within a
    # step sweeps. Built-in values, with sources: baseline.toml.
    cex_depth_2pct_usd: float = Field(
        100e6, ge=MIN_DEPTH_USD, le=1e12, description="CEX bid depth within 2% of mid, USD"
    )
    daily_volume_usd: float = Field(
        5e9,
        ge=MIN_DEPTH_USD,
        le=MAX_USD,
        description="daily spot volume V of the square-root impact law",
    )
    oracle: OracleSpec = Field(default_factory=OracleSpec)
    replay: ReplaySpec | None = None

    @pydantic.model_validator(mode="after")
    def _check_replay(self) -> AssetSpec:
        if self.replay is None or not self.replay.knots:
            return self
        # The same arithmetic as PriceProcess's band, so a knot inside is never clipped.
        low, high = (math.log(self.price) + math.log(m) for m in PRICE_BAND)
        for k, (step, price) in enumerate(self.replay.knots):
            if not MIN_PRICE <= price <= MAX_PRICE or not low <= math.log(price) <= high:
                raise ValueError(
                    f"replay.knots[{k}] = {(step, price)}: price must lie in "
                    f"[{MIN_PRICE:g}, {MAX_PRICE:g}] and within {PRICE_BAND} times the "
                    f"initial price {self.price:g}"
                )
        return self


class RegimeSpec(StrictModel):
    """Markov volatility regimes: multipliers and a per-step transition matrix."""

    multipliers: list[float] = Field(
        default_factory=lambda: [1.0, 3.0], min_length=1, max_length=16
    )
    transitions: list[list[float]] = Field(default_factory=lambda: [[0.998, 0.002], [0.02, 0.98]])
    initial: int = Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _check(self) -> RegimeSpec:
        n = len(self.multipliers)
        matrix = np.asarray(self.transitions, dtype=float)
        if matrix.shape != (n, n):
            raise ValueError(f"transitions must be a {n}x{n} matrix (one row per multiplier)")
        if (matrix < 0).any() or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-9):
            raise ValueError("transitions rows must be non-negative and sum to 1")
        if any(not 1e-3 <= m <= MAX_MULTIPLIER for m in self.multipliers):
            raise ValueError(f"multipliers must lie in [0.001, {MAX_MULTIPLIER:g}]")
        if self.initial >= n:
            raise ValueError(f"initial = {self.initial}: must be < {n}")
        return self


class MarketSpec(StrictModel):
    """Assets, their correlations, regimes and market-depth feedback."""

    assets: dict[str, AssetSpec] = Field(min_length=1)
    correlations: dict[str, float] = Field(
        default_factory=dict, description='pairwise, keyed "A/B", e.g. "ETH/BTC" = 0.8'
    )
    regimes: RegimeSpec = Field(default_factory=RegimeSpec)
    # Square-root impact of forced flow on the reference price (liqnet.market.prices
    # .SquareRootImpact): peak Y * sigma_daily * sqrt(Q / V), of which permanent_impact
    # stays (~2/3: Farmer et al. 2013). Y "of order 1" (Toth et al. 2011).
    permanent_impact: float = Field(
        2.0 / 3.0,
        ge=0.0,
        le=1.0,
        description="share of the square-root peak impact of forced flow kept by the reference",
    )
    impact_y: float = Field(
        1.0, ge=0.0, le=10.0, description="prefactor Y of the square-root impact law"
    )
    impact_memory_hours: float = Field(
        24.0, gt=0.0, le=24.0 * 365, description="forced flow adds up as one metaorder over this"
    )
    max_cascade_rounds: int = Field(10, ge=1, le=1000)

    def correlation_matrix(self) -> np.ndarray:
        """The full correlation matrix in asset order."""
        names = list(self.assets)
        matrix = np.eye(len(names))
        for pair, rho in self.correlations.items():
            a, b = pair.split("/")
            i, j = names.index(a), names.index(b)
            matrix[i, j] = matrix[j, i] = rho
        return matrix

    @pydantic.model_validator(mode="after")
    def _check(self) -> MarketSpec:
        for pair, rho in self.correlations.items():
            parts = pair.split("/")
            if len(parts) != 2 or any(p not in self.assets for p in parts) or parts[0] == parts[1]:
                raise ValueError(
                    f"correlations key {pair!r}: must be 'A/B' with two different assets "
                    f"from {list(self.assets)}"
                )
            if not -1.0 < rho < 1.0:
                raise ValueError(f"correlations[{pair!r}] = {rho}: must be in (-1, 1)")
        if np.linalg.eigvalsh(self.correlation_matrix()).min() <= 0:
            raise ValueError("correlations do not form a positive-definite matrix")
        return self


class AgentSpec(StrictModel):
    """A liquidator or arbitrageur: capital, gas and minimum profit."""

    capital_usd: float = Field(ge=MIN_USD, le=MAX_USD)
    gas_cost_usd: float = Field(2.0, ge=0.0, le=1e6)
    min_profit_usd: float = Field(1.0, ge=0.0, le=MAX_USD)


class ShockSpec(StrictModel):
    """A scripted move of one asset's reference price during world step ``step`` (from 1)."""

    step: int = Field(ge=1)
    asset: str
    return_: float = Field(alias="return", gt=-1.0, le=10.0, description="simple return")


class GasSpikeSpec(StrictModel):
    """Expensive gas (as on Black Thursday) from world step ``step`` (from 1) on."""

    step: int = Field(ge=1)
    duration_steps: int = Field(ge=1, description="at most the steps left in the run")
    multiplier: float = Field(gt=0.0, le=MAX_MULTIPLIER)


class ProtocolSpec(StrictModel):
    """One protocol: a unique id, a registered type, its parameters and standing levers.

    ``levers`` are used on every step in which no agent sets them (static governance);
    e.g. ``levers = { lend = 0.0, lend_rate = -0.5 }`` offers half of the idle cash.
    """

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    levers: dict[str, float] = Field(default_factory=dict)
    policy: str = Field(
        "static", min_length=1, description='who sets the levers: "static" or a policy spec'
    )

    @pydantic.field_validator("levers")
    @classmethod
    def _check_levers(cls, levers: dict[str, float]) -> dict[str, float]:
        for name, value in levers.items():
            if name not in DEFAULT_LEVERS:
                raise ValueError(f"unknown lever {name!r}; allowed: {list(DEFAULT_LEVERS)}")
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"levers.{name} = {value}: must be in [-1, 1]")
        return levers

    def lever_vector(self) -> np.ndarray:
        """The standing levers as a vector in ``LEVER_NAMES`` order."""
        return np.array([self.levers.get(n, d) for n, d in DEFAULT_LEVERS.items()])


NAME_PATTERN = r"^[A-Za-z0-9_\-]+$"
"""Scenario and sweep names: letters, digits, ``_`` and ``-``. Names become folder names
(``runs/NAME-seedN``), so nothing else is allowed (no separators, dots, NUL or spaces)."""


class KeeperSpec(StrictModel):
    """A keeper bidding in collateral auctions (``liqnet.market.keepers``).

    Each step its transactions land with probability ``1 / (1 + (gas /
    gas_tolerance)^4)`` (half at ``gas = gas_tolerance``: congestion outbids its gas-price
    cap), and an English bid also needs its latency, ``latency_hours x gas``, within the
    auction's bid duration ``ttl``.
    """

    capital_usd: float = Field(ge=MIN_USD, le=MAX_USD, description="cash to source stablecoin")
    stable_units: float = Field(0.0, ge=0.0, le=MAX_USD, description="stablecoin held at start")
    stablecoin: str | None = Field(None, description="market asset of that inventory")
    gas_cost_usd: float = Field(20.0, ge=0.0, le=1e6, description="USD per transaction at gas 1")
    gas_tolerance: float = Field(3.0, gt=0.0, le=MAX_MULTIPLIER, description="half fail here")
    latency_hours: float = Field(1.0 / 60.0, ge=0.0, le=24.0, description="tx landing time")
    min_profit: float = Field(0.05, ge=0.0, lt=1.0, description="margin kept of resale value")
    max_stable_price: float = Field(
        1.10, ge=1.0, le=10.0, description="most USD it pays per stablecoin on the pool"
    )


class Scenario(StrictModel):
    """A complete, validated scenario."""

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**63)
    steps: int = Field(ge=1, le=10_000_000)
    # One second to one week: a smaller step would overflow per-step rates.
    dt_hours: float = Field(1.0, ge=1.0 / 3600.0, le=24.0 * 7)
    feedback: bool = True
    market: MarketSpec
    protocols: list[ProtocolSpec] = Field(min_length=1)
    liquidators: list[AgentSpec] = Field(min_length=1, max_length=1000)
    arbitrageurs: list[AgentSpec] = Field(default_factory=list, max_length=1000)
    keepers: list[KeeperSpec] = Field(default_factory=list, max_length=1000)
    shocks: list[ShockSpec] = Field(default_factory=list, max_length=10_000)
    gas_spikes: list[GasSpikeSpec] = Field(default_factory=list, max_length=1000)
    negotiation: NegotiationSpec = Field(default_factory=NegotiationSpec)

    @pydantic.model_validator(mode="after")
    def _check(self) -> Scenario:
        ids = [p.id for p in self.protocols]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"protocol ids must be unique; repeated: {duplicates}")
        for k, shock in enumerate(self.shocks):
            if shock.asset not in self.market.assets:
                raise ValueError(
                    f"shocks[{k}].asset = {shock.asset!r}: allowed {list(self.market.assets)}"
                )
            if shock.step > self.steps:
                raise ValueError(
                    f"shocks[{k}].step = {shock.step}: must be <= steps ({self.steps})"
                )
        for k, keeper in enumerate(self.keepers):
            if keeper.stable_units and keeper.stablecoin not in self.market.assets:
                raise ValueError(
                    f"keepers[{k}].stablecoin = {keeper.stablecoin!r}: its stable_units need a "
                    f"market asset; allowed {list(self.market.assets)}"
                )
        for k, spike in enumerate(self.gas_spikes):
            if spike.step > self.steps:
                raise ValueError(
                    f"gas_spikes[{k}].step = {spike.step}: must be <= steps ({self.steps})"
                )
            left = self.steps - spike.step + 1
            if spike.duration_steps > left:
                raise ValueError(
                    f"gas_spikes[{k}].duration_steps = {spike.duration_steps}: must be <= "
                    f"the steps left from its step ({left})"
                )
        for name, asset in self.market.assets.items():
            replay, where = asset.replay, f"market.assets.{name}.replay"
            if replay is None or not replay.knots:
                continue
            # CSV knots fit the grid they were resampled for (loader.validate resamples).
            if replay.csv_grid is not None and (
                replay.csv_grid[0] != self.dt_hours or replay.csv_grid[1] < self.steps
            ):
                raise ValueError(
                    f"{where}.csv_grid = {replay.csv_grid}: resampled from the CSV for other "
                    f"dt_hours or fewer steps than ({self.dt_hours:g}, {self.steps})"
                )
            if (last := replay.knots[-1])[0] > self.steps:
                k = len(replay.knots) - 1
                raise ValueError(
                    f"{where}.knots[{k}] = {last}: step must be <= steps ({self.steps})"
                )
        return self

    def shock_table(self) -> dict[int, dict[str, float]]:
        """Scripted shocks as ``{step: {asset: compounded simple return}}``."""
        table: dict[int, dict[str, float]] = {}
        for shock in self.shocks:
            moves = table.setdefault(shock.step, {})
            moves[shock.asset] = (1.0 + moves.get(shock.asset, 0.0)) * (1.0 + shock.return_) - 1.0
        return table
