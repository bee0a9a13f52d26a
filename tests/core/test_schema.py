"""Physical bounds and strict types of the scenario schema (issue 19: bad input never
breaks the world). Each case is a value the issue's input attack or our fuzz suite
(tests/scenarios/test_fuzz.py) found accepted: it must now be one error naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from liqnet.core.schema import check_bounds
from liqnet.scenarios import load
from tests.helpers.scenario_files import scenario_error

TINY = 5e-324  # the smallest float: divisions by it overflow


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        # Lax coercion: a string is not a number, nor "yes" a boolean.
        ("steps", "3", "steps"),
        ("feedback", "yes", "feedback"),
        ("seed", "1", "seed"),
        ("market.assets.ETH.pool_usd", "1e8", "market.assets.ETH.pool_usd"),
        ("protocols.0.params.deposits_usd", "2e8", "deposits_usd"),
        ("protocols.2.params.markets.ETH.maintenance_margin", "0.03", "maintenance_margin"),
    ],
)
def test_strings_are_not_read_as_numbers_or_booleans(key: str, value: Any, named: str) -> None:
    message = scenario_error("baseline", {key: value})
    assert named in message and "valid" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("market.assets.ETH.price", TINY),  # -inf + inf in fsum
        ("market.assets.ETH.price", 1e9),
        ("market.assets.ETH.pool_usd", 1e308),  # math domain error
        ("market.assets.ETH.pool_usd", TINY),  # "reserves must be positive" traceback
        ("market.assets.ETH.pool_usd", 1e3),
        ("market.assets.ETH.cex_depth_2pct_usd", 0.18),  # priced buybacks at 1e16 USD
        ("market.assets.ETH.daily_volume_usd", 1.0),
        ("liquidators.0.capital_usd", 1e308),  # overflowed at step 1
        ("protocols.0.params.deposits_usd", 1e308),  # NaN in summary.json
        ("protocols.2.params.open_interest_usd", 1e14),
        ("protocols.1.params.collateral.ETH.ltv", TINY),  # "amounts must be finite"
        ("protocols.0.params.collateral.ETH.ltv", TINY),
    ],
)
def test_physical_bounds_name_the_field(key: str, value: float) -> None:
    message = scenario_error("baseline", {key: value})
    assert f"{key.split('.')[-1]} = {value!r}: Input should be" in message


def test_regime_multipliers_are_bounded() -> None:
    # 1e308 was a ZeroDivisionError in amm.py.
    message = scenario_error("baseline", {"market.regimes.multipliers": [1.0, 1e308]})
    assert "market.regimes" in message and "multipliers must lie in [0.001, 10000]" in message


def test_gas_spike_lasts_at_most_the_steps_left() -> None:
    # duration 1e9 stored 1e9 schedule entries; 1e15 never returned.
    message = scenario_error("bank_run", {"gas_spikes.0.duration_steps": 10**9})
    assert "gas_spikes[0].duration_steps = 1000000000: must be <= the steps left" in message
    assert load("bank_run", {"gas_spikes.0.duration_steps": 68}).gas_spikes[0].duration_steps == 68


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        # Inverted: a 0.1 risk lever then snapped the threshold 0.83 -> 0.50 in one step.
        (
            "protocols.0.params.liquidation_threshold_bounds",
            [0.9, 0.5],
            "liquidation_threshold_bounds = (0.9, 0.5): must be (low, high) with low <= high",
        ),
        # Not holding the starting threshold (0.83): the first step would snap it.
        (
            "protocols.0.params.liquidation_threshold_bounds",
            [0.5, 0.6],
            "collateral.ETH.liquidation_threshold = 0.83: must lie within",
        ),
        ("protocols.0.params.slope_multiplier_bounds", [3.0, 0.5], "low <= high"),
        ("protocols.0.params.slope_multiplier_bounds", [2.0, 3.0], "starting slope multiplier"),
        ("protocols.2.params.maintenance_margin_bounds", [0.25, 0.005], "low <= high"),
        ("protocols.2.params.maintenance_margin_bounds", [0.0, 2.0], "must lie within"),
        ("protocols.2.params.price_multiplier_bounds", [0.5, 1e6], "must lie within"),
    ],
)
def test_lever_bounds_are_ordered_finite_and_hold_the_start(
    key: str, value: list[float], shown: str
) -> None:
    assert shown in scenario_error("baseline", {key: value})


def test_option_lever_bounds_are_ordered() -> None:
    message = scenario_error(
        "vol_crush", {"protocols.3.params.margin_multiplier_bounds": [3.0, 0.5]}
    )
    # The model-level check is placed at its params table (no dangling "params.:").
    assert (
        "  protocols.3.params: margin_multiplier_bounds = (3.0, 0.5): must be (low, high) "
        "with low <= high" in message
    )


def test_check_bounds_allows_pinned_and_rejects_out_of_range() -> None:
    check_bounds("b", (0.5, 0.5), (0.0, 1.0), {"x": 0.5})  # equal bounds pin a parameter
    with pytest.raises(ValueError, match="must lie within"):
        check_bounds("b", (0.5, 2.0), (0.0, 1.0))


def test_the_builtins_are_inside_every_bound() -> None:
    from liqnet.scenarios import builtin_names

    for name in builtin_names():
        load(name)


@pytest.mark.parametrize(
    "key",
    [
        "protocols.2.params.open_interest_usd",  # fuzz: a divide by zero in perp seeding
        "protocols.2.params.vault_usd",
        "protocols.0.params.deposits_usd",
        "liquidators.0.capital_usd",
        "protocols.2.params.markets.ETH.maintenance_margin",
        "protocols.0.params.rate_model.optimal_utilization",
        "protocols.0.params.churn_interval_hours",
        "protocols.0.params.collateral.ETH.share",
    ],
)
def test_subnormal_sizes_and_divisors_are_refused(key: str) -> None:
    message = scenario_error("baseline", {key: TINY})
    assert f"{key.split('.')[-1]} = 5e-324: Input should be greater than or equal to" in message
