"""Malformed actions and seeds are one ValueError (:mod:`liqnet.market.actions`).

Regression tests of issue 19: ``step(None | list | ndarray | str)`` raised TypeError or
IndexError instead of the documented ValueError, and ``reset(seed=-1)`` a raw NumPy error.
"""

from __future__ import annotations

import numpy as np
import pytest

from liqnet.market.actions import check_actions
from liqnet.scenarios.envs import make_env

SMALL = {f"protocols.{i}.params.positions": 200 for i in range(3)}


@pytest.fixture(scope="module")
def env():
    """A small baseline env, reset."""
    env = make_env("baseline", horizon=5, overrides=SMALL)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("actions", [None, [], np.zeros((3, 6)), "levers", 5])
def test_actions_that_are_not_a_dict_are_a_value_error(env, actions: object) -> None:
    step_before = env.model.step_index
    with pytest.raises(ValueError, match="actions: expected a dict of agent -> a finite array"):
        env.step(actions)
    assert env.model.step_index == step_before  # nothing applied


@pytest.mark.parametrize(
    ("action", "detail"),
    [("x" * 10_000, "characters"), (np.zeros(5), "shape (5,)"), ([np.nan] * 6, "non-finite")],
)
def test_a_bad_action_names_the_agent_and_stays_short(action: object, detail: str) -> None:
    with pytest.raises(ValueError, match="action for agent 'aave'") as info:
        check_actions({"aave": action, "dydx": np.zeros(6)}, ["aave", "dydx"])
    assert detail in str(info.value) and len(str(info.value)) < 400


def test_an_unknown_agent_is_named() -> None:
    with pytest.raises(ValueError, match=r"'ghost'.*not a live agent"):
        check_actions({"ghost": np.zeros(6)}, ["aave"])


def test_valid_actions_are_clipped() -> None:
    out = check_actions({"aave": np.full(6, 3.0)}, ["aave"])
    assert np.array_equal(out["aave"], np.ones(6))


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, "7", True])
def test_bad_seeds_are_a_value_error(seed: object) -> None:
    env = make_env("baseline", horizon=3, overrides=SMALL)
    with pytest.raises(ValueError, match=r"seed = .*: expected an integer in \[0, 2\*\*63\)"):
        env.reset(seed=seed)  # type: ignore[arg-type]
    env.reset(seed=2**63 - 1)  # the largest allowed seed works
