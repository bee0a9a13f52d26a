"""Cascade amplification: a run against its ``feedback=False`` twin.

The twin sees the same exogenous random numbers (every stream is seeded by name, see
``MarketModel.rng_for``), so any difference between the two runs is feedback: the
permanent price impact of forced sales and loss passing along credit lines.

Ratios are ``with feedback / without feedback`` and are defined everywhere:

* ``0 / 0 = 1``: nothing happened either way, so feedback amplified nothing;
* ``x / 0 = inf`` for ``x > 0``: feedback created losses out of none.

Without any feedback channel (see :func:`feedback_channels`) both runs are identical,
so every ratio is exactly 1.

A plain ratio blows up on a tiny base (x54 on a $0.16M twin), so every comparison also
comes as the **excess** ``with - without`` (in the metric's unit) and the **floored
log-ratio** ``log((with + floor) / (without + floor))`` with :data:`FLOORS` (USD 1M of
losses or liquidations, one point of drawdown): finite always, near 0 where both runs
are small next to the floor, ``log(ratio)`` where both are large. ``floored`` names
the metrics whose twin was below its floor, so a report can say where the floor decided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from liqnet.core.levers import DEFAULT_LEVERS

if TYPE_CHECKING:
    from liqnet.core.result import Runner, RunResult
    from liqnet.core.schema import Scenario

__all__ = [
    "FLOORS",
    "METRICS",
    "Amplification",
    "amplification_from_results",
    "feedback_channels",
    "floored_log_ratio",
    "ratio",
    "twin_amplification",
]

METRICS: dict[str, str] = {
    "bad_debt": "bad_debt_usd",
    "liquidated": "liquidated_usd",
    "drawdown": "max_drawdown",
}
"""Amplification metric -> the ``RunResult.summary`` key it compares."""


FLOORS: dict[str, float] = {"bad_debt": 1e6, "liquidated": 1e6, "drawdown": 0.01}
"""Floor of each metric in the floored log-ratio (USD; drawdown as a fraction)."""


def floored_log_ratio(with_feedback: float, without_feedback: float, floor: float) -> float:
    """``log((with + floor) / (without + floor))``: finite for any values >= 0."""
    a, b = float(with_feedback), float(without_feedback)
    if not (a >= 0.0 and b >= 0.0 and floor > 0.0):
        raise ValueError(f"floored log-ratio needs values >= 0 and floor > 0: {a}, {b}, {floor}")
    return math.log((a + floor) / (b + floor))


def ratio(with_feedback: float, without_feedback: float) -> float:
    """``with / without``, with ``0 / 0 = 1`` and ``x / 0 = inf`` (see the module doc).

    Raises:
        ValueError: Either value is negative or NaN (the metrics are all >= 0).
    """
    a, b = float(with_feedback), float(without_feedback)
    if not (a >= 0.0 and b >= 0.0):  # also catches NaN
        raise ValueError(f"amplification needs values >= 0, got {a} / {b}")
    if b == 0.0:
        return 1.0 if a == 0.0 else math.inf
    return a / b


@dataclass(frozen=True)
class Amplification:
    """Feedback / no-feedback ratios of one scenario and seed.

    Attributes:
        bad_debt: Ratio of ``bad_debt_usd`` (realised plus unrealised).
        liquidated: Ratio of ``liquidated_usd`` (debt repaid by liquidators).
        drawdown: Ratio of ``max_drawdown`` (largest peak-to-trough fall of a reference
            price).
        with_feedback: The three metrics of the feedback run, by metric name.
        without_feedback: The same for the twin.
        channels: Feedback channels open in the scenario (:func:`feedback_channels`).
    """

    bad_debt: float
    liquidated: float
    drawdown: float
    with_feedback: dict[str, float]
    without_feedback: dict[str, float]
    channels: tuple[str, ...]

    @property
    def excess(self) -> dict[str, float]:
        """``with - without`` per metric (USD; drawdown as a fraction)."""
        return {m: self.with_feedback[m] - self.without_feedback[m] for m in METRICS}

    @property
    def log_ratio(self) -> dict[str, float]:
        """The floored log-ratio per metric (:func:`floored_log_ratio`, :data:`FLOORS`)."""
        return {
            m: floored_log_ratio(self.with_feedback[m], self.without_feedback[m], FLOORS[m])
            for m in METRICS
        }

    @property
    def floored(self) -> tuple[str, ...]:
        """Metrics whose twin value is below its floor (the floor shapes their log-ratio)."""
        return tuple(m for m in METRICS if self.without_feedback[m] < FLOORS[m])

    def as_row(self) -> dict[str, float]:
        """Sweep-table columns: ``amplification_<m>`` (ratio), ``excess_<m>`` and
        ``log_amplification_<m>`` (floored) for ``bad_debt``, ``liquidated``, ``drawdown``."""
        row = {f"amplification_{m}": getattr(self, m) for m in METRICS}
        row.update({f"excess_{m}": v for m, v in self.excess.items()})
        row.update({f"log_amplification_{m}": v for m, v in self.log_ratio.items()})
        return row

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form (for JSON), with the excess, floored log-ratios and floors."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        data.update(excess=self.excess, log_ratio=self.log_ratio, floors=dict(FLOORS))
        data["floored"] = list(self.floored)
        return data


def feedback_channels(scenario: Scenario) -> tuple[str, ...]:
    """The feedback channels a scenario leaves open; empty means the twin is identical.

    ``feedback=False`` changes exactly two things in the world (market/cascade.py and
    market/settlement.py), so these are the channels:

    * ``"price_impact"``: ``market.permanent_impact > 0`` and ``market.impact_y > 0``:
      forced sales move the reference price by the square-root law (with either 0 the
      impact term adds exactly 0.0 to the log price).
    * ``"credit"``: a credit line can open, so defaults can pass losses to lenders.
      Lines need negotiation enabled, a protocol offering (``lend`` lever above -1: the
      treasury rule at 0 lends) and another requesting (``borrow`` above -1); a protocol
      whose ``policy`` is not ``"static"`` may set any lever, so it counts as both.

    Args:
        scenario: A validated scenario.

    Returns:
        The open channels, a subset of ``("price_impact", "credit")``.
    """
    channels = []
    if scenario.market.permanent_impact > 0.0 and scenario.market.impact_y > 0.0:
        channels.append("price_impact")
    if not scenario.negotiation.enabled:
        return tuple(channels)
    lenders, borrowers = set(), set()
    for spec in scenario.protocols:
        dynamic = spec.policy != "static"
        if dynamic or spec.levers.get("lend", DEFAULT_LEVERS["lend"]) > -1.0:
            lenders.add(spec.id)
        if dynamic or spec.levers.get("borrow", DEFAULT_LEVERS["borrow"]) > -1.0:
            borrowers.add(spec.id)
    # A line needs two different protocols: one lending, another borrowing.
    if any(lender != borrower for lender in lenders for borrower in borrowers):
        channels.append("credit")
    return tuple(channels)


def amplification_from_results(with_feedback: RunResult, without: RunResult) -> Amplification:
    """Amplification from a run and its already-computed ``feedback=False`` twin.

    Raises:
        ValueError: The runs are not twins (different scenario name, seed or steps) or
            ``without`` has feedback on.
    """
    if without.feedback:
        raise ValueError("the counterfactual twin must have feedback=False")
    a, b = with_feedback, without
    if (a.scenario.name, a.seed, a.summary.get("steps")) != (
        b.scenario.name,
        b.seed,
        b.summary.get("steps"),
    ):
        raise ValueError("runs are not twins: scenario name, seed and steps must match")
    on = {m: float(a.summary[key]) for m, key in METRICS.items()}
    off = {m: float(b.summary[key]) for m, key in METRICS.items()}
    return Amplification(
        **{m: ratio(on[m], off[m]) for m in METRICS},
        with_feedback=on,
        without_feedback=off,
        channels=feedback_channels(a.scenario),
    )


def twin_amplification(result: RunResult, runner: Runner) -> Amplification:
    """Amplification of ``result``, whichever twin it is: ``runner`` runs the other one.

    Analysis drives no simulation itself; the caller passes the runner
    (``liqnet.scenarios.run``), so this layer stays below the scenarios layer.
    """
    steps = int(result.summary.get("steps", result.scenario.steps))
    if result.feedback:
        twin = runner(result.scenario, seed=result.seed, feedback=False, steps=steps)
        return amplification_from_results(result, twin)
    feedback = runner(result.scenario, seed=result.seed, feedback=True, steps=steps)
    return amplification_from_results(feedback, result)
