"""A common probe set of states, on which policies are compared (issue: convergence).

Behavioural and representational similarity (``liqnet.analysis.response_similarity``,
``policy_similarity``) need every policy to answer the *same* observations; otherwise two
policies look alike merely because they saw alike states. The probe set is drawn from the
worlds the comparison is about -- typically the crash scenarios the policies are tested
on -- by stepping them under their standing levers (zero actions: no policy's choices
shape the states) and sampling observations of every live agent at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liqnet.core.schema import Scenario
from liqnet.scenarios.envs import make_vec_env

__all__ = ["probe_states"]


def probe_states(
    scenarios: Sequence[Scenario | str | Path],
    n: int = 512,
    *,
    seed: int = 0,
    worlds: int = 4,
    steps: int | None = None,
) -> np.ndarray:
    """``(n, obs_dim)`` float32 observations sampled from ``scenarios`` under zero actions.

    Each scenario runs ``worlds`` worlds (seeds ``seed, seed + 1, ...``) for ``steps``
    steps (default: the scenario's horizon); the observations of every live agent at
    every step, the initial ones included, are pooled over scenarios and ``n`` of them
    drawn without replacement (all of them, shuffled, if fewer) by a generator seeded
    with ``seed``. The same arguments give the same probes.

    Raises:
        ValueError: No scenario, ``n``/``worlds``/``steps`` below 1, or scenarios whose
            observations differ in length (their agents' features cannot be compared).
    """
    if not scenarios:
        raise ValueError("probe_states needs at least one scenario")
    for name, value in (("n", n), ("worlds", worlds), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"probe_states: {name} must be a positive integer, got {value!r}")
    pooled: list[np.ndarray] = []
    dims: dict[str, int] = {}
    for scenario in scenarios:
        env = make_vec_env(scenario, num_envs=worlds, seed=seed, horizon=steps, autoreset=False)
        obs, infos = env.reset(seed=seed)
        dims[env.scenario.name] = obs.shape[-1]
        zeros = np.zeros(env.action_space.shape, dtype=np.float32)
        alive = infos["alive"]
        pooled.append(obs[alive])
        for _ in range(int(env.horizons.max())):
            obs, _, _, _, infos = env.step(zeros)
            # An agent alive into the step has a last observation even if the step ended it.
            pooled.append(obs[alive])
            alive = infos["alive"]
            if not alive.any():
                break
        env.close()
    if len(set(dims.values())) > 1:
        raise ValueError(f"probe_states: observation lengths differ between scenarios: {dims}")
    states = np.concatenate(pooled).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(states))
    return states[order[: min(n, len(states))]]
