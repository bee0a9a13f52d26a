"""MAPPO: multi-agent PPO with a centralised critic, one readable trainer.

Every protocol is an agent acting through the common levers. The actor sees only its
own observation (decentralised execution); the critic sees ``env.state()`` - every
protocol's observation - plus which agent it values and how far the episode has run
(centralised training). The structure follows CleanRL's ``ppo_continuous_action.py``:

1. rollouts (:mod:`liqnet.scenarios.rollout`) sample actions from the current actor;
2. the learner values every visited state, computes GAE advantages (:func:`gae`) and,
   with antithetic pairs, contrasts each with its partner's (:func:`pair_contrast`);
3. returns are normalised by a running mean/std (:class:`RunningNorm`, "value
   normalisation"), because calm-step rewards are ~1e-6 and crash steps ~1;
4. a few epochs of minibatch updates of the clipped surrogate objective, value loss and
   entropy bonus (:meth:`MAPPO.update`);
5. the new actor parameters are broadcast to the rollout workers.

Parameters are either *shared* by all agents (the observation already ends with the
protocol-type one-hot, so one network can act differently per type) or *independent*
(one actor and one critic per agent slot).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from liqnet.agents.normalization import RunningNorm
from liqnet.core.levers import DEFAULT_STANDING_LEVERS

SHARING_MODES = ("shared", "independent")
"""Allowed values of :attr:`MAPPOConfig.sharing`."""

STATIC_LEVERS = DEFAULT_STANDING_LEVERS
"""The default standing levers (:data:`liqnet.core.levers.DEFAULT_LEVERS`, in order)."""


@dataclass
class MAPPOConfig:
    """Every hyper-parameter of MAPPO training, in one place."""

    sharing: str = "shared"
    """``"shared"``: one actor and one critic for all agents; ``"independent"``: one each
    per agent slot."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden tanh layers of actor and critic."""
    num_envs: int = 8
    """Environments stepped per iteration, summed over all rollout workers."""
    rollout_steps: int = 96
    """Steps taken in every environment per iteration (episodes continue across
    iterations; an environment resets itself when its episode ends)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: bias-variance trade-off of the advantage estimate."""
    learning_rate: float = 3e-4
    """Adam step size for actor and critic."""
    update_epochs: int = 4
    """Passes over each batch."""
    num_minibatches: int = 4
    """Minibatches per pass."""
    clip_coef: float = 0.2
    """PPO clip range of the probability ratio."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the (normalised) value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (std ~0.6 of the lever
    range: enough to explore, little enough that most samples stay in [-1, 1])."""
    noise_hold_steps: int = 1
    """Steps each exploration-noise draw is held for, per environment and agent (like
    SB3's gSDE ``sde_sample_freq``): 1 draws fresh noise every step; ``k > 1`` keeps the
    same standard-normal draw for ``k`` steps of the episode; 0 keeps one draw for the
    whole episode. Levers are bounded per-step increments, so white noise mostly averages
    out over an episode, while held noise explores persistent moves. Only the noise is
    held: every action is still ``mean + std * noise`` and the PPO ratio uses its per-step
    Gaussian likelihood."""
    antithetic_pairs: bool = False
    """Environments ``2j`` and ``2j + 1`` form a pair: the same scenario, the same episode
    seeds and opposite exploration noise (antithetic sampling with common random
    numbers). Each one's advantage becomes half the difference to its partner's at the
    same step of the same episode, so what the seed did to both (a crash's size, a run's
    timing) cancels and what the opposite levers did remains: crash losses vary far more
    from seed to seed than with the levers. Needs an even ``num_envs``."""
    init_action: tuple[float, ...] = STATIC_LEVERS
    """Initial mean action: the default standing levers, so training starts from static
    governance (no inter-protocol lending) rather than from a policy lending half its
    idle cash."""
    seed: int = 0
    """Seed of network initialisation, minibatch order, action noise and episode seeds."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.init_action = tuple(float(a) for a in self.init_action)
        checks = [
            ("sharing", self.sharing in SHARING_MODES, f"one of {SHARING_MODES}"),
            ("hidden_sizes", all(h >= 1 for h in self.hidden_sizes), "positive integers"),
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("rollout_steps", self.rollout_steps >= 1, ">= 1"),
            ("noise_hold_steps", self.noise_hold_steps >= 0, ">= 0"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"),
            ("gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "in [0, 1]"),
            ("learning_rate", self.learning_rate > 0.0, "> 0"),
            ("update_epochs", self.update_epochs >= 1, ">= 1"),
            ("num_minibatches", self.num_minibatches >= 1, ">= 1"),
            ("clip_coef", self.clip_coef > 0.0, "> 0"),
            ("max_grad_norm", self.max_grad_norm > 0.0, "> 0"),
            ("init_action", len(self.init_action) == len(STATIC_LEVERS), "6 levers"),
            (
                "num_envs",
                self.num_envs % 2 == 0 or not self.antithetic_pairs,
                "even with antithetic_pairs",
            ),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"MAPPOConfig.{name} = {getattr(self, name)!r}: must be {allowed}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MAPPOConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        values = dict(values)  # older checkpoints carry the removed team_weight (0.0)
        if (team := values.pop("team_weight", 0.0)) != 0.0:
            raise ValueError(f"MAPPOConfig.team_weight = {team!r}: removed; use TeamMixReward")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MAPPOConfig field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)


def _mlp(sizes: list[int], out_std: float, out_bias: tuple[float, ...] | float = 0.0) -> nn.Module:
    """Tanh MLP with CleanRL's orthogonal initialisation (small last layer for actors)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layer = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, out_std if last else math.sqrt(2))
        nn.init.zeros_(layer.bias)
        if last:
            with torch.no_grad():
                layer.bias.copy_(torch.as_tensor(out_bias, dtype=torch.float32))
        layers += [layer] if last else [layer, nn.Tanh()]
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Gaussian actors on own observations, critics on the global state.

    Tensors carry an agent axis of length ``n_agents`` just before the feature axis:
    observations ``(..., n_agents, obs_dim)``, states ``(..., state_dim)``.

    Args:
        obs_dim: Length of one agent's observation.
        n_agents: Agent slots (the env's ``possible_agents``).
        action_dim: Levers per agent.
        config: Network sizes, sharing mode and initial action distribution.
    """

    def __init__(self, obs_dim: int, n_agents: int, action_dim: int, config: MAPPOConfig) -> None:
        super().__init__()
        self.obs_dim, self.n_agents, self.action_dim = obs_dim, n_agents, action_dim
        self.state_dim = obs_dim * n_agents
        copies = 1 if config.sharing == "shared" else n_agents
        hidden = list(config.hidden_sizes)
        self.actors = nn.ModuleList(
            _mlp([obs_dim, *hidden, action_dim], 0.01, config.init_action) for _ in range(copies)
        )
        # The critic also gets the agent's slot (one-hot) and the elapsed share of the
        # episode: the horizon is then a true terminal state, not a truncation.
        critic_in = self.state_dim + n_agents + 1
        self.critics = nn.ModuleList(_mlp([critic_in, *hidden, 1], 1.0) for _ in range(copies))
        self.log_std = nn.Parameter(torch.full((copies, action_dim), config.init_log_std))
        self.obs_norm = RunningNorm((obs_dim,))
        self.state_norm = RunningNorm((self.state_dim,))
        self.value_norm = RunningNorm(())

    def _per_slot(self, nets: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        if len(nets) == 1:
            return nets[0](x)
        return torch.stack([net(x[..., i, :]) for i, net in enumerate(nets)], dim=-2)

    def action_mean(self, obs_normed: torch.Tensor) -> torch.Tensor:
        """Mean levers ``(..., n_agents, action_dim)`` from normalised observations."""
        return self._per_slot(self.actors, obs_normed)

    def distribution(self, obs_normed: torch.Tensor) -> Normal:
        """The Gaussian policy of every agent slot."""
        mean = self.action_mean(obs_normed)
        return Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, state: torch.Tensor, time_frac: torch.Tensor) -> torch.Tensor:
        """Normalised value ``(..., n_agents)`` of raw states ``(..., state_dim)``."""
        s = self.state_norm.normalize(state)
        lead = s.shape[:-1]
        s = s.unsqueeze(-2).expand(*lead, self.n_agents, self.state_dim)
        slot = torch.eye(self.n_agents).expand(*lead, self.n_agents, self.n_agents)
        t = time_frac.to(torch.float32).unsqueeze(-1).expand(*lead, self.n_agents).unsqueeze(-1)
        return self._per_slot(self.critics, torch.cat([s, slot, t], dim=-1)).squeeze(-1)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a ``(T, ...)`` rollout.

    Args:
        rewards: ``r_t``.
        values: ``V(s_t)`` (un-normalised).
        dones: 1 where the agent's episode ended *after* step ``t`` (no bootstrap).
        last_values: ``V`` of the state after the last step (0 for a dead agent).
        gamma: Discount.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(rewards.shape[0])):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def pair_contrast(
    advantages: torch.Tensor, episodes: torch.Tensor, times: torch.Tensor, alive: torch.Tensor
) -> torch.Tensor:
    """Advantages relative to the pair partner (:attr:`MAPPOConfig.antithetic_pairs`).

    Environments ``2j`` and ``2j + 1`` are partners. Where both run the same episode seed
    at the same step and the agent is alive in both, their advantages ``a`` and ``b``
    become ``(a - b) / 2`` and ``(b - a) / 2``; elsewhere (a partner whose episode ended
    early) they stay as they are.

    Args:
        advantages: ``(T, E, n_agents)``, ``E`` even.
        episodes: ``(T, E)`` episode seed of every step.
        times: ``(T, E)`` elapsed share of the episode.
        alive: ``(T, E, n_agents)``.

    Returns:
        The contrasted advantages, same shape.
    """
    first, second = advantages[:, 0::2], advantages[:, 1::2]
    same = (episodes[:, 0::2] == episodes[:, 1::2]) & (times[:, 0::2] == times[:, 1::2])
    both = same.unsqueeze(-1) & alive[:, 0::2].bool() & alive[:, 1::2].bool()
    half = (first - second) / 2.0
    out = advantages.clone()
    out[:, 0::2] = torch.where(both, half, first)
    out[:, 1::2] = torch.where(both, -half, second)
    return out


class MAPPO:
    """The learner: holds the networks and the optimiser, updates from rollout batches.

    Args:
        config: Hyper-parameters.
        obs_dim: Length of one agent's observation.
        n_agents: Agent slots.
        action_dim: Levers per agent.
    """

    def __init__(self, config: MAPPOConfig, obs_dim: int, n_agents: int, action_dim: int) -> None:
        self.config = config
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(config.seed)
            self.net = ActorCritic(obs_dim, n_agents, action_dim, config)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)

    def actor_params(self) -> dict[str, Any]:
        """What rollout workers need to act: actor weights and observation statistics."""
        state = self.net.state_dict()
        keep = ("actors.", "log_std", "obs_norm.")
        return {k: v.detach().clone() for k, v in state.items() if k.startswith(keep)}

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One PPO update from a rollout batch (see :data:`liqnet.scenarios.rollout.Batch`).

        Returns:
            Mean losses and diagnostics of the update.
        """
        cfg, net = self.config, self.net
        b = {k: torch.as_tensor(v) for k, v in batch.items()}
        alive = b["alive"].to(torch.float32)

        # 1. Values of the visited states and of the state after the last step.
        with torch.no_grad():
            values = net.value_norm.denormalize(net.value(b["state"], b["time"])) * alive
            last = net.value_norm.denormalize(net.value(b["last_state"], b["last_time"]))
            last = last * b["last_alive"].to(torch.float32)

        # 2. GAE on the env's rewards at their raw scale (the returns' scale is handled
        #    by value normalisation). Reward shaping - the system team reward, a team
        #    mix - is the env's job (liqnet.agents.wrappers, liqnet.market.wrappers).
        advantages, returns = gae(
            b["rewards"], values, b["dones"].to(torch.float32), last, cfg.gamma, cfg.gae_lambda
        )
        if cfg.antithetic_pairs:
            advantages = pair_contrast(advantages, b["episode"], b["time"], alive)
        net.value_norm.update(returns[alive.bool()])
        targets = net.value_norm.normalize(returns)

        # 3. Flatten to samples (t, env), keeping the agent axis for the critic and the
        #    per-slot networks; dead agents are masked out of every loss.
        n_samples = alive.shape[0] * alive.shape[1]
        flat = {
            "obs": b["obs"].flatten(0, 1),
            "actions": b["actions"].flatten(0, 1),
            "logp": b["logp"].flatten(0, 1),
            "state": b["state"].flatten(0, 1),
            "time": b["time"].flatten(0, 1),
            "adv": advantages.flatten(0, 1),
            "targets": targets.flatten(0, 1),
            "alive": alive.flatten(0, 1),
        }

        # 4. Clipped-objective epochs over shuffled minibatches.
        size = max(1, n_samples // cfg.num_minibatches)
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy")}
        stats["approx_kl"], stats["clip_frac"] = [], []
        for _ in range(cfg.update_epochs):
            order = torch.randperm(n_samples, generator=self.generator)
            for start in range(0, n_samples, size):
                mb = {k: v[order[start : start + size]] for k, v in flat.items()}
                self._minibatch_step(mb, stats)

        # 5. Observation statistics follow the data only after the update, so the batch
        #    was trained with the statistics it was sampled under.
        mask = b["alive"].bool()
        net.obs_norm.update(b["raw_obs"][mask])
        net.state_norm.update(b["state"].flatten(0, 1))
        return {k: float(np.mean(v)) if v else 0.0 for k, v in stats.items()}

    def _minibatch_step(self, mb: dict[str, torch.Tensor], stats: dict[str, list[float]]) -> None:
        cfg, net = self.config, self.net
        mask = mb["alive"]
        n = mask.sum().clamp(min=1.0)
        dist = net.distribution(mb["obs"])
        logp = dist.log_prob(mb["actions"]).sum(-1)
        log_ratio = logp - mb["logp"]
        ratio = log_ratio.exp()

        # Advantages normalised over the live samples of the minibatch (CleanRL's norm_adv).
        adv = mb["adv"]
        live_adv = adv[mask.bool()]
        if live_adv.numel() > 1:
            adv = (adv - live_adv.mean()) / (live_adv.std() + 1e-8)
        surrogate = torch.max(
            -adv * ratio, -adv * ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        )
        policy_loss = (surrogate * mask).sum() / n
        value_error = net.value(mb["state"], mb["time"]) - mb["targets"]
        value_loss = 0.5 * (value_error.pow(2) * mask).sum() / n
        entropy = (dist.entropy().sum(-1) * mask).sum() / n
        loss = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss

        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()

        with torch.no_grad():
            stats["policy_loss"].append(float(policy_loss))
            stats["value_loss"].append(float(value_loss))
            stats["entropy"].append(float(entropy))
            stats["approx_kl"].append(float((((ratio - 1) - log_ratio) * mask).sum() / n))
            clipped = ((ratio - 1.0).abs() > cfg.clip_coef).float()
            stats["clip_frac"].append(float((clipped * mask).sum() / n))
