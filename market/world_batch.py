"""WorldBatch: the environment engine, ``B`` worlds of one scenario on a leading axis.

Both environments are this engine: :class:`~liqnet.market.env.LiquidityEnv` (PettingZoo,
dicts keyed by agent) is a batch of one world, and
:class:`~liqnet.market.vector_env.VectorLiquidityEnv` is a batch of ``B``. Observations,
rewards, liveness, episode ends and balance-sheet reads are arrays shaped
``(B, n_agents, ...)``, computed by one array program for all worlds; the few market
features of each world (a handful of assets) are plain floats, converted once per step.
Each world is its own seeded :class:`~liqnet.market.model.MarketModel` (its own random
streams), so world ``b`` seeded ``s`` is exactly a scalar world seeded
``s``; worlds whose episode has ended are masked out of a step, not waited for.

The worlds share one :class:`~liqnet.protocols.position_stack.StackRegistry`, so the
position books of one kind in all worlds are rows of one stack, and a step runs the
users phase (phase 6) of every world at once
(:func:`~liqnet.market.model.step_together`): a stacked type's churn is one array
program over the books of all ``B`` worlds. When a world's episode ends, its rows
go to the next episode's books (:meth:`MarketModel.release_positions`). Still one Python
pass per world: the other phases, each protocol's flows, and the reads of each
protocol's features and balance sheet (``benchmarks/env_throughput.py`` profiles it; the
rest of the engine work is in docs/architecture.md, "Vector environments").

Observation (float32, ``D`` per agent, names in :attr:`observation_names`):

* the protocol's own ``features()`` (:data:`~liqnet.protocols.base.FEATURE_NAMES`);
* per market asset: log return of the reference price over the last step, realised
  volatility over the last ``vol_window`` steps (annualised, uncentred), oracle deviation
  ``reference / oracle - 1`` and pool deviation ``pool / reference - 1``;
* the gas multiplier and a stressed-regime flag (current volatility regime above the
  calmest one);
* the credit market (:data:`~liqnet.market.treasury.MARKET_CREDIT_FEATURES`: last
  clearing rate, best unmatched bid and ask, volume) and the agent's own credit view
  (:data:`~liqnet.market.treasury.OWN_CREDIT_FEATURES`: its projected need, its
  borrowers' health), so a learner can bargain;
* a one-hot of the protocol's type over the built-in types plus the scenario's own types
  (sorted), so the layout does not depend on what else is registered.

Values are made finite (NaN -> 0) and clipped to +-1e6. An agent that was not alive at
the start of the step gets zeros for its own features (the market part is still filled).

Reward of agent ``i`` at step ``t``::

    (equity_t - equity_{t-1}) / scale
    - insolvency_penalty * 1[equity_t < 0]
    - shortfall_penalty * liquidity_need_t / scale

with ``scale`` the protocol's ``total_assets()`` at reset: dimensionless, about 1e-7..1e-5
on a calm step (interest margin) and 1e-3..1 when a crash or a run hits the balance sheet.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING

import numpy as np

from liqnet.core.units import HOURS_PER_YEAR
from liqnet.market.model import MarketModel, step_together
from liqnet.market.treasury import MARKET_CREDIT_FEATURES, OWN_CREDIT_FEATURES, credit_observation
from liqnet.protocols.base import FEATURE_NAMES, Protocol
from liqnet.protocols.position_stack import StackRegistry
from liqnet.protocols.registry import BUILTIN_TYPES

if TYPE_CHECKING:
    from liqnet.core.schema import Scenario

OBS_LIMIT = 1e6
"""Observations are clipped to +-this (after NaN -> 0)."""
MARKET_FEATURES = ("log_return", "realised_vol", "oracle_deviation", "pool_deviation")
"""Per-asset market features, in observation order."""


def check_env_args(
    horizon: int | None, insolvency_penalty: float, shortfall_penalty: float, vol_window: int
) -> None:
    """Raise one ``ValueError`` naming the first environment argument out of range."""
    if horizon is not None and not is_positive_int(horizon):
        raise ValueError(f"horizon = {horizon!r}: must be an integer >= 1 (or None)")
    for name, value in [
        ("insolvency_penalty", insolvency_penalty),
        ("shortfall_penalty", shortfall_penalty),
    ]:
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} = {value!r}: must be a finite number >= 0")
    if not is_positive_int(vol_window):
        raise ValueError(f"vol_window = {vol_window!r}: must be an integer >= 1")


def is_positive_int(value: object) -> bool:
    """An integer (NumPy's too, not a bool) of at least 1."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 1)


class WorldBatch:
    """``num_worlds`` worlds of one scenario; their observations and rewards as arrays.

    Worlds start empty: :meth:`reset_world` gives world ``b`` a fresh
    :class:`MarketModel` with a seed. :meth:`step` advances the worlds it is given.

    Args:
        scenario: A validated scenario.
        num_worlds: ``B``, at least 1.
        horizon: Steps per episode; defaults to ``scenario.steps``.
        insolvency_penalty: See the module docstring (finite, >= 0).
        shortfall_penalty: See the module docstring (finite, >= 0).
        vol_window: Steps in the realised-volatility window (>= 1).

    Raises:
        ValueError: If an argument is out of range (names it).
    """

    def __init__(
        self,
        scenario: Scenario,
        num_worlds: int,
        horizon: int | None = None,
        insolvency_penalty: float = 1.0,
        shortfall_penalty: float = 1.0,
        vol_window: int = 24,
    ) -> None:
        check_env_args(horizon, insolvency_penalty, shortfall_penalty, vol_window)
        if not is_positive_int(num_worlds):
            raise ValueError(f"num_envs = {num_worlds!r}: must be an integer >= 1")
        self.scenario = scenario
        self.num_worlds = b = int(num_worlds)
        self.horizon = scenario.steps if horizon is None else int(horizon)
        self.insolvency_penalty = float(insolvency_penalty)
        self.shortfall_penalty = float(shortfall_penalty)
        self.vol_window = int(vol_window)

        self.possible_agents: list[str] = [spec.id for spec in scenario.protocols]
        self.asset_names: tuple[str, ...] = tuple(scenario.market.assets)
        # A fixed vocabulary (built-in types plus the scenario's own): registering a
        # plugin type elsewhere must not change the layout (saved checkpoints).
        self.protocol_types: tuple[str, ...] = tuple(
            sorted(set(BUILTIN_TYPES) | {spec.type for spec in scenario.protocols})
        )
        self.observation_names: tuple[str, ...] = (
            *FEATURE_NAMES,
            *OWN_CREDIT_FEATURES,
            *(f"{a}.{f}" for a in self.asset_names for f in MARKET_FEATURES),
            "gas_multiplier",
            "stressed_regime",
            *MARKET_CREDIT_FEATURES,
            *(f"type.{t}" for t in self.protocol_types),
        )
        n, a = len(self.possible_agents), len(self.asset_names)
        self.num_agents, self.obs_dim = n, len(self.observation_names)
        self._features_end = len(FEATURE_NAMES) + len(OWN_CREDIT_FEATURES)
        onehot = np.zeros((n, len(self.protocol_types)), dtype=np.float32)
        for i, spec in enumerate(scenario.protocols):
            onehot[i, self.protocol_types.index(spec.type)] = 1.0
        self._onehot_rows: list[list[float]] = onehot.tolist()
        self._steps_per_year = HOURS_PER_YEAR / scenario.dt_hours

        self.position_stacks = StackRegistry()
        """The position stacks all the worlds' books are rows of (one array program per
        stacked type steps every world's books)."""
        self.models: list[MarketModel | None] = [None] * b
        """The world of each slot (``None`` before its first reset)."""
        self._protocols: list[list[Protocol]] = [[] for _ in range(b)]
        self.seeds = np.zeros(b, dtype=np.int64)
        """World seed of each slot's current episode."""
        self.alive = np.zeros((b, n), dtype=bool)
        """Agents alive (not defaulted, episode not over) in each world."""
        self.obs = np.zeros((b, n, self.obs_dim), dtype=np.float32)
        """Latest observations; a fresh array every step (rows handed out stay valid)."""
        self.scale = np.ones((b, n))
        self.equity = np.zeros((b, n))
        self.need = np.zeros((b, n))
        self.bad_debt = np.zeros((b, n))
        self.initial_prices = np.ones((b, a))
        # Per world: last reference prices, the ring of log returns (one list per asset,
        # so a volatility is one fsum over a list), returns seen, and the calmest
        # regime's multiplier (plain floats, see _market_features).
        self._prices: list[list[float]] = [[1.0] * a for _ in range(b)]
        self._returns: list[list[list[float]]] = [[] for _ in range(b)]
        self._returns_seen = [0] * b
        self._calm = [1.0] * b

    # -- episodes ----------------------------------------------------------------------
    def reset_world(self, world: int, seed: int) -> None:
        """Give world ``world`` a fresh episode seeded ``seed`` and observe it."""
        old = self.models[world]
        if old is not None:
            old.release_positions()  # its rows of the shared stacks go to the new world
        model = MarketModel(self.scenario, seed=seed, position_stacks=self.position_stacks)
        self.models[world] = model
        self._protocols[world] = [model.protocols[agent] for agent in self.possible_agents]
        self.seeds[world] = seed
        self.scale[world] = [max(p.total_assets(), 1.0) for p in self._protocols[world]]
        self.alive[world] = True
        self._prices[world] = [model.reference_prices[asset] for asset in self.asset_names]
        self.initial_prices[world] = self._prices[world]
        self._returns[world] = [[0.0] * self.vol_window for _ in self.asset_names]
        self._returns_seen[world] = 0
        self._calm[world] = float(model.price_process.regime_multipliers.min())
        obs = self.obs.copy()
        self._read_worlds([world], self.alive, obs, new_prices=False)
        self.obs = obs

    def model(self, world: int) -> MarketModel:
        """The world in slot ``world`` (it must have been reset)."""
        model = self.models[world]
        if model is None:
            raise RuntimeError("no episode in progress: call reset() first")
        return model

    # -- the step ----------------------------------------------------------------------
    def step(
        self, actions: np.ndarray, worlds: np.ndarray, given: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance ``worlds`` one step with ``actions`` (validated, in [-1, 1]).

        Args:
            actions: ``(B, n_agents, 6)`` levers; rows of dead agents are ignored.
            worlds: Indices of the worlds to step (others keep their state and obs).
            given: ``(B, n_agents)`` mask of the actions to apply; an alive agent
                without one acts with its standing levers (default: all given).

        Returns:
            ``acting`` (agents alive at the start of the step), ``rewards``,
            ``terminations`` and ``truncations``, each ``(B, n_agents)``; zero/False
            outside ``acting``.
        """
        acting = self.alive.copy()
        if worlds.size < self.num_worlds:
            mask = np.zeros(self.num_worlds, dtype=bool)
            mask[worlds] = True
            acting &= mask[:, None]
        apply = acting if given is None else acting & given
        agents = self.possible_agents
        models = [self.model(b) for b in worlds.tolist()]
        for b, model in zip(worlds.tolist(), models, strict=True):
            row = actions[b]
            model.pending_levers.update(
                {agents[i]: row[i] for i in np.flatnonzero(apply[b]).tolist()}
            )
        # Phase 6 of all the worlds at once: their books are rows of the batch's stacks.
        step_together(models)
        previous = self.equity.copy()
        obs = self.obs.copy()
        defaulted = self._read_worlds(worlds.tolist(), acting, obs, new_prices=True)
        self.obs = obs
        equity = self.equity
        change = (equity - previous - self.shortfall_penalty * self.need) / self.scale
        rewards = np.where(acting, change - self.insolvency_penalty * (equity < 0.0), 0.0)
        at_horizon = [m is not None and m.step_index >= self.horizon for m in self.models]
        terminations = acting & defaulted
        truncations = (acting & ~defaulted) & np.array(at_horizon)[:, None]
        # Both are subsets of ``acting``, itself a subset of ``alive``.
        self.alive = self.alive & ~(terminations | truncations)
        return acting, rewards, terminations, truncations

    @property
    def prices(self) -> np.ndarray:
        """``(B, n_assets)``: each world's reference prices as last observed."""
        return np.array(self._prices)

    def state(self) -> np.ndarray:
        """``(B, n_agents * D)``: every agent's observation, zeros for the dead."""
        return np.where(self.alive[:, :, None], self.obs, 0.0).reshape(self.num_worlds, -1)

    # -- reading the worlds ------------------------------------------------------------
    def _read_worlds(
        self, worlds: list[int], live: np.ndarray, obs: np.ndarray, new_prices: bool
    ) -> np.ndarray:
        """Read balance sheets and markets of ``worlds`` into the arrays and ``obs``.

        ``live`` marks whose own features are observed. With ``new_prices`` the step's
        log returns go into each world's ring buffer first. Returns the ``(B, n)``
        default flags. The market features are plain floats per world (with a handful
        of assets NumPy's per-call cost exceeds the arithmetic); all rows become one
        array in a single conversion.
        """
        n_agents, k = self.num_agents, len(worlds)
        zeros = [0.0] * self._features_end
        sheets: list[tuple[float, float, float, bool]] = []
        rows: list[list[float]] = []
        for b in worlds:
            model = self.model(b)
            market = self._market_features(b, new_prices)
            credit, own_credit = credit_observation(model, self.scale[b].tolist())
            market += credit
            # Equity as settlement read it at the end of the step (nothing moved since).
            for protocol, equity, is_live, onehot, own in zip(
                self._protocols[b],
                model.closing_equity,
                live[b].tolist(),
                self._onehot_rows,
                own_credit,
                strict=True,
            ):
                sheets.append(
                    (
                        equity,
                        protocol.liquidity_need(),
                        protocol.realised_bad_debt,
                        protocol.defaulted,
                    )
                )
                rows.append((protocol.feature_list() + own if is_live else zeros) + market + onehot)
        # Basic indexing (views, no copies) when every world is read, as in most steps.
        index: slice | np.ndarray = (
            slice(None) if k == self.num_worlds else np.asarray(worlds, dtype=np.int64)
        )
        sheet = np.array(sheets, dtype=np.float64).reshape(k, n_agents, 4)
        self.equity[index] = sheet[:, :, 0]
        self.need[index] = sheet[:, :, 1]
        self.bad_debt[index] = sheet[:, :, 2]
        defaulted = np.zeros(self.alive.shape, dtype=bool)
        defaulted[index] = sheet[:, :, 3] != 0.0
        matrix = np.array(rows, dtype=np.float32).reshape(k, n_agents, self.obs_dim)
        if not np.isfinite(matrix).all():
            np.nan_to_num(matrix, copy=False, nan=0.0, posinf=OBS_LIMIT, neginf=-OBS_LIMIT)
        np.clip(matrix, -OBS_LIMIT, OBS_LIMIT, out=matrix)
        obs[index] = matrix
        return defaulted

    def _market_features(self, world: int, new_prices: bool) -> list[float]:
        """World ``world``'s market part of the observation (see the module docstring);
        with ``new_prices`` the step's log returns enter its ring buffer first."""
        model = self.model(world)
        reference = model.reference_prices
        prices = self._prices[world]
        rings = self._returns[world]
        if new_prices:
            slot = self._returns_seen[world] % self.vol_window
            for j, asset in enumerate(self.asset_names):
                price, previous = reference[asset], prices[j]
                ok = price > 0.0 and previous > 0.0 and math.isfinite(price / previous)
                rings[j][slot] = math.log(price / previous) if ok else 0.0
                prices[j] = price
            self._returns_seen[world] += 1
        seen = min(self._returns_seen[world], self.vol_window)
        last = (self._returns_seen[world] - 1) % self.vol_window
        values: list[float] = []
        for j, asset in enumerate(self.asset_names):
            price, oracle = prices[j], model.oracle_prices[asset]
            pool = model.pools[asset].price
            ring = rings[j]
            squares = math.fsum(map(operator.mul, ring, ring))  # unfilled slots are 0
            vol = math.sqrt(squares / seen * self._steps_per_year) if seen else 0.0
            oracle_dev = price / oracle - 1.0 if oracle > 0.0 else 0.0
            pool_dev = pool / price - 1.0 if price > 0.0 else 0.0
            values += (ring[last] if seen else 0.0, vol, oracle_dev, pool_dev)
        process = model.price_process
        stressed = process.regime_multipliers[process.regime] > self._calm[world]
        values += (model.gas_multiplier, float(stressed))
        return values
