"""SPAN-like portfolio margin for option books: worst loss over a spot x volatility grid.

A portfolio is struct-of-arrays (one entry per position: signed quantity, strike, expiry,
kind) on one underlying with one spot and one volatility. Margin is the worst loss over
the grid's scenarios, floored at 0. Two engines share the API:

- full revaluation (default): every position repriced in every scenario, vectorised over
  positions x scenarios (positions processed in blocks only to bound memory);
- ``greeks_approximation=True``: the portfolio's aggregate delta, gamma, vega and theta
  give each scenario's P&L by a second-order Taylor expansion in O(positions + scenarios).
  It misses vanna, volga and higher-order terms, so it is accurate for small moves only;
  `greeks_approximation_error` measures the gap for a given book.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from liqnet.protocols.options.pricing import KindLike, black_scholes

__all__ = [
    "DEFAULT_PRICE_MOVES",
    "DEFAULT_VOL_MOVES",
    "ApproximationReport",
    "StressGrid",
    "StressResult",
    "greeks_approximation_error",
    "portfolio_stress_loss",
    "stress_grid",
]

#: Relative spot moves from -30% to +30% in 5% steps (SPAN scans a price range in steps).
DEFAULT_PRICE_MOVES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(-6, 7))
#: Relative volatility moves: vol x 0.7, unchanged, vol x 1.3.
DEFAULT_VOL_MOVES: tuple[float, ...] = (-0.3, 0.0, 0.3)
# Elements (positions x scenarios) priced at once in full revaluation: ~2 MB per temporary.
_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class StressGrid:
    """Scenario grid: every relative spot move paired with every relative volatility move.

    Scenario ``k`` is ``(price_moves[k // n_vol], vol_moves[k % n_vol])`` (price-major).

    Attributes:
        price_moves: Relative spot moves, new spot = spot x (1 + move); read-only, > -1.
        vol_moves: Relative volatility moves, new vol = vol x (1 + move); read-only, >= -1.
        horizon_years: Time that passes before the book can be closed out (options decay
            over it); 0 means an instantaneous shock.
    """

    price_moves: np.ndarray
    vol_moves: np.ndarray
    horizon_years: float = 0.0

    @property
    def n_scenarios(self) -> int:
        """Number of scenarios, ``len(price_moves) * len(vol_moves)``."""
        return self.price_moves.size * self.vol_moves.size

    @property
    def scenario_price_moves(self) -> np.ndarray:
        """Relative spot move of each scenario, shape ``(n_scenarios,)``."""
        return np.repeat(self.price_moves, self.vol_moves.size)

    @property
    def scenario_vol_moves(self) -> np.ndarray:
        """Relative volatility move of each scenario, shape ``(n_scenarios,)``."""
        return np.tile(self.vol_moves, self.price_moves.size)


def _moves(name: str, values: npt.ArrayLike, floor: float, strict: bool) -> np.ndarray:
    """Validate a 1-D, non-empty, finite vector of moves above ``floor``; return it read-only."""
    arr = np.array(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers; got {values!r}")
    below = arr <= floor if strict else arr < floor
    if below.any():
        rule = ">" if strict else ">="
        raise ValueError(f"{name} must all be {rule} {floor}; got {arr[below].tolist()}")
    arr.setflags(write=False)  # the grid is frozen, its arrays too
    return arr


def stress_grid(
    price_moves: npt.ArrayLike = DEFAULT_PRICE_MOVES,
    vol_moves: npt.ArrayLike = DEFAULT_VOL_MOVES,
    horizon_years: float = 0.0,
) -> StressGrid:
    """Build a validated `StressGrid`.

    Args:
        price_moves: Relative spot moves, each > -1 (spot must stay positive).
        vol_moves: Relative volatility moves, each >= -1 (volatility must stay >= 0).
        horizon_years: Close-out horizon in years, >= 0.

    Returns:
        The grid, with read-only float64 arrays.

    Raises:
        ValueError: a move or the horizon is out of range; the message names the field.
    """
    if not np.isfinite(horizon_years) or horizon_years < 0:
        raise ValueError(f"horizon_years must be finite and >= 0; got {horizon_years!r}")
    return StressGrid(
        price_moves=_moves("price_moves", price_moves, -1.0, strict=True),
        vol_moves=_moves("vol_moves", vol_moves, -1.0, strict=False),
        horizon_years=float(horizon_years),
    )


@dataclass(frozen=True)
class StressResult:
    """Outcome of a portfolio stress test.

    Attributes:
        margin: Worst loss across the grid, floored at 0 (the margin requirement).
        worst_scenario: Index of the scenario with the largest loss.
        worst_price_move: Relative spot move of that scenario.
        worst_vol_move: Relative volatility move of that scenario.
        scenario_losses: Loss per scenario (positive = loss), shape ``(n_scenarios,)``.
        portfolio_value: Mark-to-model value of the book now (sum of quantity x price).
        method: ``"full"`` (full revaluation) or ``"greeks"`` (Taylor approximation).
        grid: The grid that was used.
    """

    margin: float
    worst_scenario: int
    worst_price_move: float
    worst_vol_move: float
    scenario_losses: np.ndarray
    portfolio_value: float
    method: Literal["full", "greeks"]
    grid: StressGrid

    @classmethod
    def from_losses(
        cls, losses: np.ndarray, value: float, method: Literal["full", "greeks"], grid: StressGrid
    ) -> StressResult:
        """The result for per-scenario ``losses`` of a book worth ``value`` now."""
        worst = int(np.argmax(losses))
        losses.setflags(write=False)
        return cls(
            margin=max(0.0, float(losses[worst])),
            worst_scenario=worst,
            worst_price_move=float(grid.scenario_price_moves[worst]),
            worst_vol_move=float(grid.scenario_vol_moves[worst]),
            scenario_losses=losses,
            portfolio_value=value,
            method=method,
            grid=grid,
        )

    def loss_table(self) -> np.ndarray:
        """Losses reshaped to ``(len(price_moves), len(vol_moves))`` for display."""
        return self.scenario_losses.reshape(self.grid.price_moves.size, self.grid.vol_moves.size)


_POS_FIELDS = ("quantity", "strike", "expiry_years", "kind")


def _positions(
    quantity: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    kind: KindLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast the per-position arrays to one 1-D length and check the quantities."""
    q = np.asarray(quantity, dtype=np.float64)
    if not np.all(np.isfinite(q)):
        raise ValueError(f"quantity must be finite; bad at {np.argwhere(~np.isfinite(q))[:5]}")
    arrays = [q, np.asarray(strike, np.float64), np.asarray(expiry_years, np.float64)]
    arrays.append(np.asarray(kind))
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n}={a.shape}" for n, a in zip(_POS_FIELDS, arrays, strict=True))
        raise ValueError(f"position arrays must have one common length; got {shapes}") from None
    if len(shape) > 1:
        raise ValueError(f"position arrays must be 1-D (one entry per position); got {shape}")
    n = shape[0] if shape else 1
    q, K, T, kinds = (np.broadcast_to(a, (n,)) for a in arrays)
    return q, K, T, kinds


def _check_market(spot: float, volatility: float, rate: float) -> None:
    """Scalar market inputs: named errors before any array work starts."""
    for name, value, ok in (
        ("spot", spot, spot > 0),
        ("volatility", volatility, volatility >= 0),
        ("rate", rate, True),
    ):
        if not (np.isfinite(value) and ok):
            rule = {"spot": "finite and > 0", "volatility": "finite and >= 0"}.get(name, "finite")
            raise ValueError(f"{name} must be {rule}; got {value!r}")


def portfolio_stress_loss(
    quantity: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    kind: KindLike,
    spot: float,
    volatility: float,
    grid: StressGrid | None = None,
    *,
    rate: float = 0.0,
    greeks_approximation: bool = False,
) -> StressResult:
    """Stress a book of options on one underlying and return the SPAN-like margin.

    Args:
        quantity: Signed contracts per position (+ long, - short).
        strike: Strike per position, > 0.
        expiry_years: Time to expiry per position in years, >= 0.
        kind: ``"call"``/``"put"`` for all, or per position bools (True = call) / strings.
        spot: Current underlying price, > 0.
        volatility: Current annualised volatility of the underlying, >= 0.
        grid: Scenario grid; `stress_grid()` defaults when None.
        rate: Continuously compounded risk-free rate.
        greeks_approximation: Use the delta-gamma-vega(-theta) Taylor expansion instead of
            full revaluation (fast, approximate; see `greeks_approximation_error`).

    Returns:
        `StressResult` with the margin, worst scenario and loss per scenario.

    Raises:
        ValueError: inputs out of range or position arrays of different lengths.
    """
    grid = stress_grid() if grid is None else grid
    _check_market(spot, volatility, rate)
    q, K, T, kinds = _positions(quantity, strike, expiry_years, kind)
    now = black_scholes(spot, K, T, rate, volatility, kinds)
    value = float(q @ now.price)
    d_spot = spot * grid.scenario_price_moves
    d_vol = volatility * grid.scenario_vol_moves
    h = grid.horizon_years

    if greeks_approximation:
        # Aggregate first: each scenario then costs O(1) instead of O(positions).
        delta, gamma, vega, theta = (
            float(q @ g) for g in (now.delta, now.gamma, now.vega, now.theta)
        )
        pnl = delta * d_spot + 0.5 * gamma * d_spot**2 + vega * d_vol + theta * h
        losses = -pnl
    else:
        s_spot = (spot + d_spot)[None, :]
        s_vol = (volatility + d_vol)[None, :]
        # Past-expiry positions are worth their intrinsic value at the horizon.
        t_h = np.maximum(T - h, 0.0)[:, None]
        block = max(1, _BLOCK_ELEMENTS // grid.n_scenarios)
        scenario_value = np.zeros(grid.n_scenarios)
        for start in range(0, q.size, block):  # memory bound only; each block is vectorised
            b = slice(start, start + block)
            priced = black_scholes(s_spot, K[b, None], t_h[b], rate, s_vol, kinds[b, None])
            scenario_value += q[b] @ priced.price
        losses = value - scenario_value

    return StressResult.from_losses(
        losses, value, "greeks" if greeks_approximation else "full", grid
    )


@dataclass(frozen=True)
class ApproximationReport:
    """How far the Greeks (Taylor) margin is from full revaluation for one book.

    Attributes:
        full: Full-revaluation result.
        approx: Greeks-approximation result.
        scenario_errors: ``approx.scenario_losses - full.scenario_losses`` per scenario.
        max_abs_error: Largest absolute per-scenario loss error.
        margin_error: ``approx.margin - full.margin`` (negative = approximation under-margins).
        relative_margin_error: ``|margin_error| / full.margin``; 0 when both margins are 0
            and inf when only the full margin is 0.
    """

    full: StressResult
    approx: StressResult
    scenario_errors: np.ndarray
    max_abs_error: float
    margin_error: float
    relative_margin_error: float


def greeks_approximation_error(
    quantity: npt.ArrayLike,
    strike: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    kind: KindLike,
    spot: float,
    volatility: float,
    grid: StressGrid | None = None,
    *,
    rate: float = 0.0,
) -> ApproximationReport:
    """Run both engines of `portfolio_stress_loss` on one book and report the difference.

    Args:
        quantity: Signed contracts per position (+ long, - short).
        strike: Strike per position.
        expiry_years: Time to expiry per position in years.
        kind: ``"call"``/``"put"`` or per position bools (True = call) / strings.
        spot: Current underlying price.
        volatility: Current annualised volatility.
        grid: Scenario grid; `stress_grid()` defaults when None.
        rate: Continuously compounded risk-free rate.

    Returns:
        `ApproximationReport` with both results and the per-scenario and margin errors.
    """
    args = (quantity, strike, expiry_years, kind, spot, volatility, grid)
    full = portfolio_stress_loss(*args, rate=rate)
    approx = portfolio_stress_loss(*args, rate=rate, greeks_approximation=True)
    errors = approx.scenario_losses - full.scenario_losses
    margin_error = approx.margin - full.margin
    if full.margin > 0:
        relative = abs(margin_error) / full.margin
    else:
        relative = 0.0 if margin_error == 0 else float("inf")
    return ApproximationReport(
        full=full,
        approx=approx,
        scenario_errors=errors,
        max_abs_error=float(np.max(np.abs(errors))),
        margin_error=margin_error,
        relative_margin_error=relative,
    )
