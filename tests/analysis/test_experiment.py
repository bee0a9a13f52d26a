"""Tests of the convergence experiment's statistics (synthetic data with known effects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liqnet.analysis.experiment import (
    OUTCOMES,
    TRACE,
    bootstrap_ci,
    effect_table,
    generalisation_table,
    level_table,
)


def _runs(slope: float, noise: float, seed: int = 0) -> pd.DataFrame:
    """Synthetic runs: losses = slope x similarity + a crash effect + noise."""
    rng = np.random.default_rng(seed)
    similarity = {"equity/identical": 1.0, "equity/seeds": 0.1, "equity/data": 0.6}
    rows = []
    for level, sim in {**similarity, "static": np.nan, "untrained": 1.0}.items():
        for shock, crash in ((-0.2, 1e6), (-0.4, 5e6)):
            for s in range(20):
                value = slope * (0.0 if np.isnan(sim) else sim) + crash + noise * rng.normal()
                row = {"level": level, "shock": shock, "seed": s, "similarity_behaviour": sim}
                row |= {"similarity_cka": sim, "similarity_structure": float(sim == 1.0)}
                row |= dict.fromkeys((*OUTCOMES, *TRACE), value)
                row["family"] = level.split("/")[0] if "/" in level else "control"
                rows.append(row)
    return pd.DataFrame(rows)


def test_bootstrap_ci_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(10.0, 2.0, 400)
    mean, low, high = bootstrap_ci(values, 2000, rng)
    assert mean == pytest.approx(values.mean())
    # The percentile interval of a mean of 400 draws is about +-1.96 x 2 / sqrt(400).
    assert low < mean < high and (high - low) == pytest.approx(2 * 1.96 * 0.1, rel=0.15)
    assert all(np.isnan(bootstrap_ci(np.array([np.nan]), 10, rng)))


def test_effect_recovers_a_known_slope_at_matched_shocks() -> None:
    effects = effect_table(_runs(slope=2e6, noise=2e5), 500).set_index("outcome")
    losses = effects.loc["losses_usd"]
    assert losses["family"] == "equity"  # controls are not fitted
    assert losses["levels"] == 3 and losses["runs"] == 3 * 2 * 20
    assert losses["slope"] == pytest.approx(2e6, rel=0.05)
    assert losses["ci_lo"] < 2e6 < losses["ci_hi"] and losses["ci_lo"] > 0
    assert losses["reading"].startswith("more alike policies lose more")


def test_no_effect_is_reported_as_such() -> None:
    effects = effect_table(_runs(slope=0.0, noise=2e5), 500).set_index("outcome")
    losses = effects.loc["losses_usd"]
    assert losses["ci_lo"] < 0 < losses["ci_hi"]
    assert losses["reading"] == "no effect either way (CI spans 0)"


def test_level_table_has_cis_and_keeps_undefined_similarity() -> None:
    table = level_table(_runs(slope=1e6, noise=1e5), 300)
    assert len(table) == 5 * 2
    static = table[table["level"] == "static"]
    assert static["similarity_behaviour"].isna().all() and (static["family"] == "control").all()
    row = table.iloc[0]
    assert row["losses_usd_lo"] <= row["losses_usd"] <= row["losses_usd_hi"]


def test_generalisation_table_compares_with_static() -> None:
    table = generalisation_table(level_table(_runs(slope=1e6, noise=1e4), 200))
    assert set(table["level"]) == {"equity/identical", "static", "untrained"}
    static = table[table["level"] == "static"]
    assert np.allclose(static["losses_usd_vs_static_pct"], 0.0)
    identical = table[(table["level"] == "equity/identical") & (table["shock"] == -0.2)].iloc[0]
    # identical: similarity 1, so losses are 1e6 above static's (similarity undefined -> 0).
    assert identical["losses_usd_vs_static_pct"] == pytest.approx(100.0, rel=0.05)
