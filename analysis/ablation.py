"""Paired on/off effects: what switching one mechanism off changes, seed by seed.

A sweep whose grid has a two-valued switch (``negotiation.enabled = [true, false]`` in the
built-in ``negotiation_value`` sweep) runs every other point on the same seeds with the
switch on and off, so each seed gives one paired difference; the effect is their mean
with a Student-t confidence interval (``scipy.stats``) and a paired t-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from liqnet.analysis.htmlpage import section, write_table

__all__ = ["PAIRED_OUTCOMES", "paired_effects", "paired_sections", "switches"]

PAIRED_OUTCOMES: dict[str, str] = {
    "liquidity_shortfall_usd": "unmet withdrawals (USD, summed over steps)",
    "defaults": "protocols in default",
    "credit_losses_total_usd": "credit losses of lenders (USD)",
    "haircut_total_usd": "depositors' and LPs' haircuts (USD)",
    "bad_debt_usd": "bad debt (USD)",
    "credit_debtrank": "DebtRank of the credit network at its peak",
    "credit_opened_usd": "credit opened (USD)",
}
"""Outcomes compared (sweep-table column -> what it measures)."""


def switches(table: pd.DataFrame, params: Sequence[str]) -> list[str]:
    """The varied parameters that take exactly the values True and False."""
    found = []
    for param in params:
        values = set(table[param].dropna().tolist())
        if values == {True, False}:
            found.append(param)
    return found


def paired_effects(
    table: pd.DataFrame,
    switch: str,
    by: Sequence[str] = (),
    within: Sequence[str] = (),
    outcomes: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean over seeds of each outcome with ``switch`` on and off, and of the difference.

    Runs are paired by seed and by the values of ``by`` and ``within`` (the sweep's other
    varied parameters); each pair gives ``on - off``. A seed's differences are averaged
    over the ``within`` points, so the interval is over seeds (the independent draws),
    one result row per point of ``by`` and outcome. Pairs with a run missing (failed)
    are left out.

    Args:
        table: A sweep table (one row per run, ``seed`` and ``switch`` columns).
        switch: The two-valued column (True = mechanism on).
        by: Varied columns to report separately.
        within: Varied columns to pair on and average over.
        outcomes: Columns to compare (default: those of :data:`PAIRED_OUTCOMES` present).
        confidence: Level of the interval of the mean difference.

    Returns:
        Columns ``[*by], outcome, seeds, on, off, difference, ci_low, ci_high,
        p_value``; the interval is NaN with fewer than two seeds, and equals the
        difference when every seed differs by the same amount (then ``p_value`` is NaN).

    Raises:
        ValueError: ``switch`` is not a column with the values True and False, or
            ``confidence`` is not in (0, 1).
    """
    if switch not in table or set(table[switch].dropna().tolist()) != {True, False}:
        raise ValueError(f"{switch!r} must be a column with the values True and False")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    chosen = [c for c in (outcomes or PAIRED_OUTCOMES) if c in table]
    keys = [*by, *within, "seed"]
    flag = table[switch].astype(bool)
    on = table[flag].groupby(keys)[chosen].mean().astype(float)
    off = table[~flag].groupby(keys)[chosen].mean().astype(float)
    on, off = on.align(off, join="inner")
    per_seed = [*by, "seed"]
    on, off = on.groupby(level=per_seed).mean(), off.groupby(level=per_seed).mean()
    rows = []
    groups = on.groupby(level=list(by)) if by else [((), on)]
    for point, on_part in groups:
        off_part = off.loc[on_part.index]
        point = point if isinstance(point, tuple) else (point,)
        for column in chosen:
            a, b = on_part[column].to_numpy(), off_part[column].to_numpy()
            ok = np.isfinite(a) & np.isfinite(b)
            rows.append((*point, column, *_effect(a[ok], b[ok], confidence)))
    columns = [*by, "outcome", "seeds", "on", "off", "difference", "ci_low", "ci_high", "p_value"]
    return pd.DataFrame(rows, columns=columns)


def _effect(on: np.ndarray, off: np.ndarray, confidence: float) -> tuple:
    pairs = len(on)  # seeds
    if pairs == 0:
        return (0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = on - off
    mean = float(diff.mean())
    low = high = p = math.nan
    if pairs >= 2:
        spread = float(diff.std(ddof=1))
        if spread > 0.0:
            half = float(stats.t.ppf(0.5 + confidence / 2.0, pairs - 1)) * spread / math.sqrt(pairs)
            low, high = mean - half, mean + half
            p = float(stats.ttest_rel(on, off).pvalue)
        else:
            low = high = mean
    return (pairs, float(on.mean()), float(off.mean()), mean, low, high, p)


def paired_sections(table: pd.DataFrame, params: Sequence[str], tables: Path) -> list[str]:
    """Sweep-report sections: the paired effect of every True/False varied parameter.

    One table per switch, by the other varied parameters and over all of them, written
    to ``tables/paired_<k>.csv`` as well.
    """
    sections = []
    for k, switch in enumerate(switches(table, params)):
        others = [p for p in params if p != switch and table[p].nunique() > 1]
        overall = paired_effects(table, switch, within=others)
        parts = [_shown(overall)]
        if others:
            detail = paired_effects(table, switch, by=others)
            write_table(detail, tables, f"paired_{k}_by_point")
            parts.append(_shown(detail))
        write_table(overall, tables, f"paired_{k}")
        sections.append(
            section(
                f"Paired effect of {switch} (on - off)",
                None,
                f"Each seed runs with `{switch}` true and false at every other point; the "
                "difference is on - off, averaged per seed over the points, then its mean "
                "over seeds with a 95% Student-t interval and a paired t-test "
                "(scipy.stats). First over every point, then by "
                f"{', '.join(others) or 'nothing else'}. "
                f"(tables: tables/paired_{k}.csv"
                + (f", tables/paired_{k}_by_point.csv)" if others else ")"),
                parts,
            )
        )
    return sections


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as a reader reads it: outcomes named, values rounded."""
    shown = frame.assign(outcome=frame["outcome"].map(lambda c: PAIRED_OUTCOMES.get(c, c)))
    numbers = ["on", "off", "difference", "ci_low", "ci_high"]
    return shown.assign(**{c: shown[c].map(_round) for c in numbers})


def _round(value: float) -> float:
    """Four significant digits (USD in the millions and DebtRank in [0, 1] alike)."""
    return float(f"{value:.4g}") if math.isfinite(value) else value
