"""LiquidityEnv: the market as a PettingZoo ``ParallelEnv``, one agent per protocol.

Every protocol in the scenario is an agent acting through the common levers
(``Box(-1, 1, (6,))``, order :data:`~liqnet.protocols.base.LEVER_NAMES`). Each
``step(actions)`` queues the levers with ``MarketModel.set_levers`` and advances the world
by one ``MarketModel.step()``.

Observations (float32, the same ``D`` names for every agent: :attr:`observation_names`)
and rewards are those of :mod:`liqnet.market.world_batch`, the engine this env is a batch
of one world of (:class:`~liqnet.market.vector_env.VectorLiquidityEnv` is the same engine
with ``B`` worlds). Observations of one step are rows of one fresh array (never reused by
later steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from liqnet.core.schema import shorten
from liqnet.market.actions import check_actions
from liqnet.market.render import render_figure, render_table
from liqnet.market.world_batch import WorldBatch
from liqnet.protocols.base import LEVER_NAMES

if TYPE_CHECKING:
    from liqnet.core.schema import Scenario
    from liqnet.market.model import MarketModel

SEED_BOUND = 2**31 - 1
"""Seeds drawn for later episodes lie in ``[0, SEED_BOUND)``."""
_ONE_WORLD = np.zeros(1, dtype=np.int64)

StepResult = tuple[
    dict[str, np.ndarray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict]
]
"""``(observations, rewards, terminations, truncations, infos)``, keyed by agent."""


def check_seed(seed: object) -> int:
    """``seed`` as an int, or one ``ValueError``: it must be an integer in ``[0, 2**63)``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed = {shorten(seed)}: expected an integer in [0, 2**63)")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed = {seed}: expected an integer in [0, 2**63)")
    return int(seed)


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
        self.batch = batch = WorldBatch(
            scenario, 1, horizon, insolvency_penalty, shortfall_penalty, vol_window
        )
        """The engine: a batch of one world."""
        self.scenario = scenario
        self.render_mode = render_mode
        self.horizon = batch.horizon
        self.insolvency_penalty = batch.insolvency_penalty
        self.shortfall_penalty = batch.shortfall_penalty
        self.vol_window = batch.vol_window
        self.possible_agents: list[str] = list(batch.possible_agents)
        self.agents: list[str] = []
        self.asset_names = batch.asset_names
        self.protocol_types = batch.protocol_types
        self.observation_names = batch.observation_names
        n, dim = batch.num_agents, batch.obs_dim
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}

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
        self._actions = np.zeros((1, n, len(LEVER_NAMES)))
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
            self.episode_seed = check_seed(seed)
            self._seed_rng = np.random.default_rng(self.episode_seed)
        elif self._seed_rng is None:
            self.episode_seed = self.scenario.seed
            self._seed_rng = np.random.default_rng(self.episode_seed)
        else:
            self.episode_seed = int(self._seed_rng.integers(SEED_BOUND))
        batch = self.batch
        batch.reset_world(0, self.episode_seed)
        self.model = batch.model(0)
        self.agents = list(self.possible_agents)
        if self.render_mode:
            self._price_history = [np.ones(len(self.asset_names))]
        obs = batch.obs[0]
        observations = {a: obs[i] for i, a in enumerate(self.agents)}
        return observations, dict(zip(self.agents, self._sheets(), strict=True))

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
        if self.model is None or not self.agents:
            raise RuntimeError("no episode in progress: call reset() first")
        # Validate every action before queueing any, so a bad one leaves no trace.
        checked = check_actions(actions, self.agents)
        given = np.zeros((1, len(self.possible_agents)), dtype=bool)
        for agent, vector in checked.items():
            i = self._index[agent]
            self._actions[0, i] = vector
            given[0, i] = True
        batch = self.batch
        _, rewards, terminations, truncations = batch.step(self._actions, _ONE_WORLD, given)
        if self.render_mode:
            self._price_history.append(batch.prices[0] / batch.initial_prices[0])
        obs = batch.obs[0]
        # Plain lists once: indexing NumPy scalars per agent costs more than the maths.
        reward_row, terminated_row = rewards[0].tolist(), terminations[0].tolist()
        truncated_row, sheets = truncations[0].tolist(), self._sheets()
        observations, reward_of, terminated, truncated, infos = {}, {}, {}, {}, {}
        for agent in self.agents:
            i = self._index[agent]
            observations[agent] = obs[i]
            reward_of[agent] = reward_row[i]
            terminated[agent] = terminated_row[i]
            truncated[agent] = truncated_row[i]
            infos[agent] = sheets[i]
        alive = batch.alive[0].tolist()
        self.agents = [a for a in self.agents if alive[self._index[a]]]
        return observations, reward_of, terminated, truncated, infos

    def state(self) -> np.ndarray:
        """Global state: every possible agent's observation in order, zeros for the dead."""
        return self.batch.state()[0].astype(np.float32)

    def _sheets(self) -> list[dict[str, float]]:
        """Each agent's info: equity, realised bad debt and unmet liquidity need (USD)."""
        batch = self.batch
        return [
            {"equity": e, "bad_debt": d, "liquidity_need": n}
            for e, d, n in zip(
                batch.equity[0].tolist(),
                batch.bad_debt[0].tolist(),
                batch.need[0].tolist(),
                strict=True,
            )
        ]

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
        scale = dict(zip(agents, self.batch.scale[0].tolist(), strict=True))
        return render_figure(model, agents, scale, np.array(self._price_history))

    def close(self) -> None:
        """Release the world and the render history."""
        self.model = None
        self.batch.models[0] = None
        self.agents = []
        self._price_history = []
