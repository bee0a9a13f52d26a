"""Distributions of a book's attribute: sampled shapes, the default draw, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydantic
import pytest
from scipy import stats

from liqnet.protocols.distributions import Distribution, Histogram, Lognormal, Quantiles

ADAPTER: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Distribution)
POINTS = [[0, 1.02], [0.1, 1.1], [0.25, 1.3], [0.5, 1.6], [0.75, 2.2], [0.9, 3.5], [1, 8.0]]


def test_quantile_draws_match_the_given_quantiles() -> None:
    dist = Quantiles(kind="quantiles", points=POINTS)
    draws = dist.sample(np.random.default_rng(7), 200_000)
    assert draws.min() >= 1.02 and draws.max() <= 8.0
    for p, value in POINTS[1:-1]:
        assert np.quantile(draws, p) == pytest.approx(value, rel=0.01)


def test_histogram_bin_shares_match_the_weights() -> None:
    edges, weights = [1.0, 1.2, 1.5, 2.0, 3.0, 6.0], [3.0, 5.0, 0.0, 2.0, 1.0]
    dist = Histogram(kind="histogram", edges=edges, weights=weights)
    draws = dist.sample(np.random.default_rng(11), 200_000)
    counts, _ = np.histogram(draws, bins=edges)
    assert counts[2] == 0  # a bin of weight 0 gets no draws
    used = np.array(weights) > 0
    expected = draws.size * np.array(weights)[used] / sum(weights)
    chi2 = float((((counts[used] - expected) ** 2) / expected).sum())
    assert chi2 < stats.chi2.ppf(0.999, used.sum() - 1)
    inside = draws[(draws >= 3.0) & (draws < 6.0)]  # uniform within a bin
    assert inside.mean() == pytest.approx(4.5, rel=0.01)


def test_lognormal_draws_the_old_formulas_bit_for_bit() -> None:
    dist = Lognormal(median=1.6, dispersion=0.6)
    got = dist.sample(np.random.default_rng(3), 1000, floor=1.0)
    want = 1.0 + np.random.default_rng(3).lognormal(math.log(1.6 - 1.0), 0.6, 1000)
    assert np.array_equal(got, want)
    got = Lognormal(median=5.0, dispersion=0.5).sample(np.random.default_rng(3), 1000)
    assert np.array_equal(got, 5.0 * np.random.default_rng(3).lognormal(0.0, 0.5, 1000))


@pytest.mark.parametrize(
    "table",
    [
        {"kind": "quantiles", "points": POINTS},
        {"kind": "histogram", "edges": [1, 2, 4], "weights": [1, 3]},
        {"kind": "lognormal", "median": 2.0, "dispersion": 0.3},
    ],
)
def test_draws_are_deterministic_per_seed(table: dict[str, Any]) -> None:
    dist = ADAPTER.validate_python(table)
    first = dist.sample(np.random.default_rng(5), 500, floor=1.0)
    assert np.array_equal(first, dist.sample(np.random.default_rng(5), 500, floor=1.0))
    assert not np.array_equal(first, dist.sample(np.random.default_rng(6), 500, floor=1.0))


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ({"kind": "gamma"}, ["kind = 'gamma'", "'lognormal', 'quantiles', 'histogram'"]),
        ({"points": POINTS}, ["kind is missing", "'quantiles'"]),
        (
            {"kind": "quantiles", "points": [[0, 1.1], [0.5, 1.5], [0.4, 2], [1, 3]]},
            ["points", "p must increase strictly", "points[2]"],
        ),
        ({"kind": "quantiles", "points": [[0.1, 1.1], [1, 3]]}, ["p = 0", "p = 1"]),
        ({"kind": "quantiles", "points": [[0, 1.2], [1, 1.1]]}, ["values must not decrease"]),
        ({"kind": "quantiles", "points": [[0, 1.1, 2], [1, 3]]}, ["points.0", "at most 2"]),
        ({"kind": "quantiles", "points": [[0, True], [1, 3]]}, ["points.0.1", "valid number"]),
        ({"kind": "histogram", "edges": [1, 2, 3], "weights": [1, -1]}, ["weights.1", ">= 0"]),
        ({"kind": "histogram", "edges": [1, 3, 2], "weights": [1, 1]}, ["edges must increase"]),
        ({"kind": "histogram", "edges": [1, 2], "weights": [1, 1]}, ["one more entry"]),
        ({"kind": "histogram", "edges": [1, 2, 3], "weights": [0, 0]}, ["not all be 0"]),
    ],
)
def test_bad_tables_name_the_fault(table: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        ADAPTER.validate_python(table)
    text = str(err.value).replace("greater than or equal to 0", ">= 0")
    for fragment in fragments:
        assert fragment in text, text
