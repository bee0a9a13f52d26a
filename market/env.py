"""LiquidityEnv: the market as a PettingZoo ``ParallelEnv``, one agent per protocol.

Every protocol in the scenario is an agent acting through the common levers
(``Box(-1, 1, (6,))``, order :data:`~liqnet.protocols.base.LEVER_NAMES`). Each
``step(actions)`` queues the levers with ``MarketModel.set_levers`` and advances the world
by one ``MarketModel.step()``.

Observation (float32, same length ``D`` for every agent; :attr:`observation_names`):

* the protocol's own ``features()`` (:data:`~liqnet.protocols.base.FEATURE_NAMES`);
* per market asset: log return of the reference price over the last step, realised
  volatility over the last ``vol_window`` steps (annualised, uncentred), oracle deviation
  ``reference / oracle - 1`` and pool deviation ``pool / reference - 1``;
* the gas multiplier and a stressed-regime flag (current volatility regime above the
  calmest one);
* a one-hot of the protocol's type over the built-in types plus the scenario's own types
  (sorted), so the layout does not depend on what else is registered.

Values are made finite (NaN -> 0) and clipped to +-1e6.

Reward of agent ``i`` at step ``t``::

    (equity_t - equity_{t-1}) / scale
    - insolvency_penalty * 1[equity_t < 0]
    - shortfall_penalty * liquidity_need_t / scale

with ``scale`` the protocol's ``total_assets()`` at reset: dimensionless, about 1e-7..1e-5
on a calm step (interest margin) and 1e-3..1 when a crash or a run hits the balance sheet.
Observations of one step are rows of one fresh array (never reused by later steps).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from liqnet.core.schema import shorten
from liqnet.core.units import HOURS_PER_YEAR
from liqnet.market.actions import check_actions
from liqnet.market.model import MarketModel
from liqnet.market.render import render_figure, render_table
from liqnet.protocols.base import FEATURE_NAMES, LEVER_NAMES, Protocol
from liqnet.protocols.registry import BUILTIN_TYPES

if TYPE_CHECKING:
    from liqnet.core.schema import Scenario

_OBS_LIMIT = 1e6
_MARKET_FEATURES = ("log_return", "realised_vol", "oracle_deviation", "pool_deviation")
_SEED_BOUND = 2**31 - 1

StepResult = tuple[
    dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict]
]
"""``(observations, rewards, terminations, truncations, infos)``, keyed by agent."""


class LiquidityEnv(ParallelEnv[str, np.ndarray, np.ndarray]):
    """Protocols as learning agents in one simulated market (PettingZoo parallel API).

    Args:
        scenario: A validated scenario (:func:`liqnet.scenarios.load`).
        render_mode: ``None``, ``"ansi"`` (text table) or ``"rgb_array"`` (uint8 image).
        horizon: Steps per episode; defaults to ``scenario.steps``.
        insolvency_penalty: Reward subtracted on every step a protocol's equity is
            negative (default 1.0: as bad as losing its whole initial balance sheet).
        shortfall_penalty: Weight of unmet liquidity need (USD / scale) in the reward
            (default 1.0: a dollar not paid out costs as much as a dollar lost).
        vol_window: Steps in the rolling realised-volatility window (default 24).

    Raises:
        ValueError: On an unknown render mode, a horizon below 1, a negative or
            non-finite penalty, or a window below 1.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "liqnet_liquidity_v0",
        "render_modes": ["ansi", "rgb_array"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: Scenario,
        render_mode: str | None = None,
        horizon: int | None = None,
        *,
        insolvency_penalty: float = 1.0,
        shortfall_penalty: float = 1.0,
        vol_window: int = 24,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode = {render_mode!r}: allowed None or {self.metadata['render_modes']}"
            )
        if horizon is not None and not _is_positive_int(horizon):
            raise ValueError(f"horizon = {horizon!r}: must be an integer >= 1 (or None)")
        for name, value in [
            ("insolvency_penalty", insolvency_penalty),
            ("shortfall_penalty", shortfall_penalty),
        ]:
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} = {value!r}: must be a finite number >= 0")
        if not _is_positive_int(vol_window):
            raise ValueError(f"vol_window = {vol_window!r}: must be an integer >= 1")
        self.scenario = scenario
        self.render_mode = render_mode
        self.horizon = scenario.steps if horizon is None else int(horizon)
        self.insolvency_penalty = float(insolvency_penalty)
        self.shortfall_penalty = float(shortfall_penalty)
        self.vol_window = int(vol_window)

        self.possible_agents: list[str] = [spec.id for spec in scenario.protocols]
        self.agents: list[str] = []
        self.asset_names: tuple[str, ...] = tuple(scenario.market.assets)
        # Types of this scenario are always in the one-hot, even if registered late.
        # A fixed vocabulary (built-in types plus the scenario's own): registering a
        # plugin type elsewhere must not change this env's layout (saved checkpoints).
        self.protocol_types: tuple[str, ...] = tuple(
            sorted(set(BUILTIN_TYPES) | {spec.type for spec in scenario.protocols})
        )
        self.observation_names: tuple[str, ...] = (
            *FEATURE_NAMES,
            *(f"{a}.{f}" for a in self.asset_names for f in _MARKET_FEATURES),
            "gas_multiplier",
            "stressed_regime",
            *(f"type.{t}" for t in self.protocol_types),
        )
        n, dim = len(self.possible_agents), len(self.observation_names)
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._market_slice = slice(
            len(FEATURE_NAMES), len(FEATURE_NAMES) + 4 * len(self.asset_names) + 2
        )
        self._onehot = np.zeros((n, len(self.protocol_types)), dtype=np.float32)
        for i, spec in enumerate(scenario.protocols):
            self._onehot[i, self.protocol_types.index(spec.type)] = 1.0

        # One space object per agent, returned as-is on every call (PettingZoo API).
        self.observation_spaces = {
            a: spaces.Box(-np.inf, np.inf, (dim,), np.float32) for a in self.possible_agents
        }
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, (len(LEVER_NAMES),), np.float32) for a in self.possible_agents
        }
        self.state_space = spaces.Box(-np.inf, np.inf, (n * dim,), np.float32)

        self.model: MarketModel | None = None
        self.episode_seed: int | None = None
        self._seed_rng: np.random.Generator | None = None
        self._matrix = np.zeros((n, dim), dtype=np.float32)
        self._price_history: list[np.ndarray] = []

    # -- spaces ------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        """The observation space of ``agent`` (the same object on every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """The action space of ``agent``: the common levers in [-1, 1] (same object)."""
        return self.action_spaces[agent]

    # -- episode -----------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode in a fresh world.

        The world seed is ``seed`` when given (same seed -> same episode). Without one,
        the first episode uses ``scenario.seed`` and later ones draw a seed from a
        generator seeded by the last explicit seed (gymnasium's convention), so training
        sees new price paths while any call sequence stays reproducible.

        Args:
            seed: World seed for this episode, an integer in ``[0, 2**63)``.
            options: Accepted for API compatibility; unused.

        Returns:
            Observations and infos of every agent.

        Raises:
            ValueError: If ``seed`` is not such an integer.
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
                raise ValueError(f"seed = {shorten(seed)}: expected an integer in [0, 2**63)")
            if not 0 <= int(seed) < 2**63:
                raise ValueError(f"seed = {seed}: expected an integer in [0, 2**63)")
            self.episode_seed = int(seed)
            self._seed_rng = np.random.default_rng(self.episode_seed)
        elif self._seed_rng is None:
            self.episode_seed = self.scenario.seed
            self._seed_rng = np.random.default_rng(self.episode_seed)
        else:
            self.episode_seed = int(self._seed_rng.integers(_SEED_BOUND))
        self.model = model = MarketModel(self.scenario, seed=self.episode_seed)
        self.agents = list(self.possible_agents)
        protocols = [model.protocols[a] for a in self.possible_agents]
        self._scale = [max(p.total_assets(), 1.0) for p in protocols]
        self._equity = [p.equity() for p in protocols]
        self._prices = [model.reference_prices[a] for a in self.asset_names]
        self._initial_prices = list(self._prices)
        self._returns = [[0.0] * len(self._prices) for _ in range(self.vol_window)]
        self._returns_seen = 0
        self._steps_per_year = HOURS_PER_YEAR / self.scenario.dt_hours
        self._calm_multiplier = float(model.price_process.regime_multipliers.min())
        self._price_history = [np.ones(len(self._prices))] if self.render_mode else []
        self._observe(self.agents)
        observations = {a: self._matrix[self._index[a]] for a in self.agents}
        infos = {
            a: _info(p, p.equity(), p.liquidity_need())
            for a, p in zip(self.agents, protocols, strict=True)
        }
        return observations, infos

    def step(self, actions: dict[str, np.ndarray]) -> StepResult:
        """Apply every live agent's levers and advance the world one step.

        An agent missing from ``actions`` acts with its standing levers this step (the
        scenario's ``levers`` for that protocol). Finite values outside [-1, 1] are clipped.

        Returns:
            Observations, rewards, terminations, truncations and infos of the agents
            alive at the start of the step. A protocol that defaulted is terminated and
            leaves :attr:`agents`; at the horizon the rest are truncated.

        Raises:
            ValueError: If ``actions`` is not a dict, or an action is for an agent that is
                not alive, has the wrong shape, or holds NaN or infinite values (nothing
                is applied then).
            RuntimeError: If called before :meth:`reset` or after the episode ended.
        """
        model = self.model
        if model is None or not self.agents:
            raise RuntimeError("no episode in progress: call reset() first")
        # Validate every action before queueing any, so a bad one leaves no trace. The
        # actions are valid, so they go straight into the model's queue.
        model.pending_levers.update(check_actions(actions, self.agents))
        model.step()

        acting = self.agents
        protocols = model.protocols
        self._track_prices()
        self._observe(acting)
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        at_horizon = model.step_index >= self.horizon
        for agent in acting:
            i = self._index[agent]
            protocol = protocols[agent]
            equity, need = protocol.equity(), protocol.liquidity_need()
            reward = (equity - self._equity[i] - self.shortfall_penalty * need) / self._scale[i]
            if equity < 0.0:
                reward -= self.insolvency_penalty
            self._equity[i] = equity
            observations[agent] = self._matrix[i]
            rewards[agent] = float(reward)
            terminations[agent] = bool(protocol.defaulted)
            truncations[agent] = at_horizon and not protocol.defaulted
            infos[agent] = _info(protocol, equity, need)
        self.agents = [a for a in acting if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Global state: every possible agent's observation in order, zeros for the dead."""
        matrix = self._matrix.copy()
        alive = set(self.agents)
        for agent, i in self._index.items():
            if agent not in alive:
                matrix[i] = 0.0
        return matrix.ravel()

    # -- internals ---------------------------------------------------------------------

    def _live_model(self) -> MarketModel:
        """The world of the episode in progress (internal helpers run only during one)."""
        if self.model is None:
            raise RuntimeError("no episode in progress: call reset() first")
        return self.model

    def _track_prices(self) -> None:
        """Push the last step's log returns into the volatility ring buffer.

        Plain floats: with a handful of assets, NumPy's per-call cost would dominate.
        """
        reference = self._live_model().reference_prices
        slot = self._returns_seen % self.vol_window
        new = []
        for j, asset in enumerate(self.asset_names):
            price, previous = reference[asset], self._prices[j]
            ok = price > 0.0 and previous > 0.0 and math.isfinite(price / previous)
            new.append(math.log(price / previous) if ok else 0.0)
            self._prices[j] = price
        self._returns[slot] = new
        self._returns_seen += 1
        if self.render_mode:
            self._price_history.append(np.divide(self._prices, self._initial_prices))

    def _market_features(self) -> list[float]:
        model = self._live_model()
        seen = min(self._returns_seen, self.vol_window)
        last = self._returns[(self._returns_seen - 1) % self.vol_window]
        values: list[float] = []
        for j, asset in enumerate(self.asset_names):
            reference, oracle = self._prices[j], model.oracle_prices[asset]
            pool = model.pools[asset].price
            squares = math.fsum(r[j] * r[j] for r in self._returns)  # unfilled slots are 0
            vol = math.sqrt(squares / seen * self._steps_per_year) if seen else 0.0
            oracle_dev = reference / oracle - 1.0 if oracle > 0.0 else 0.0
            pool_dev = pool / reference - 1.0 if reference > 0.0 else 0.0
            values += (last[j] if seen else 0.0, vol, oracle_dev, pool_dev)
        regime = model.price_process.regime
        stressed = model.price_process.regime_multipliers[regime] > self._calm_multiplier
        values += (model.gas_multiplier, float(stressed))
        return values

    def _observe(self, agents: list[str]) -> None:
        """Write a fresh observation matrix (rows of ``agents``; others stay zero)."""
        # A new matrix each step: observations handed out earlier are rows of the old one.
        matrix = np.empty_like(self._matrix)
        protocols = self._live_model().protocols
        live = set(agents)
        market = self._market_features()
        dead = [0.0] * len(FEATURE_NAMES)
        # One conversion from Python floats for the whole matrix (per-row arrays cost more).
        matrix[:, : self._market_slice.stop] = [
            (protocols[agent].feature_list() if agent in live else dead) + market
            for agent in self.possible_agents
        ]
        matrix[:, self._market_slice.stop :] = self._onehot
        if not np.isfinite(matrix).all():
            np.nan_to_num(matrix, copy=False, nan=0.0, posinf=_OBS_LIMIT, neginf=-_OBS_LIMIT)
        np.minimum(matrix, _OBS_LIMIT, out=matrix)
        np.maximum(matrix, -_OBS_LIMIT, out=matrix)
        self._matrix = matrix

    # -- rendering ---------------------------------------------------------------------
    def render(self) -> str | np.ndarray | None:
        """Render the current state in :attr:`render_mode`.

        Returns:
            ``"ansi"``: a text table (step, prices, per protocol equity, cash, shortfall,
            defaulted). ``"rgb_array"``: a ``uint8`` (H, W, 3) image. ``None`` without a
            render mode.

        Raises:
            RuntimeError: If called before :meth:`reset`.
        """
        if self.render_mode is None:
            return None
        if self.model is None:
            raise RuntimeError("nothing to render: call reset() first")
        model, agents = self.model, self.possible_agents
        if self.render_mode == "ansi":
            return render_table(model, agents, self.horizon)
        scale = dict(zip(agents, self._scale, strict=True))
        return render_figure(model, agents, scale, np.array(self._price_history))

    def close(self) -> None:
        """Release the world and the render history."""
        self.model = None
        self.agents = []
        self._price_history = []


def _info(protocol: Protocol, equity: float, need: float) -> dict[str, float]:
    """An agent's info dict: equity, realised bad debt and unmet liquidity need (USD)."""
    return {
        "equity": float(equity),
        "bad_debt": float(protocol.realised_bad_debt),
        "liquidity_need": float(need),
    }


def _is_positive_int(value: object) -> bool:
    """An integer (NumPy's too, not a bool) of at least 1."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 1)
