"""Rules of thumb: volatility targeting, a forecast-driven rule, and their shared risk budget.

The risk lever is an *increment*: +1 tightens the protocol's collateral requirements by
one bounded step this step, -1 loosens by one step, 0 leaves them (see the architecture's
"Common levers"). A rule therefore does not output a level; it outputs how far to move,
and :class:`RiskBudget` keeps track of how far it has moved so that loosening only undoes
the policy's own tightening - parameters never end up looser than the scenario set them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqnet.agents.base import Policy, PolicyContext
from liqnet.agents.static import RISK, standing_levers
from liqnet.core.observations import ForecasterLike, observation_indices


class RiskBudget:
    """Turns a stress ratio (1 = exactly at target) into risk-lever increments per agent.

    Above target the lever tightens in proportion to the excess (``gain * (stress - 1)``,
    at most 1); at or below target it loosens by ``loosen_rate`` per step, but only as
    far as this policy tightened before. The total tightening is capped at
    ``max_tightening`` lever-steps, so a long stress cannot walk the parameters to their
    governance bound and leave a debt of loosening the protocol could never repay.

    Args:
        gain: Lever per unit of relative excess stress.
        loosen_rate: Lever magnitude per step when stress is at or below target.
        max_tightening: Most tightening (sum of risk levers) outstanding at any time.
    """

    def __init__(self, gain: float, loosen_rate: float, max_tightening: float) -> None:
        for name, value in [
            ("gain", gain),
            ("loosen_rate", loosen_rate),
            ("max_tightening", max_tightening),
        ]:
            if not (np.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} = {value!r}: must be a finite number >= 0")
        self.gain = float(gain)
        self.loosen_rate = min(1.0, float(loosen_rate))
        self.max_tightening = float(max_tightening)
        self.outstanding: dict[str, float] = {}

    def reset(self) -> None:
        """Forget all tightening (a new episode starts from the scenario's parameters)."""
        self.outstanding = {}

    def lever(self, agent: str, stress: float) -> float:
        """This step's risk lever for ``agent`` at ``stress`` (in [-1, 1])."""
        used = self.outstanding.get(agent, 0.0)
        if stress > 1.0:
            lever = min(1.0, self.gain * (stress - 1.0), self.max_tightening - used)
        else:
            lever = -min(self.loosen_rate, used)
        self.outstanding[agent] = max(0.0, used + lever)
        return float(lever)


@dataclass
class VolTargetConfig:
    """Hyper-parameters of :class:`VolatilityTargeting`."""

    target_vol: float = 1.0
    """Annualised realised volatility the protocol is comfortable with (calm ETH is ~0.7)."""
    gain: float = 1.0
    """Risk lever per unit of relative excess volatility (vol 2x target -> full step)."""
    loosen_rate: float = 0.1
    """Risk lever magnitude per step while volatility is below target (slow on purpose)."""
    max_tightening: float = 20.0
    """Most outstanding tightening, in lever-steps (20 steps: lending LTs -10 points)."""


class VolatilityTargeting(Policy):
    """Tightens risk as realised volatility rises above a target, loosens slowly below it.

    Reads every ``<asset>.realised_vol`` entry of the observation and uses the highest
    (the protocol cannot see which asset its book depends on, so it assumes the worst).
    The other levers stay at the agent's standing levers.

    Args:
        config: Hyper-parameters (defaults: :class:`VolTargetConfig`).
    """

    name = "vol_target"

    def __init__(self, config: VolTargetConfig | None = None) -> None:
        self.config = config or VolTargetConfig()
        if not (np.isfinite(self.config.target_vol) and self.config.target_vol > 0.0):
            raise ValueError(f"target_vol = {self.config.target_vol!r}: must be > 0")
        self.budget = RiskBudget(
            self.config.gain, self.config.loosen_rate, self.config.max_tightening
        )

    def reset(self, context: PolicyContext) -> None:
        """Find the realised-volatility entries and forget earlier tightening."""
        super().reset(context)
        self._vol_index = observation_indices(context.observation_names, "realised_vol")
        self.budget.reset()

    def stress(self, observation: np.ndarray) -> float:
        """Highest realised volatility over the target (1.0 = at target)."""
        return float(np.max(observation[self._vol_index])) / self.config.target_vol

    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Standing levers with the risk lever set from realised volatility."""
        actions = {}
        for agent, observation in observations.items():
            levers = standing_levers(self.context, agent)
            levers[RISK] = self.budget.lever(agent, self.stress(observation))
            actions[agent] = levers
        return actions


def make_vol_target(argument: str | None) -> VolatilityTargeting:
    """Factory for the ``"vol_target"`` / ``"vol_target:TARGET_VOL"`` specs."""
    if argument is None:
        return VolatilityTargeting()
    try:
        target = float(argument)
    except ValueError:
        target = float("nan")
    if not (np.isfinite(target) and target > 0.0):
        raise ValueError(
            f"policy spec 'vol_target:{argument}': the argument is the annualised target "
            "volatility, a number > 0 (e.g. 'vol_target:0.8')"
        )
    return VolatilityTargeting(VolTargetConfig(target_vol=target))


@dataclass
class ForecastPolicyConfig:
    """Hyper-parameters of :class:`ForecastRiskPolicy`."""

    crash_prob_target: float = 0.2
    """Forecast crash probability treated as stress 1."""
    target_vol: float = 1.0
    """Forecast annualised volatility treated as stress 1."""
    gain: float = 1.0
    """Risk lever per unit of relative excess stress."""
    loosen_rate: float = 0.1
    """Risk lever magnitude per step while stress is at or below 1."""
    max_tightening: float = 20.0
    """Most outstanding tightening, in lever-steps."""


class ForecastRiskPolicy(Policy):
    """Tightens risk when the forecaster expects a crash or high volatility.

    Stress is the larger of (highest asset crash probability / ``crash_prob_target``)
    and (highest forecast volatility / ``target_vol``); the risk lever follows
    :class:`~liqnet.agents.rules.RiskBudget`, the other levers stay standing.
    ``last_forecast`` holds the step's forecasts for inspection.

    Args:
        forecaster: A trained :class:`~liqnet.agents.forecaster.Forecaster` (anything
            with its ``reset`` and ``observe`` methods).
        config: Hyper-parameters (defaults: :class:`ForecastPolicyConfig`).
    """

    name = "forecaster"

    def __init__(
        self, forecaster: ForecasterLike, config: ForecastPolicyConfig | None = None
    ) -> None:
        self.forecaster = forecaster
        self.config = c = config or ForecastPolicyConfig()
        self.budget = RiskBudget(c.gain, c.loosen_rate, c.max_tightening)
        self.last_forecast: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def reset(self, context: PolicyContext) -> None:
        """Reset the forecaster's memory and the risk budget."""
        super().reset(context)
        self.forecaster.reset(context.observation_names, context.dt_hours)
        self.budget.reset()

    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Standing levers with the risk lever set from the forecasts."""
        self.last_forecast = self.forecaster.observe(observations)
        actions = {}
        for agent, (vol, crash) in self.last_forecast.items():
            stress = max(
                float(crash.max()) / self.config.crash_prob_target,
                float(vol.max()) / self.config.target_vol,
            )
            levers = standing_levers(self.context, agent)
            levers[RISK] = self.budget.lever(agent, stress)
            actions[agent] = levers
        return actions
