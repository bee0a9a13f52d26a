"""WorldBatch: the environment engine, ``B`` worlds of one scenario on a leading axis.

Both environments are this engine: :class:`~liqnet.market.env.LiquidityEnv` (PettingZoo,
dicts keyed by agent) is a batch of one world, and
:class:`~liqnet.market.vector_env.VectorLiquidityEnv` is a batch of ``B``. Observations,
rewards, liveness, episode ends, the price ring buffer and every market feature are
arrays shaped ``(B, n_agents, ...)`` or ``(B, n_assets)``, computed by one array program
for all worlds. Each world is its own seeded :class:`~liqnet.market.model.MarketModel`
(its own random streams), so world ``b`` seeded ``s`` is exactly a scalar world seeded
``s``; worlds whose episode has ended are masked out of a step, not waited for.

What is still one Python pass per world is ``MarketModel.step`` itself and the reads of
each protocol's features and balance sheet (about 90% of a step's cost on ``baseline``).
Batching those (protocols of one type stacked as array rows) is the rest of the engine
work (docs/architecture.md, "Vector environments").

Observation (float32, ``D`` per agent, names in :attr:`observation_names`):

* the protocol's own ``features()`` (:data:`~liqnet.protocols.base.FEATURE_NAMES`);
* per market asset: log return of the reference price over the last step, realised
  volatility over the last ``vol_window`` steps (annualised, uncentred), oracle deviation
  ``reference / oracle - 1`` and pool deviation ``pool / reference - 1``;
* the gas multiplier and a stressed-regime flag (current volatility regime above the
  calmest one);
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
from typing import TYPE_CHECKING

import numpy as np

from liqnet.core.units import HOURS_PER_YEAR
from liqnet.market.model import MarketModel
from liqnet.protocols.base import FEATURE_NAMES, Protocol
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
            *(f"{a}.{f}" for a in self.asset_names for f in MARKET_FEATURES),
            "gas_multiplier",
            "stressed_regime",
            *(f"type.{t}" for t in self.protocol_types),
        )
        n, a = len(self.possible_agents), len(self.asset_names)
        self.num_agents, self.obs_dim = n, len(self.observation_names)
        self._features_end = len(FEATURE_NAMES)
        self._market_end = self._features_end + 4 * a + 2
        onehot = np.zeros((n, len(self.protocol_types)), dtype=np.float32)
        for i, spec in enumerate(scenario.protocols):
            onehot[i, self.protocol_types.index(spec.type)] = 1.0
        self._onehot = onehot
        self._steps_per_year = HOURS_PER_YEAR / scenario.dt_hours

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
        self.prices = np.ones((b, a))
        self.initial_prices = np.ones((b, a))
        self._returns = np.zeros((b, self.vol_window, a))
        self._returns_seen = np.zeros(b, dtype=np.int64)
        self._calm = np.ones(b)

    # -- episodes ----------------------------------------------------------------------
    def reset_world(self, world: int, seed: int) -> None:
        """Give world ``world`` a fresh episode seeded ``seed`` and observe it."""
        model = MarketModel(self.scenario, seed=seed)
        self.models[world] = model
        self._protocols[world] = [model.protocols[agent] for agent in self.possible_agents]
        self.seeds[world] = seed
        self.scale[world] = [max(p.total_assets(), 1.0) for p in self._protocols[world]]
        self.alive[world] = True
        self.prices[world] = [model.reference_prices[asset] for asset in self.asset_names]
        self.initial_prices[world] = self.prices[world]
        self._returns[world] = 0.0
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
        for b in worlds.tolist():
            model = self.model(b)
            row = actions[b]
            model.pending_levers.update(
                {agents[i]: row[i] for i in np.flatnonzero(apply[b]).tolist()}
            )
            model.step()
        previous = self.equity.copy()
        obs = self.obs.copy()
        defaulted = self._read_worlds(worlds.tolist(), acting, obs, new_prices=True)
        self.obs = obs
        rewards = (self.equity - previous - self.shortfall_penalty * self.need) / self.scale
        rewards -= self.insolvency_penalty * (self.equity < 0.0)
        rewards = np.where(acting, rewards, 0.0)
        at_horizon = np.array([m is not None and m.step_index >= self.horizon for m in self.models])
        terminations = acting & defaulted
        truncations = acting & ~defaulted & at_horizon[:, None]
        self.alive = acting & ~(terminations | truncations) | (self.alive & ~acting)
        return acting, rewards, terminations, truncations

    def state(self) -> np.ndarray:
        """``(B, n_agents * D)``: every agent's observation, zeros for the dead."""
        return np.where(self.alive[:, :, None], self.obs, 0.0).reshape(self.num_worlds, -1)

    # -- reading the worlds ------------------------------------------------------------
    def _read_worlds(
        self, worlds: list[int], live: np.ndarray, obs: np.ndarray, new_prices: bool
    ) -> np.ndarray:
        """Read balance sheets and markets of ``worlds`` into the arrays and ``obs``.

        ``live`` marks whose own features are observed. With ``new_prices`` the step's
        log returns go into the ring buffer first. Returns the ``(B, n)`` default flags.
        """
        n_assets, n_agents = len(self.asset_names), self.num_agents
        k = len(worlds)
        zeros = [0.0] * self._features_end
        sheets: list[tuple[float, float, float, bool]] = []
        features: list[list[float]] = []
        markets: list[list[float]] = []
        for b in worlds:
            model = self.model(b)
            row_live = live[b].tolist()
            for protocol, is_live in zip(self._protocols[b], row_live, strict=True):
                sheets.append(
                    (
                        protocol.equity(),
                        protocol.liquidity_need(),
                        protocol.realised_bad_debt,
                        protocol.defaulted,
                    )
                )
                features.append(protocol.feature_list() if is_live else zeros)
            process = model.price_process
            markets.append(
                [model.reference_prices[asset] for asset in self.asset_names]
                + [model.oracle_prices[asset] for asset in self.asset_names]
                + [model.pools[asset].price for asset in self.asset_names]
                + [model.gas_multiplier, process.regime_multipliers[process.regime]]
            )
        index = np.asarray(worlds, dtype=np.int64)
        sheet = np.array(sheets, dtype=np.float64).reshape(k, n_agents, 4)
        self.equity[index] = sheet[:, :, 0]
        self.need[index] = sheet[:, :, 1]
        self.bad_debt[index] = sheet[:, :, 2]
        defaulted = np.zeros(self.alive.shape, dtype=bool)
        defaulted[index] = sheet[:, :, 3] != 0.0
        market_values = np.array(markets, dtype=np.float64)
        reference = market_values[:, :n_assets]
        oracle = market_values[:, n_assets : 2 * n_assets]
        pool = market_values[:, 2 * n_assets : 3 * n_assets]
        gas, regime_multiplier = market_values[:, -2], market_values[:, -1]
        if new_prices:
            previous = self.prices[index]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = reference / previous
                ok = (reference > 0.0) & (previous > 0.0) & np.isfinite(ratio)
                log_return = np.where(ok, np.log(np.where(ok, ratio, 1.0)), 0.0)
            self._returns[index, self._returns_seen[index] % self.vol_window] = log_return
            self._returns_seen[index] += 1
        self.prices[index] = reference
        seen = np.minimum(self._returns_seen[index], self.vol_window)
        last = self._returns[index, (self._returns_seen[index] - 1) % self.vol_window]
        squares = np.square(self._returns[index]).sum(axis=1)  # unfilled slots are 0
        with np.errstate(divide="ignore", invalid="ignore"):
            vol = np.sqrt(squares / np.maximum(seen, 1)[:, None] * self._steps_per_year)
            oracle_dev = np.where(oracle > 0.0, reference / oracle - 1.0, 0.0)
            pool_dev = np.where(reference > 0.0, pool / reference - 1.0, 0.0)
        started = (seen > 0)[:, None]
        market = np.empty((k, n_assets, 4))
        market[:, :, 0] = np.where(started, last, 0.0)
        market[:, :, 1] = np.where(started, vol, 0.0)
        market[:, :, 2] = oracle_dev
        market[:, :, 3] = pool_dev
        stressed = regime_multiplier > self._calm[index]
        rows = np.empty((k, self.num_agents, self.obs_dim), dtype=np.float64)
        rows[:, :, : self._features_end] = np.reshape(features, (k, self.num_agents, -1))
        rows[:, :, self._features_end : self._market_end - 2] = market.reshape(k, 1, -1)
        rows[:, :, self._market_end - 2] = gas[:, None]
        rows[:, :, self._market_end - 1] = stressed[:, None]
        rows[:, :, self._market_end :] = self._onehot
        np.nan_to_num(rows, copy=False, nan=0.0, posinf=OBS_LIMIT, neginf=-OBS_LIMIT)
        np.clip(rows, -OBS_LIMIT, OBS_LIMIT, out=rows)
        obs[index] = rows
        return defaulted
