"""Distributions of a position attribute across a book: lognormal, quantiles, histogram.

A scenario gives the shape of a book's opening health factors (lending) or leverage
(perp) as a table with ``kind``:

- ``{kind = "lognormal", median = 1.6, dispersion = 0.6}``: the value above a floor set
  by the protocol (1 for health factors, 0 for leverage) is lognormal, with this median
  of the value and this sigma of the log;
- ``{kind = "quantiles", points = [[0, 1.05], [0.5, 1.6], [1, 6]]}``: ``[p, value]``
  pairs of the inverse CDF, p strictly increasing from exactly 0 (the smallest value) to
  exactly 1 (the largest), values non-decreasing; draws interpolate linearly between
  the points and never go beyond the first or last value;
- ``{kind = "histogram", edges = [1, 1.2, 2, 5], weights = [3, 5, 2]}``: bin edges
  strictly increasing, one more edge than weights, weights >= 0 and not all 0
  (normalised); draws are uniform within a bin.

Every kind draws ``n`` values in one vectorised call on the protocol's generator (one
uniform per draw for quantiles and histograms). The protocol checks the range its
attribute allows with :func:`check_range`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import pydantic
from pydantic import Field

from liqnet.core.schema import MAX_MULTIPLIER, StrictModel

MAX_POINTS = 10_000
"""Most quantile points or histogram bins in one distribution."""

_Value = Annotated[float, Field(ge=-MAX_MULTIPLIER, le=MAX_MULTIPLIER)]


class Lognormal(StrictModel):
    """``value - floor`` is lognormal: median ``median - floor``, sigma of the log
    ``dispersion`` (the floor is the protocol's: 1 for health factors, 0 for leverage)."""

    kind: Literal["lognormal"] = "lognormal"
    median: float = Field(gt=0.0, le=MAX_MULTIPLIER, description="median of the value")
    dispersion: float = Field(ge=0.0, le=3.0, description="standard deviation of the log")

    def sample(self, rng: np.random.Generator, n: int, floor: float = 0.0) -> np.ndarray:
        """``n`` draws from ``rng``."""
        if floor == 0.0:
            # median * exp(sigma z): the perpetual exchange's leverage draw since its
            # first version, kept so that default worlds are bit-identical (the general
            # form below differs from it only in the last bits).
            return self.median * rng.lognormal(0.0, self.dispersion, n)
        return floor + rng.lognormal(math.log(self.median - floor), self.dispersion, n)

    def lowest(self) -> float:
        """The median: :func:`check_range` holds it inside the attribute's range."""
        return self.median

    def highest(self) -> float:
        """The median (the tails are unbounded)."""
        return self.median


class Quantiles(StrictModel):
    """Inverse CDF given at points ``[p, value]``, linear in between (see module doc)."""

    kind: Literal["quantiles"]
    points: list[Annotated[list[_Value], Field(min_length=2, max_length=2)]] = Field(
        min_length=2,
        max_length=MAX_POINTS,
        description="[p, value] pairs: p from 0 to 1 strictly increasing, values non-decreasing",
    )

    @pydantic.field_validator("points")
    @classmethod
    def _inverse_cdf(cls, points: list[list[float]]) -> list[list[float]]:
        p = [row[0] for row in points]
        values = [row[1] for row in points]
        if p[0] != 0.0 or p[-1] != 1.0:
            raise ValueError(
                f"the first point must have p = 0 and the last p = 1 (got {p[0]} and "
                f"{p[-1]}): they are the smallest and largest value, draws never go beyond"
            )
        for i in range(1, len(points)):
            if not p[i] > p[i - 1]:
                raise ValueError(
                    f"p must increase strictly: points[{i}] has p = {p[i]} after {p[i - 1]}"
                )
            if values[i] < values[i - 1]:
                raise ValueError(
                    f"values must not decrease: points[{i}] has value {values[i]} after "
                    f"{values[i - 1]}"
                )
        return points

    def sample(self, rng: np.random.Generator, n: int, floor: float = 0.0) -> np.ndarray:
        """``n`` draws from ``rng`` by inverse CDF (``floor`` is unused)."""
        table = np.asarray(self.points, dtype=np.float64)
        return np.interp(rng.random(n), table[:, 0], table[:, 1])

    def lowest(self) -> float:
        """The smallest value a draw can take (the value at p = 0)."""
        return self.points[0][1]

    def highest(self) -> float:
        """The largest value a draw can take (the value at p = 1)."""
        return self.points[-1][1]


class Histogram(StrictModel):
    """Bins ``edges[i] .. edges[i + 1]`` with relative ``weights[i]``, uniform inside."""

    kind: Literal["histogram"]
    edges: list[_Value] = Field(
        min_length=2, max_length=MAX_POINTS + 1, description="bin edges, strictly increasing"
    )
    weights: list[Annotated[float, Field(ge=0.0, le=1e300)]] = Field(
        min_length=1, max_length=MAX_POINTS, description="relative bin weights, >= 0"
    )

    @pydantic.field_validator("edges")
    @classmethod
    def _increasing(cls, edges: list[float]) -> list[float]:
        for i in range(1, len(edges)):
            if not edges[i] > edges[i - 1]:
                raise ValueError(
                    f"edges must increase strictly: edges[{i}] = {edges[i]} after {edges[i - 1]}"
                )
        return edges

    @pydantic.model_validator(mode="after")
    def _bins(self) -> Histogram:
        if len(self.edges) != len(self.weights) + 1:
            raise ValueError(
                f"edges must have one more entry than weights (the bins' two ends): "
                f"got {len(self.edges)} edges and {len(self.weights)} weights"
            )
        if not sum(self.weights) > 0.0:
            raise ValueError("weights must not all be 0 (they are normalised to sum to 1)")
        return self

    def sample(self, rng: np.random.Generator, n: int, floor: float = 0.0) -> np.ndarray:
        """``n`` draws from ``rng``: a bin by weight, then uniform in it (``floor`` unused).

        One uniform per draw, through the histogram's piecewise-linear inverse CDF; bins
        of weight 0 are left out, so no draw lands in one.
        """
        weights = np.asarray(self.weights, dtype=np.float64)
        edges = np.asarray(self.edges, dtype=np.float64)
        used = weights > 0.0
        low, high, weights = edges[:-1][used], edges[1:][used], weights[used]
        cumulative = np.concatenate(([0.0], np.cumsum(weights)))
        x = rng.random(n) * cumulative[-1]
        bins = np.minimum(np.searchsorted(cumulative, x, side="right") - 1, weights.size - 1)
        within = np.minimum((x - cumulative[bins]) / weights[bins], 1.0)
        return low[bins] + within * (high[bins] - low[bins])

    def lowest(self) -> float:
        """The first edge."""
        return self.edges[0]

    def highest(self) -> float:
        """The last edge."""
        return self.edges[-1]


AnyDistribution = Lognormal | Quantiles | Histogram
"""Any of the distribution kinds."""

KINDS = ("lognormal", "quantiles", "histogram")
"""The values of a distribution table's ``kind``."""


def _known_kind(data: object) -> object:
    # Before the tagged union: its own errors for a missing or unknown tag do not all
    # list the kinds allowed.
    if isinstance(data, dict) and data.get("kind") not in KINDS:
        got = f"kind = {data['kind']!r}" if "kind" in data else "kind is missing"
        raise ValueError(f"{got}: must be one of {', '.join(map(repr, KINDS))}")
    return data


Distribution = Annotated[
    AnyDistribution, Field(discriminator="kind"), pydantic.BeforeValidator(_known_kind)
]
"""A distribution table of a scenario: ``kind`` is "lognormal", "quantiles" or "histogram"."""


def check_range(
    dist: AnyDistribution,
    low: float,
    high: float,
    floor: float,
    why: str,
) -> None:
    """Every value a draw can take lies in ``[low, high]``; a lognormal's median does,
    and lies above ``floor`` (its tails are the protocol's to clip). ``why`` says why
    the range is what it is; the error names the field's part at fault."""
    if isinstance(dist, Lognormal):
        if not (dist.median > floor and low <= dist.median <= high):
            allowed = f"({floor}, {high}]" if floor >= low else f"[{low}, {high}]"
            raise ValueError(f"median = {dist.median}: must lie in {allowed} ({why})")
        return
    where = "points" if isinstance(dist, Quantiles) else "edges"
    if dist.lowest() < low:
        raise ValueError(f"{where}[0]: value {dist.lowest()} is below {low} ({why})")
    if dist.highest() > high:
        raise ValueError(f"{where}[-1]: value {dist.highest()} is above {high} ({why})")
