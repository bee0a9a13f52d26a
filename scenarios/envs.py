"""``make_env`` / ``make_vec_env``: environments from a scenario name or file.

The one place that turns scenario files plus overrides into environments, e.g. for an
RLlib ``register_env`` creator, a training run or a test, optionally inside wrappers
(:mod:`liqnet.agents.wrappers`, :mod:`liqnet.market.wrappers`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pettingzoo import ParallelEnv

from liqnet.core.schema import Scenario
from liqnet.market.env import LiquidityEnv
from liqnet.market.vector_env import VectorLiquidityEnv
from liqnet.scenarios.loader import apply_overrides, load, validate


def make_env(
    scenario_or_name: Scenario | str | Path,
    render_mode: str | None = None,
    horizon: int | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    insolvency_penalty: float = 1.0,
    shortfall_penalty: float = 1.0,
    vol_window: int = 24,
    wrappers: Sequence[Callable[[ParallelEnv], ParallelEnv]] = (),
    **dotted: Any,
) -> ParallelEnv:
    """Build a :class:`LiquidityEnv` for a scenario, with dotted-key overrides.

    Overrides come as a dict of dotted keys (``overrides={"market.permanent_impact":
    0.8}``) and/or as keyword arguments with ``__`` for the dots
    (``market__permanent_impact=0.8``, ``protocols__0__params__positions=200``,
    ``steps=48``); keyword arguments win on the same key.

    ``wrappers`` are applied in order, the first directly around the
    :class:`LiquidityEnv`: ``wrappers=[f, g]`` gives ``g(f(env))``, so ``g`` sees what
    ``f`` made of the observations and rewards. Order matters: a
    :class:`~liqnet.agents.wrappers.ForecastObservation` goes before a
    :class:`~liqnet.agents.wrappers.NormalizeObservation` (the forecaster needs raw
    observations, and the normaliser then covers the forecasts too), and a
    :class:`~liqnet.market.wrappers.SystemRewardWrapper` replaces every reward computed
    inside it. Use ``functools.partial`` for wrapper arguments.

    Args:
        scenario_or_name: A validated :class:`Scenario`, a built-in name or a TOML path.
        render_mode: ``None``, ``"ansi"`` or ``"rgb_array"``.
        horizon: Steps per episode (default: the scenario's ``steps``).
        overrides: Dotted-key overrides.
        insolvency_penalty: See :class:`LiquidityEnv`.
        shortfall_penalty: See :class:`LiquidityEnv`.
        vol_window: See :class:`LiquidityEnv`.
        wrappers: Callables ``env -> env`` applied in order (innermost first).
        **dotted: More overrides, ``__`` standing for ``.``.

    Returns:
        A new environment (the :class:`LiquidityEnv` itself without ``wrappers``); call
        ``reset()`` before stepping it.

    Raises:
        ScenarioError: If the scenario or an override is invalid (names the field).
        ValueError: If an environment argument is out of range.
    """
    env: ParallelEnv = LiquidityEnv(
        resolve_scenario(scenario_or_name, overrides, dotted),
        render_mode=render_mode,
        horizon=horizon,
        insolvency_penalty=insolvency_penalty,
        shortfall_penalty=shortfall_penalty,
        vol_window=vol_window,
    )
    for wrap in wrappers:
        env = wrap(env)
    return env


def make_vec_env(
    scenario_or_name: Scenario | str | Path,
    num_envs: int,
    seed: int | None = None,
    horizon: int | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    insolvency_penalty: float = 1.0,
    shortfall_penalty: float = 1.0,
    vol_window: int = 24,
    autoreset: bool = True,
    **dotted: Any,
) -> VectorLiquidityEnv:
    """Build a :class:`VectorLiquidityEnv`: ``num_envs`` worlds of one scenario.

    Shapes, autoreset convention (Gymnasium's ``SAME_STEP``) and seeding (world ``b`` of
    ``reset(seed=s)`` is the scalar env after ``reset(seed=s + b)``) are documented in
    :mod:`liqnet.market.vector_env`.

    Args:
        scenario_or_name: A validated :class:`Scenario`, a built-in name or a TOML path.
        num_envs: Worlds stepped together (``B``).
        seed: Seed of the first ``reset()`` without one (default: the scenario's).
        horizon: Steps per episode (default: the scenario's ``steps``).
        overrides: Dotted-key overrides, as for :func:`make_env`.
        insolvency_penalty: See :class:`LiquidityEnv`.
        shortfall_penalty: See :class:`LiquidityEnv`.
        vol_window: See :class:`LiquidityEnv`.
        autoreset: Reset ended worlds in the step that ends them.
        **dotted: More overrides, ``__`` standing for ``.``.

    Raises:
        ScenarioError: If the scenario or an override is invalid (names the field).
        ValueError: If an environment argument is out of range.
    """
    return VectorLiquidityEnv(
        resolve_scenario(scenario_or_name, overrides, dotted),
        num_envs,
        seed,
        horizon,
        insolvency_penalty=insolvency_penalty,
        shortfall_penalty=shortfall_penalty,
        vol_window=vol_window,
        autoreset=autoreset,
    )


def resolve_scenario(
    scenario_or_name: Scenario | str | Path,
    overrides: dict[str, Any] | None = None,
    dotted: dict[str, Any] | None = None,
) -> Scenario:
    """The validated scenario with ``overrides`` (dotted keys) and ``dotted`` (``__`` for
    the dots, winning on the same key) applied."""
    values = dict(overrides or {})
    values.update({key.replace("__", "."): value for key, value in (dotted or {}).items()})
    if isinstance(scenario_or_name, Scenario):
        scenario = scenario_or_name
        if values:
            # Re-validate from the raw table, exactly as a file with these values would be.
            raw = scenario.model_dump(by_alias=True)
            scenario = validate(apply_overrides(raw, values), f"scenario {scenario.name!r}")
        return scenario
    return load(scenario_or_name, values)
