"""Opening books from a health-factor (and leverage) distribution, through the loader."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from liqnet.market import MarketModel
from liqnet.protocols.lending import LendingPool
from liqnet.protocols.perp import PerpExchange
from tests.helpers.scenario_files import scenario_error
from tests.helpers.worlds import Small

HF = "protocols.aave.params.health_factor_distribution"
QUANTILES = {"kind": "quantiles", "points": [[0, 1.1], [0.25, 1.3], [0.5, 1.6], [1, 4.0]]}


def opening_health(pool: LendingPool, asset: str = "ETH") -> np.ndarray:
    """Health factors of the book's open positions at the oracle price."""
    book = pool.books[asset]
    slots = book.positions.active_slots()
    c, d = book.positions["collateral"][slots], book.positions["scaled_debt"][slots]
    return c * pool.world.oracle_prices[asset] * book.liquidation_threshold / d


def test_default_book_is_the_old_lognormal_draw(small: Small) -> None:
    """No table: the seeded book is exactly what the old formula drew."""
    model = MarketModel(small())
    pool = model.protocols["aave"]
    p, book = pool.params, pool.books["ETH"]
    rng = model.rng_for("protocol:aave:init")
    n = book.positions.count
    weights = rng.lognormal(0.0, p.position_size_dispersion, n)
    share = p.collateral["ETH"].share / sum(c.share for c in p.collateral.values())
    debt = p.deposits_usd * p.utilization * share * weights / weights.sum()  # ETH first
    excess = rng.lognormal(math.log(p.health_factor_median - 1.0), p.health_factor_dispersion, n)
    health = np.maximum(1.0 + excess, book.liquidation_threshold / book.ltv)
    collateral = debt * health / (book.liquidation_threshold * model.oracle_prices["ETH"])
    assert np.array_equal(book.positions["collateral"][:n], collateral)
    assert np.array_equal(book.positions["scaled_debt"][:n], debt)


def test_quantile_book_builds_matches_and_runs(small: Small) -> None:
    scenario = small(positions=20_000, **{HF.replace(".", "__"): QUANTILES})
    model = MarketModel(scenario)
    health = opening_health(model.protocols["aave"])
    assert health.min() >= 1.1 - 1e-9 and health.max() <= 4.0 + 1e-9
    assert np.quantile(health, 0.25) == pytest.approx(1.3, rel=0.02)
    assert np.quantile(health, 0.5) == pytest.approx(1.6, rel=0.02)
    for _ in range(5):  # the autouse fixture checks conservation phase by phase
        model.step()
    again = MarketModel(scenario)
    for _ in range(5):
        again.step()
    assert [p.equity() for p in again.protocols.values()] == [
        p.equity() for p in model.protocols.values()
    ]


def test_a_table_replaces_median_and_dispersion(small: Small) -> None:
    table = {HF.replace(".", "__"): QUANTILES}
    first = MarketModel(small(**table)).protocols["aave"].books["ETH"]
    other = small(**table, protocols__aave__params__health_factor_median=3.0)
    second = MarketModel(other).protocols["aave"].books["ETH"]
    assert np.array_equal(first.positions["collateral"], second.positions["collateral"])


def test_low_health_factors_are_raised_to_lt_over_ltv(small: Small) -> None:
    table = {"kind": "histogram", "edges": [1.0, 1.02, 2.0], "weights": [1.0, 1.0]}
    model = MarketModel(small(**{HF.replace(".", "__"): table}))
    pool = model.protocols["aave"]
    book = pool.books["ETH"]
    health = opening_health(pool)
    floor = book.liquidation_threshold / book.ltv
    assert health.min() == pytest.approx(floor)
    assert np.mean(np.isclose(health, floor)) > 0.3  # the whole first bin


def test_comet_and_perp_books_take_tables(small: Small) -> None:
    model = MarketModel(
        small(
            protocols__compound__params__health_factor_distribution=QUANTILES,
            protocols__dydx__params__leverage_distribution={
                "kind": "histogram",
                "edges": [2.0, 3.0, 10.0],
                "weights": [1.0, 0.0],
            },
        )
    )
    assert opening_health(model.protocols["compound"]).min() >= 1.1 - 1e-9
    perp = model.protocols["dydx"]
    assert isinstance(perp, PerpExchange)
    for market in perp.markets.values():
        for side in market.sides.values():
            k = side.positions.size
            leverage = np.abs(side.positions["size"][:k]) * market_price(perp, market.asset)
            leverage /= side.positions["margin"][:k]
            assert leverage.min() >= 2.0 - 1e-9 and leverage.max() <= 3.0 + 1e-9
    for _ in range(3):
        model.step()


def market_price(perp: PerpExchange, asset: str) -> float:
    """The oracle price the book opened at."""
    return perp.world.oracle_prices[asset]


@pytest.mark.parametrize(
    ("key", "table", "fragments"),
    [
        (HF, {"kind": "nope"}, [f"{HF.replace('aave', '0')}:", "'quantiles'", "'histogram'"]),
        (
            HF,
            {"kind": "quantiles", "points": [[0, 0.9], [1, 3]]},
            ["health_factor_distribution: points[0]: value 0.9 is below 1.0", "liquidatable"],
        ),
        (
            HF,
            {"kind": "quantiles", "points": [[0, 1.2], [0.5, 1.1], [1, 3]]},
            ["health_factor_distribution.quantiles.points = ", "must not decrease"],
        ),
        (
            HF,
            {"kind": "histogram", "edges": [1, 2], "weights": [-1]},
            ["health_factor_distribution.histogram.weights.0 = -1"],
        ),
        (
            HF,
            {"kind": "lognormal", "median": 1.0, "dispersion": 0.5},
            ["health_factor_distribution: median = 1.0: must lie in (1.0, 10000.0]"],
        ),
        (
            "protocols.dydx.params.leverage_distribution",
            {"kind": "quantiles", "points": [[0, 2], [1, 500]]},
            ["protocols.2.params.leverage_distribution: points[-1]: value 500"],
        ),
    ],
)
def test_bad_tables_are_scenario_errors(
    key: str, table: dict[str, Any], fragments: list[str]
) -> None:
    message = scenario_error("baseline", {key: table})
    for fragment in fragments:
        assert fragment in message, message
