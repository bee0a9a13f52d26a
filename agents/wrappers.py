"""PettingZoo ParallelEnv wrappers that transform rewards or observations, one place each.

In the style of ``gymnasium.RewardWrapper`` / ``ObservationWrapper``, on top of
PettingZoo's ``BaseParallelWrapper`` (which forwards every call and public attribute to
the wrapped env, so ``horizon``, ``observation_names`` or ``scenario`` still read
through):

* :class:`RewardWrapper`: override :meth:`~RewardWrapper.reward` (all agents' rewards of
  one step at once); :class:`TeamMixReward` mixes each agent's reward with the team mean.
* :class:`ObservationWrapper`: override :meth:`~ObservationWrapper.observations` (all
  observations of one step at once) and set :attr:`observation_spaces`;
  :class:`NormalizeObservation` standardises with running moments,
  :class:`ForecastObservation` appends a forecaster's outputs.

These wrappers need only the ParallelEnv API. The system team reward, which reads the
world's balance sheets, is :class:`liqnet.market.wrappers.SystemRewardWrapper`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils.env import ActionType, AgentID
from pettingzoo.utils.wrappers import BaseParallelWrapper

from liqnet.agents.normalization import merge_moments
from liqnet.core.observations import ForecasterLike, observation_indices

Observations = dict[Any, np.ndarray]
"""One step's observations, keyed by agent."""


class RewardWrapper(BaseParallelWrapper[AgentID, np.ndarray, ActionType]):
    """Base of reward transforms: :meth:`reward` maps one step's rewards to new ones."""

    def reward(self, rewards: dict[AgentID, float]) -> dict[AgentID, float]:
        """The transformed rewards of one step (same keys)."""
        raise NotImplementedError

    def step(self, actions: dict[AgentID, ActionType]) -> tuple[Any, ...]:
        """Step the wrapped env and transform its rewards."""
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        return observations, self.reward(rewards), terminations, truncations, infos


class TeamMixReward(RewardWrapper):
    """Each agent's reward mixed with the mean reward of the agents acting in the step.

    ``r_i <- (1 - team_weight) * r_i + team_weight * mean_j r_j``: 0 keeps self-interested
    protocols, 1 gives a fully cooperative team (every agent gets the mean).

    Raises:
        ValueError: If ``team_weight`` is not in [0, 1].
    """

    def __init__(
        self, env: ParallelEnv[AgentID, np.ndarray, ActionType], team_weight: float
    ) -> None:
        if not 0.0 <= team_weight <= 1.0:
            raise ValueError(f"team_weight = {team_weight!r}: must be in [0, 1]")
        super().__init__(env)
        self.team_weight = float(team_weight)

    def reward(self, rewards: dict[AgentID, float]) -> dict[AgentID, float]:
        """``(1 - w) * r_i + w * mean(r)`` over the step's acting agents."""
        if not rewards:
            return rewards
        w = self.team_weight
        team = math.fsum(rewards.values()) / len(rewards)
        return {a: (1.0 - w) * r + w * team for a, r in rewards.items()}


class ObservationWrapper(BaseParallelWrapper[AgentID, np.ndarray, ActionType]):
    """Base of observation transforms.

    Subclasses set :attr:`observation_spaces` (one cached space per agent) and override
    :meth:`observations`; :meth:`on_reset` runs before the reset observations are
    transformed. The global :meth:`state` is every possible agent's transformed
    observation in order, zeros for agents no longer alive (``LiquidityEnv.state()``'s
    convention), so a centralised critic's input of ``n_agents * obs_dim`` stays
    consistent with the transformed observations.
    """

    observation_spaces: dict[AgentID, spaces.Box]

    def __init__(self, env: ParallelEnv[AgentID, np.ndarray, ActionType]) -> None:
        super().__init__(env)
        self._rows = {a: i for i, a in enumerate(env.possible_agents)}
        self._latest: np.ndarray | None = None

    def observations(self, observations: Observations) -> Observations:
        """The transformed observations of one step (same keys)."""
        raise NotImplementedError

    def on_reset(self) -> None:
        """Hook: start of an episode, before its first observations are transformed."""

    def observation_space(self, agent: AgentID) -> spaces.Box:
        """The transformed observation space of ``agent`` (the same object every call)."""
        return self.observation_spaces[agent]

    @property
    def state_space(self) -> spaces.Box:
        """Box of :meth:`state`: the transformed observations of all possible agents."""
        dim = sum(self.observation_spaces[a].shape[0] for a in self.possible_agents)
        return spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observations, dict[AgentID, dict[str, Any]]]:
        """Reset the wrapped env and transform the first observations."""
        observations, infos = self.env.reset(seed=seed, options=options)
        self.on_reset()
        return self._record(self.observations(observations), fresh=True), infos

    def step(self, actions: dict[AgentID, ActionType]) -> tuple[Any, ...]:
        """Step the wrapped env and transform its observations."""
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        observations = self._record(self.observations(observations))
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Transformed observations of every possible agent, zeros for the dead, flat."""
        if self._latest is None:
            raise RuntimeError("no episode in progress: call reset() first")
        state = np.zeros_like(self._latest)
        live = [self._rows[a] for a in self.env.agents]
        state[live] = self._latest[live]
        return state.ravel()

    def _record(self, observations: Observations, fresh: bool = False) -> Observations:
        """Keep the latest row of every agent for :meth:`state`."""
        if fresh or self._latest is None:
            dim = self.observation_spaces[self.possible_agents[0]].shape[0]
            self._latest = np.zeros((len(self._rows), dim), np.float32)
        for agent, obs in observations.items():
            self._latest[self._rows[agent]] = obs
        return observations


class NormalizeObservation(ObservationWrapper):
    """Observations standardised by running moments: ``clip((x - mean) / std)``.

    One set of moments for all agents (their observations share a layout; the protocol
    type one-hot tells them apart), in float64, updated with every step's observations
    before they are normalised (gymnasium's ``NormalizeObservation`` order). With
    ``update=False`` the moments stay fixed, e.g. for evaluation with statistics from
    training: :meth:`state_dict` / :meth:`load_state_dict` save and restore them, with
    the keys of MAPPO's ``RunningNorm`` buffers (``mean``, ``var``, ``count``), so a
    MAPPO checkpoint's ``obs_norm.*`` tensors load as they are.

    MAPPO itself keeps its normalisation inside the network (``ActorCritic.obs_norm``)
    rather than using this wrapper: its statistics must be the same in every rollout
    worker (a wrapper's are per env, so Ray actors would drift apart), frozen while a
    batch is sampled and updated by the learner from the whole batch afterwards, and
    saved in ``model.pt`` so that ``"mappo:PATH"`` acts on raw observations in
    ``liqnet run``. This wrapper is for learners that take the env as it is (RLlib, a
    single-env PPO) and shares MAPPO's formula (:func:`merge_moments`).

    Args:
        env: Env with flat Box observations of one shape for every agent.
        update: Whether observations update the moments.
        clip: Bound of the normalised values (a 50x gas spike stays bounded).
        epsilon: Added to the variance (constant features do not divide by zero).

    Raises:
        ValueError: If the agents' observation shapes differ or ``clip`` is not > 0.
    """

    def __init__(
        self,
        env: ParallelEnv[AgentID, np.ndarray, ActionType],
        update: bool = True,
        clip: float = 10.0,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(env)
        shapes = {env.observation_space(a).shape for a in env.possible_agents}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"NormalizeObservation needs one flat shape for all agents; {shapes}")
        if not clip > 0.0:
            raise ValueError(f"clip = {clip!r}: must be > 0")
        (shape,) = shapes
        self.update_moments, self.clip, self.epsilon = bool(update), float(clip), float(epsilon)
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4  # as RunningNorm: the first batch almost replaces the prior
        self.observation_spaces = {
            a: spaces.Box(-self.clip, self.clip, shape, np.float32) for a in env.possible_agents
        }

    def observations(self, observations: Observations) -> Observations:
        """Update the moments (unless frozen), then normalise every agent's observation."""
        if not observations:
            return observations
        batch = np.stack(list(observations.values())).astype(np.float64)
        if self.update_moments:
            self.mean, self.var, self.count = merge_moments(
                self.mean, self.var, self.count, batch.mean(0), batch.var(0), len(batch)
            )
        z = np.clip((batch - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)
        return dict(zip(observations, z.astype(np.float32), strict=True))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the moments: ``mean``, ``var`` and ``count`` (a 0-d array)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.array(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore moments from :meth:`state_dict` (or a ``RunningNorm``'s buffers).

        Raises:
            ValueError: On a missing key, a wrong shape or a non-positive count.
        """
        try:
            mean, var = (np.asarray(state[k], np.float64) for k in ("mean", "var"))
            count = float(np.asarray(state["count"]))
        except KeyError as missing:
            raise ValueError(f"observation moments: missing {missing}") from None
        if mean.shape != self.mean.shape or var.shape != self.mean.shape:
            raise ValueError(
                f"observation moments: mean/var of shape {mean.shape}/{var.shape}, "
                f"expected {self.mean.shape}"
            )
        if not count > 0.0:
            raise ValueError(f"observation moments: count = {count!r}, must be > 0")
        self.mean, self.var, self.count = mean.copy(), var.copy(), count


class ForecastObservation(ObservationWrapper):
    """Observations with a forecaster's outputs appended: volatility and crash probability.

    Appends, per market asset, the forecast annualised volatility (``forecast.<asset>.vol``,
    >= 0) and then, per asset, the crash probability (``forecast.<asset>.crash_prob``, in
    [0, 1]); :attr:`observation_names` and the spaces grow to match. The forecaster
    (:class:`~liqnet.agents.forecaster.Forecaster`, or anything with its ``reset`` and
    ``observe``) needs the env's raw observations, so wrap the env with this one before
    any normalisation (see :func:`liqnet.scenarios.make_env`).

    Args:
        env: Env with ``observation_names`` (``<asset>.log_return`` names the assets).
        forecaster: Reset at every episode start, called once per step.
        dt_hours: Hours per step (default: the env's ``scenario.dt_hours``).

    Raises:
        TypeError: If the env has no ``observation_names``, or no ``dt_hours`` is known.
    """

    def __init__(
        self,
        env: ParallelEnv[AgentID, np.ndarray, ActionType],
        forecaster: ForecasterLike,
        dt_hours: float | None = None,
    ) -> None:
        super().__init__(env)
        names = getattr(env, "observation_names", None)
        if names is None:
            raise TypeError("ForecastObservation needs an env with observation_names")
        if dt_hours is None:
            dt_hours = getattr(getattr(env, "scenario", None), "dt_hours", None)
            if dt_hours is None:
                raise TypeError("ForecastObservation: pass dt_hours (the env has no scenario)")
        self.forecaster, self.dt_hours = forecaster, float(dt_hours)
        self.base_names: tuple[str, ...] = tuple(names)
        assets = [names[i].rsplit(".", 1)[0] for i in observation_indices(names, "log_return")]
        self.observation_names: tuple[str, ...] = (
            *self.base_names,
            *(f"forecast.{a}.vol" for a in assets),
            *(f"forecast.{a}.crash_prob" for a in assets),
        )
        n = len(assets)
        self.observation_spaces = {}
        for agent in env.possible_agents:
            base = env.observation_space(agent)
            low = np.concatenate([base.low, np.zeros(2 * n)]).astype(np.float32)
            high = np.concatenate([base.high, np.full(n, np.inf), np.ones(n)]).astype(np.float32)
            self.observation_spaces[agent] = spaces.Box(low, high, dtype=np.float32)

    def on_reset(self) -> None:
        """Reset the forecaster's memory for the new episode."""
        self.forecaster.reset(self.base_names, self.dt_hours)

    def observations(self, observations: Observations) -> Observations:
        """Every observation with its agent's volatility and crash forecasts appended."""
        forecasts = self.forecaster.observe(observations)
        return {
            a: np.concatenate([obs, *forecasts[a]]).astype(np.float32)
            for a, obs in observations.items()
        }
