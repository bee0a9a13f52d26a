"""Bayesian risk management: a conjugate Normal-Inverse-Gamma posterior on returns.

Per-step log returns of each market asset are modelled as ``x ~ N(mu, sigma^2)`` with the
conjugate prior ``mu | sigma^2 ~ N(mu_0, sigma^2 / kappa_0)``, ``sigma^2 ~ IG(alpha_0,
beta_0)``. After ``n`` returns with mean ``xbar`` the posterior is NIG again::

    kappa_n = kappa_0 + n
    mu_n    = (kappa_0 mu_0 + n xbar) / kappa_n
    alpha_n = alpha_0 + n / 2
    beta_n  = beta_0 + 1/2 sum (x - xbar)^2 + kappa_0 n (xbar - mu_0)^2 / (2 kappa_n)

and the next return is Student-t with ``2 alpha_n`` degrees of freedom, location ``mu_n``
and scale ``sqrt(beta_n (kappa_n + 1) / (alpha_n kappa_n))``.

:class:`BayesianRiskManager` turns the posterior into a stress ratio::

    stress = (tail_loss + w * z * sd_mu) / (z * sigma_ref)

``tail_loss`` is the predictive (Student-t) loss quantile at ``tail_prob``; ``sd_mu`` the
posterior standard deviation of the mean return, an explicit margin for the model's own
uncertainty (large after few observations, so the protocol de-risks while it is unsure);
``z`` the normal quantile and ``sigma_ref`` the per-step volatility of ``reference_vol``:
stress 1 is the tail a Gaussian market at the reference volatility would have. The risk
lever then follows :class:`~liqnet.agents.rules.RiskBudget`.

The posterior forgets (``BayesConfig.memory_hours``, exponential weights on past returns,
:meth:`NormalInverseGamma.discounted`): a plain conjugate posterior after 2,000 calm
steps ignores 48 steps of a 5x volatility regime, so its uncertainty margin would act
only at cold start. With a 48-hour memory it tightens within a few hours of the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from liqnet.agents.base import Policy, PolicyContext
from liqnet.agents.rules import RiskBudget
from liqnet.agents.static import RISK, standing_levers
from liqnet.core.observations import observation_indices
from liqnet.core.units import HOURS_PER_YEAR


@dataclass(frozen=True)
class NormalInverseGamma:
    """NIG parameters, one entry per series (asset); immutable, updates return new ones.

    Attributes:
        mu: Location of the mean.
        kappa: Pseudo-observations behind ``mu``.
        alpha: Shape of the inverse-gamma on the variance.
        beta: Scale of the inverse-gamma on the variance.
    """

    mu: np.ndarray
    kappa: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    @classmethod
    def prior(
        cls, n: int, mu: float, kappa: float, alpha: float, beta: float
    ) -> NormalInverseGamma:
        """The same prior for ``n`` series."""
        if not (kappa > 0.0 and alpha > 1.0 and beta > 0.0):
            raise ValueError(
                f"NIG prior needs kappa > 0, alpha > 1, beta > 0; got {kappa}, {alpha}, {beta}"
            )
        full = [np.full(n, float(v)) for v in (mu, kappa, alpha, beta)]
        return cls(*full)

    def updated(self, x: np.ndarray) -> NormalInverseGamma:
        """Posterior after observing ``x``: shape ``(n_series,)`` or a batch ``(n, n_series)``.

        Uses the batch closed form, so one call with ``n`` rows equals ``n`` calls with one.
        """
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n = x.shape[0]
        if n == 0:
            return self
        xbar = x.mean(axis=0)
        kappa = self.kappa + n
        return NormalInverseGamma(
            mu=(self.kappa * self.mu + n * xbar) / kappa,
            kappa=kappa,
            alpha=self.alpha + 0.5 * n,
            beta=self.beta
            + 0.5 * ((x - xbar) ** 2).sum(axis=0)
            + self.kappa * n * (xbar - self.mu) ** 2 / (2.0 * kappa),
        )

    def discounted(self, prior: NormalInverseGamma, keep: float) -> NormalInverseGamma:
        """The posterior with past evidence weighted by ``keep`` (in (0, 1]), toward ``prior``.

        Exponential forgetting, exact in the natural parameters ``(kappa, kappa mu,
        beta + kappa mu^2 / 2, alpha)``, which each observation raises by ``(1, x, x^2/2,
        1/2)``: discounting their excess over the prior by ``keep`` before every update
        weights an observation ``k`` steps old by ``keep**k`` (the power prior of Ibrahim &
        Chen 2000; West & Harrison's discount factors, "Bayesian Forecasting and Dynamic
        Models", ch. 6). The prior's pseudo-observations are never forgotten, so the
        posterior stays proper (``alpha > 1``) however long the memory runs.
        """
        if keep >= 1.0:
            return self

        def mix(now: np.ndarray, base: np.ndarray) -> np.ndarray:
            return base + keep * (now - base)

        kappa = mix(self.kappa, prior.kappa)
        weighted_mu = mix(self.kappa * self.mu, prior.kappa * prior.mu)
        energy = mix(
            self.beta + 0.5 * self.kappa * self.mu**2, prior.beta + 0.5 * prior.kappa * prior.mu**2
        )
        mu = weighted_mu / kappa
        return NormalInverseGamma(
            mu=mu,
            kappa=kappa,
            alpha=mix(self.alpha, prior.alpha),
            beta=energy - 0.5 * kappa * mu**2,
        )

    def predictive_scale(self) -> np.ndarray:
        """Scale of the Student-t posterior predictive of the next observation."""
        return np.sqrt(self.beta * (self.kappa + 1.0) / (self.alpha * self.kappa))

    def mean_sd(self) -> np.ndarray:
        """Posterior standard deviation of ``mu`` (needs ``alpha > 1``, which priors ensure)."""
        return np.sqrt(self.beta / ((self.alpha - 1.0) * self.kappa))

    def tail_loss(self, tail_prob: float) -> np.ndarray:
        """Loss ``-q`` at the predictive's lower ``tail_prob`` quantile ``q`` (a VaR)."""
        t_quantile = stats.t.isf(tail_prob, df=2.0 * self.alpha)
        return self.predictive_scale() * t_quantile - self.mu


@dataclass
class BayesConfig:
    """Hyper-parameters of :class:`BayesianRiskManager`."""

    prior_vol: float = 0.8
    """Annualised volatility the prior expects (sets ``beta_0``: E[sigma^2] matches it)."""
    prior_mean: float = 0.0
    """Prior mean of the per-step log return (``mu_0``)."""
    prior_kappa: float = 1.0
    """Pseudo-observations behind the prior mean (``kappa_0``; small = vague)."""
    prior_alpha: float = 3.0
    """Inverse-gamma shape (``alpha_0`` > 1; about 2 * alpha_0 pseudo-observations of
    variance)."""
    reference_vol: float = 1.0
    """Annualised volatility whose Gaussian tail counts as stress 1."""
    tail_prob: float = 0.01
    """Tail probability of the loss quantile (0.01 = one-step 99% VaR)."""
    uncertainty_weight: float = 1.0
    """Weight of the posterior uncertainty margin ``z * sd(mu)`` (0 = tail only)."""
    gain: float = 1.0
    """Risk lever per unit of relative excess stress."""
    loosen_rate: float = 0.1
    """Risk lever magnitude per step while stress is at or below 1."""
    max_tightening: float = 20.0
    """Most outstanding tightening, in lever-steps."""
    memory_hours: float = 48.0
    """Time scale of the posterior's memory: evidence ``t`` hours old weighs
    ``exp(-t / memory_hours)`` (:meth:`NormalInverseGamma.discounted`), so uncertainty and
    the tail estimate follow a regime change within hours instead of being outweighed by
    a long calm. ``math.inf`` never forgets (the plain conjugate posterior)."""


class BayesianRiskManager(Policy):
    """Risk lever from an NIG posterior on every asset's per-step log returns.

    Each :meth:`act` updates the posterior with the ``<asset>.log_return`` entries (market
    entries are the same in every agent's observation, so the first agent's are used),
    except on the first call after :meth:`reset`: the reset observation carries no return
    yet. Call :meth:`act` once per step with all the agents this policy acts for.

    Args:
        config: Hyper-parameters (defaults: :class:`BayesConfig`).
    """

    name = "bayesian"

    def __init__(self, config: BayesConfig | None = None) -> None:
        self.config = c = config or BayesConfig()
        if not 0.0 < c.tail_prob < 0.5:
            raise ValueError(f"tail_prob = {c.tail_prob!r}: must be in (0, 0.5)")
        for name in ("prior_vol", "reference_vol", "memory_hours"):
            if not getattr(c, name) > 0.0:
                raise ValueError(f"{name} = {getattr(c, name)!r}: must be > 0")
        self.budget = RiskBudget(c.gain, c.loosen_rate, c.max_tightening)
        self.z = float(stats.norm.isf(c.tail_prob))

    def reset(self, context: PolicyContext) -> None:
        """Start from the prior (scaled to this market's step length)."""
        super().reset(context)
        c = self.config
        self._return_index = observation_indices(context.observation_names, "log_return")
        per_step = math.sqrt(context.dt_hours / HOURS_PER_YEAR)
        prior_var = (c.prior_vol * per_step) ** 2
        # E[sigma^2] = beta / (alpha - 1) under the inverse gamma: match the prior volatility.
        self.prior = NormalInverseGamma.prior(
            len(self._return_index),
            c.prior_mean,
            c.prior_kappa,
            c.prior_alpha,
            prior_var * (c.prior_alpha - 1.0),
        )
        self.state = self.prior
        self.keep = math.exp(-context.dt_hours / c.memory_hours)  # 1.0 when never forgetting
        self.reference_loss = self.z * c.reference_vol * per_step
        self.budget.reset()
        self._fresh = True

    def posterior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(mu_n, kappa_n, alpha_n, beta_n)``, one entry per asset."""
        s = self.state
        return s.mu.copy(), s.kappa.copy(), s.alpha.copy(), s.beta.copy()

    def observe(self, log_returns: np.ndarray) -> None:
        """Forget a step's worth of old evidence, then update on one step's log returns."""
        x = np.asarray(log_returns, dtype=np.float64)
        self.state = self.state.discounted(self.prior, self.keep).updated(x)

    def stress(self) -> float:
        """Posterior tail loss plus uncertainty margin over the reference tail (max over assets)."""
        c = self.config
        margin = c.uncertainty_weight * self.z * self.state.mean_sd()
        return float(np.max((self.state.tail_loss(c.tail_prob) + margin) / self.reference_loss))

    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Update on this step's returns, then set every agent's risk lever from the stress."""
        if not observations:
            return {}
        if self._fresh:
            self._fresh = False
        else:
            first = next(iter(observations.values()))
            self.observe(first[self._return_index])
        stress = self.stress()
        actions = {}
        for agent in observations:
            levers = standing_levers(self.context, agent)
            levers[RISK] = self.budget.lever(agent, stress)
            actions[agent] = levers
        return actions


def make_bayesian(argument: str | None) -> BayesianRiskManager:
    """Factory for the ``"bayesian"`` spec (takes no argument)."""
    if argument is not None:
        raise ValueError(f"policy spec 'bayesian:{argument}': 'bayesian' takes no argument")
    return BayesianRiskManager()
