"""Paired on/off effects over seeds (liqnet.analysis.ablation) and the report section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from liqnet.analysis.ablation import paired_effects, paired_sections, switches
from liqnet.analysis.graphs import peak_credit_debtrank
from liqnet.scenarios import run
from tests.helpers.worlds import Small


def _table() -> pd.DataFrame:
    """Three seeds x two crash depths, on and off; 'on' cuts defaults by 1, 2, 3 per seed
    (the same at both depths) and bad debt by exactly 5 everywhere."""
    rows = []
    for seed, cut in zip((0, 1, 2), (1.0, 2.0, 3.0), strict=True):
        for depth in (-0.1, -0.3):
            base = 10.0 + seed - 10.0 * depth
            rows.append({"seed": seed, "d": depth, "on": True, "defaults": base - cut})
            rows.append({"seed": seed, "d": depth, "on": False, "defaults": base})
    frame = pd.DataFrame(rows)
    return frame.assign(bad_debt_usd=frame["defaults"] * 0 + frame["on"].map({True: 1, False: 6}))


def test_paired_effect_is_the_mean_difference_over_seeds_with_a_t_interval() -> None:
    effects = paired_effects(_table(), "on", within=["d"], outcomes=["defaults", "bad_debt_usd"])
    row = effects.set_index("outcome").loc["defaults"]
    assert row.seeds == 3 and row.difference == pytest.approx(-2.0)
    # Differences -1, -2, -3: standard deviation 1, t(0.975, 2 d.o.f.) = 4.3027.
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert half == pytest.approx(2.4841, abs=1e-4)
    assert (row.ci_low, row.ci_high) == pytest.approx((-2.0 - half, -2.0 + half))
    assert row.p_value == pytest.approx(stats.ttest_1samp([-1.0, -2.0, -3.0], 0.0).pvalue)
    # The same difference in every pair: no spread, the interval is the point.
    same = effects.set_index("outcome").loc["bad_debt_usd"]
    assert (same.difference, same.ci_low, same.ci_high) == (-5.0, -5.0, -5.0)
    assert math.isnan(same.p_value)


def test_paired_effect_by_point_and_missing_pairs() -> None:
    table = _table()
    by_depth = paired_effects(table, "on", by=["d"], outcomes=["defaults"])
    assert by_depth["d"].tolist() == [-0.3, -0.1]
    assert by_depth["difference"].tolist() == pytest.approx([-2.0, -2.0])
    # A failed run (missing row) drops its seed's pair at that point only.
    dropped = table.drop(index=table.query("seed == 2 and d == -0.1 and on").index)
    by_depth = paired_effects(dropped, "on", by=["d"], outcomes=["defaults"]).set_index("d")
    assert by_depth.loc[-0.1, "seeds"] == 2 and by_depth.loc[-0.3, "seeds"] == 3


def test_paired_effect_errors_name_the_problem() -> None:
    table = _table()
    with pytest.raises(ValueError, match="'d' must be a column with the values True and False"):
        paired_effects(table, "d")
    with pytest.raises(ValueError, match="confidence must be in"):
        paired_effects(table, "on", confidence=1.5)
    assert switches(table, ["d", "on"]) == ["on"]


def test_report_sections_for_each_switch(tmp_path: Path) -> None:
    sections = paired_sections(_table(), ["on", "d"], tmp_path)
    assert len(sections) == 1 and "Paired effect of on (on - off)" in sections[0]
    written = pd.read_csv(tmp_path / "paired_0.csv")
    assert written.set_index("outcome").loc["defaults", "difference"] == pytest.approx(-2.0)
    assert (tmp_path / "paired_0_by_point.csv").is_file()
    assert paired_sections(_table(), ["d"], tmp_path) == []


def test_peak_credit_debtrank_is_positive_with_lines_and_zero_without(small: Small) -> None:
    with_lines = run(small("bank_run"))
    assert with_lines.summary["credit_opened_usd"] > 0
    assert 0.0 < peak_credit_debtrank(with_lines) <= 1.0
    assert peak_credit_debtrank(run(small("bank_run", negotiation__enabled=False))) == 0.0
