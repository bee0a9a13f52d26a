"""Running scenarios with policies: each protocol's ``policy`` spec acts for it in the env.

``resolve_policies`` turns the per-protocol specs of a scenario (``"static"``,
``"vol_target"``, ``"bayesian"``, ``"forecaster:PATH"``, ...) into
:class:`~liqnet.agents.base.Policy` objects, one object per distinct spec (agents that
share a spec share the object, so a learned policy acts for them as one batch).
``run_with_policies`` drives :class:`~liqnet.market.env.LiquidityEnv` with them and
returns the same :class:`~liqnet.scenarios.run.RunResult` as the static path of
:func:`~liqnet.scenarios.run.run`.

Specs are validated here, at load or run time, not by the scenario schema: the registry
of policy names is open (``liqnet.agents.register_policy``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from liqnet.agents import Policy, PolicyContext, make_policy, parse_policy_spec
from liqnet.core.result import RunResult
from liqnet.core.schema import Scenario
from liqnet.market.env import LiquidityEnv
from liqnet.scenarios.loader import ScenarioError, load
from liqnet.scenarios.run import _result_from_model

StepObserver = Callable[[LiquidityEnv, dict[str, np.ndarray]], None]
"""Called after ``reset`` and after every step with the env and the new observations."""


def _policy_error(scenario: Scenario, protocol_id: str, spec: str, err: Exception) -> ScenarioError:
    """One clear error naming the protocol's field, the spec and what is wrong with it."""
    k = next(i for i, p in enumerate(scenario.protocols) if p.id == protocol_id)
    return ScenarioError(
        f"scenario {scenario.name!r}: protocols[{k}].policy = {spec!r} "
        f"(protocol {protocol_id!r}): {err}"
    )


def check_policy_specs(scenario: Scenario) -> None:
    """Check every protocol's policy spec names a registered policy (builds nothing).

    Raises:
        ScenarioError: On an unknown name; the message lists the allowed names.
    """
    for spec in scenario.protocols:
        try:
            parse_policy_spec(spec.policy)
        except ValueError as err:
            raise _policy_error(scenario, spec.id, spec.policy, err) from None


def resolve_policies(scenario: Scenario) -> dict[str, Policy]:
    """A policy object for every protocol id; protocols with the same spec share one.

    Raises:
        ScenarioError: If a spec names no registered policy (lists the allowed names) or
            its policy cannot be built (e.g. a missing or corrupt checkpoint).
    """
    check_policy_specs(scenario)
    built: dict[str, Policy] = {}
    for spec in scenario.protocols:
        if spec.policy not in built:
            try:
                built[spec.policy] = make_policy(spec.policy)
            except (ValueError, KeyError, OSError) as err:
                raise _policy_error(scenario, spec.id, spec.policy, err) from None
    return {spec.id: built[spec.policy] for spec in scenario.protocols}


def policy_groups(policies: Mapping[str, Policy]) -> list[tuple[Policy, tuple[str, ...]]]:
    """Distinct policy objects with the agents each acts for (in the mapping's order)."""
    groups: dict[int, tuple[Policy, list[str]]] = {}
    for agent, policy in policies.items():
        groups.setdefault(id(policy), (policy, []))[1].append(agent)
    return [(policy, tuple(agents)) for policy, agents in groups.values()]


def reset_policies(
    env: LiquidityEnv, policies: Mapping[str, Policy], seed: int
) -> list[tuple[Policy, tuple[str, ...]]]:
    """Give every policy its :class:`PolicyContext` for a new episode; returns the groups."""
    standing = {spec.id: spec.lever_vector().astype(np.float32) for spec in env.scenario.protocols}
    groups = policy_groups(policies)
    for policy, agents in groups:
        unknown = [a for a in agents if a not in env.possible_agents]
        if unknown:
            raise KeyError(f"policies for unknown agents {unknown}; agents: {env.possible_agents}")
        policy.reset(
            PolicyContext(
                agent_ids=agents,
                observation_space=env.observation_space(agents[0]),
                action_space=env.action_space(agents[0]),
                observation_names=env.observation_names,
                dt_hours=env.scenario.dt_hours,
                seed=seed,
                standing_levers={a: standing[a] for a in agents},
            )
        )
    return groups


def run_with_policies(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    feedback: bool | None = None,
    steps: int | None = None,
    *,
    policies: Mapping[str, Policy] | None = None,
    on_step: StepObserver | None = None,
) -> RunResult:
    """Run a scenario through :class:`LiquidityEnv`, each protocol acted for by a policy.

    Args:
        scenario: A validated :class:`Scenario`, a built-in name or a TOML path.
        seed: World seed (default: the scenario's).
        feedback: Overrides the scenario's ``feedback`` switch.
        steps: Overrides the horizon.
        policies: Policy per protocol id (default: :func:`resolve_policies`). A protocol
            without one acts with its standing levers.
        on_step: Optional observer, called after ``reset`` and after every step.

    Returns:
        The same :class:`RunResult` as :func:`liqnet.scenarios.run` (one timeseries row
        per step and the initial one, even if every protocol defaulted early: the world
        then runs on to the horizon as it would without agents).

    Raises:
        ScenarioError: If a policy spec is unknown or its policy cannot be built.
    """
    if not isinstance(scenario, Scenario):
        scenario = load(scenario)
    policies = resolve_policies(scenario) if policies is None else policies
    world = scenario
    if feedback is not None and bool(feedback) != scenario.feedback:
        # The env has no feedback switch of its own; the model reads it from the scenario.
        world = scenario.model_copy(update={"feedback": bool(feedback)})
    horizon = scenario.steps if steps is None else int(steps)
    env = LiquidityEnv(world, horizon=horizon)
    episode_seed = scenario.seed if seed is None else int(seed)
    observations, _ = env.reset(seed=episode_seed)
    groups = reset_policies(env, policies, episode_seed)
    if on_step is not None:
        on_step(env, observations)
    while env.agents:
        live = set(env.agents)
        actions: dict[str, np.ndarray] = {}
        for policy, agents in groups:
            seen = {a: observations[a] for a in agents if a in live}
            if seen:
                actions.update(policy.act(seen))
        observations, *_ = env.step(actions)
        if on_step is not None:
            on_step(env, observations)
    model = env.model
    if model is None:  # reset() built it; only close() clears it
        raise RuntimeError("the environment was closed during the episode")
    while model.step_index < horizon:
        model.step()
    return _result_from_model(model, scenario)


def record_observations(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    steps: int | None = None,
    *,
    policies: Mapping[str, Policy] | None = None,
) -> tuple[list[dict[str, np.ndarray]], tuple[str, ...], RunResult]:
    """Run with policies and keep every step's observations (training data for models).

    Returns:
        The observations after reset and after each step (live agents only), the env's
        observation names, and the :class:`RunResult`.
    """
    recorded: list[dict[str, np.ndarray]] = []
    names: list[tuple[str, ...]] = []

    def keep(env: LiquidityEnv, observations: dict[str, np.ndarray]) -> None:
        if not names:
            names.append(env.observation_names)
        # Agents that just defaulted or hit the horizon act no more: policies never see them.
        live = set(env.agents)
        recorded.append({a: o.copy() for a, o in observations.items() if a in live})

    result = run_with_policies(scenario, seed, steps=steps, policies=policies, on_step=keep)
    return recorded, names[0], result
