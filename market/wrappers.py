"""Wrappers of :class:`~liqnet.market.env.LiquidityEnv` that need the world inside it.

Wrappers that see only the PettingZoo API (observations, rewards, spaces) live in
:mod:`liqnet.agents.wrappers`; the ones here read the world's balance sheets, which only
the ``market`` layer may do. Both build on PettingZoo's ``BaseParallelWrapper``, which
forwards every call and attribute (``state()``, ``horizon``, ``observation_names``, ...)
to the wrapped env, so they stack in any order :func:`liqnet.scenarios.make_env` is given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper

from liqnet.market.accounting import system_losses, system_revenue
from liqnet.market.env import LiquidityEnv, StepResult
from liqnet.market.model import MarketModel


def system_net(model: MarketModel, revenue_weight: float) -> float:
    """The system's net result so far: ``revenue_weight * revenue - losses`` (USD)."""
    return revenue_weight * system_revenue(model) - system_losses(model)


def system_scale(model: MarketModel) -> float:
    """USD per unit of system reward: the protocols' total assets (at least 1)."""
    return max(sum(p.total_assets() for p in model.protocols.values()), 1.0)


class SystemRewardWrapper(BaseParallelWrapper[str, np.ndarray, np.ndarray]):
    """Every acting agent gets the same team reward: the system's net result.

    Reward at step ``t``: the change over the step of ``revenue_weight * revenue -
    losses`` (:func:`~liqnet.market.accounting.system_revenue`,
    :func:`~liqnet.market.accounting.system_losses`: the figures ``liqnet evaluate``
    reports), divided by :attr:`scale`, the protocols' total assets at reset. An
    episode's return is therefore the evaluation's ``revenue_weight * revenue_usd -
    losses_usd`` in units of the system's balance sheet. Revenue is ~1% of losses in the
    crash scenarios, hence a weight above 1 to keep it from being traded away.

    Args:
        env: A :class:`LiquidityEnv`, possibly inside other wrappers.
        revenue_weight: USD of losses one USD of revenue is worth (finite, >= 0).

    Raises:
        TypeError: If ``env`` does not unwrap to a :class:`LiquidityEnv`.
        ValueError: On a negative or non-finite ``revenue_weight``.
    """

    def __init__(self, env: ParallelEnv[str, np.ndarray, np.ndarray], revenue_weight: float = 1.0):
        if not isinstance(env.unwrapped, LiquidityEnv):
            raise TypeError(
                f"SystemRewardWrapper needs a LiquidityEnv inside; got {type(env.unwrapped)}"
            )
        if not (math.isfinite(revenue_weight) and revenue_weight >= 0.0):
            raise ValueError(f"revenue_weight = {revenue_weight!r}: must be a finite number >= 0")
        super().__init__(env)
        self.revenue_weight = float(revenue_weight)
        self.scale = 1.0  # USD per unit of reward: the protocols' total assets at reset
        self._last_net = 0.0

    def _net(self) -> float:
        return system_net(self.env.unwrapped.model, self.revenue_weight)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Reset the env; record the system's starting assets and net result."""
        out = self.env.reset(seed=seed, options=options)
        self.scale = system_scale(self.env.unwrapped.model)
        self._last_net = self._net()
        return out

    def step(self, actions: dict[str, np.ndarray]) -> StepResult:
        """Step the env; every reward becomes the step's team reward."""
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        net = self._net()
        team = (net - self._last_net) / self.scale
        self._last_net = net
        return observations, dict.fromkeys(rewards, team), terminations, truncations, infos
