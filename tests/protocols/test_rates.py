"""Kinked rate model: golden values from Aave v3 and Compound governance parameters."""

import numpy as np
import pytest

from liqnet.protocols.rates import KinkedRateModel

# Aave WETH, April 2026 rate update (REFERENCE_PARAMETERS.md).
AAVE_WETH = KinkedRateModel(base=0.0, slope1=0.0235, slope2=0.06, optimal_utilization=0.92)


def test_aave_weth_rate_at_88_5_percent_is_2_26_percent() -> None:
    assert AAVE_WETH.borrow_rate(0.885) == pytest.approx(0.0235 * 0.885 / 0.92, rel=1e-12)
    assert round(AAVE_WETH.borrow_rate(0.885), 4) == 0.0226


def test_rate_above_kink_uses_second_slope() -> None:
    # 0.0235 + 0.06 * (0.96 - 0.92) / 0.08 = 0.0535
    assert AAVE_WETH.borrow_rate(0.96) == pytest.approx(0.0535, rel=1e-12)
    assert AAVE_WETH.borrow_rate(1.0) == pytest.approx(0.0835, rel=1e-12)
    assert AAVE_WETH.borrow_rate(0.92) == pytest.approx(0.0235, rel=1e-12)


def test_compound_v2_stablecoin_curve() -> None:
    model = KinkedRateModel(base=0.0, slope1=0.04, slope2=0.21, optimal_utilization=0.8)
    assert model.borrow_rate(0.8) == pytest.approx(0.04)
    assert model.borrow_rate(1.0) == pytest.approx(0.25)
    assert model.borrow_rate(0.4) == pytest.approx(0.02)


def test_supply_rate_is_borrow_rate_times_utilisation_net_of_reserve_factor() -> None:
    u = 0.885
    assert AAVE_WETH.supply_rate(u, 0.15) == pytest.approx(
        AAVE_WETH.borrow_rate(u) * u * 0.85, rel=1e-12
    )


def test_vectorised_matches_scalar_and_clips() -> None:
    u = np.array([-0.5, 0.0, 0.3, 0.92, 0.95, 1.0, 2.0])
    rates = AAVE_WETH.borrow_rate(u)
    assert rates == pytest.approx([AAVE_WETH.borrow_rate(float(x)) for x in u], rel=1e-12)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.0835)
    assert np.all(np.diff(rates) >= 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"optimal_utilization": 1.0}, "optimal_utilization"),
        ({"optimal_utilization": 0.0}, "optimal_utilization"),
        ({"slope1": -0.01}, "slope1"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict, field: str) -> None:
    params = {"base": 0.0, "slope1": 0.04, "slope2": 0.2, "optimal_utilization": 0.8} | kwargs
    with pytest.raises(ValueError, match=field):
        KinkedRateModel(**params)
