"""Tests of the forecaster: training on tiny data, held-out error, checkpoints, the policy.

One small training run (two 144-step worlds of 100 positions, 6 training seeds, 3
held-out seeds, 200 epochs: a few seconds) is shared by the module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liqnet.agents import (
    CheckpointError,
    ForecastConfig,
    Forecaster,
    ForecastRiskPolicy,
)
from liqnet.scenarios import ScenarioError, run
from liqnet.scenarios.forecast_training import ForecastReport, _samples, train_forecaster
from liqnet.scenarios.policies import record_observations, run_with_policies
from tests.helpers.worlds import Small

TEST_SEEDS = (50, 51, 52)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, small: Small) -> ForecastReport:
    """A forecaster trained on tiny data, saved to a temporary checkpoint directory."""
    worlds = [small("vol_regime", 100, steps=144), small("baseline", 100, steps=144)]
    return train_forecaster(
        worlds,
        seeds=range(6),
        test_seeds=TEST_SEEDS,
        config=ForecastConfig(epochs=200),
        out=tmp_path_factory.mktemp("forecaster") / "ckpt",
        verbose=False,
    )


def test_forecaster_beats_naive_baselines_on_held_out_seeds(trained: ForecastReport) -> None:
    report = trained
    assert report.n_train > 5000 and report.n_test > 2000
    # Volatility: clearly better than persistence of today's realised volatility.
    assert report.vol_rmse_log < 0.95 * report.vol_rmse_log_persistence
    assert report.vol_mae < report.vol_mae_persistence
    # Crashes are rarer and mostly unforecastable jumps: at least tie the base rate.
    assert report.crash_brier < 1.15 * report.crash_brier_base_rate
    assert 0.0 < report.crash_base_rate < 1.0
    assert "persistence" in str(report) and "Brier" in str(report)


def test_checkpoint_round_trip_gives_identical_predictions(
    trained: ForecastReport, small: Small
) -> None:
    directory = trained.checkpoint
    assert {p.name for p in directory.iterdir()} == {"model.pt", "config.json"}
    loaded = Forecaster.load(directory)
    assert Forecaster.load(directory / "model.pt").config == trained.forecaster.config
    features = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    for ours, theirs in zip(
        trained.forecaster.predict(features), loaded.predict(features), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    # Acting: the same forecasts and levers through a whole episode.
    scenario = small("flash_crash", 100)
    traces = []
    for forecaster in (trained.forecaster, loaded):
        policy = ForecastRiskPolicy(forecaster)
        result = run_with_policies(scenario, seed=1, steps=40, policies={"aave": policy})
        traces.append(result.timeseries["aave.lever.risk"].to_numpy())
    np.testing.assert_array_equal(*traces)
    assert traces[0].max() > 0.0  # the crash forecasts tightened risk


def test_forecaster_spec_runs_in_a_scenario(trained: ForecastReport, small: Small) -> None:
    scenario = small("flash_crash", 100, protocols__2__policy=f"forecaster:{trained.checkpoint}")
    result = run(scenario, seed=3, steps=30)
    assert result.timeseries["dydx.lever.risk"].abs().sum() > 0.0
    assert (result.timeseries["aave.lever.risk"] == 0.0).all()


def test_forecaster_features_in_training_match_acting(
    trained: ForecastReport, small: Small
) -> None:
    observations, names, result = record_observations(small("baseline", 100, steps=40), 4)
    forecaster = trained.forecaster
    forecaster.reset(names, 1.0)
    acting = [forecaster.observe(o) for o in observations if o]
    assert len(acting) == 40  # the reset observation and 39 steps (at 40 all truncate)
    config = forecaster.config
    samples = _samples(observations, names, result, config)
    # Training rows of step min_history: agents in order, then assets.
    vol, crash = forecaster.predict(samples["x"][:6])
    step = acting[config.min_history]
    np.testing.assert_allclose(np.concatenate([step[a][0] for a in step]), vol, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([step[a][1] for a in step]), crash, rtol=1e-6)
    assert np.all(vol > 0.0) and np.all((crash >= 0.0) & (crash <= 1.0))


def test_missing_corrupt_and_mismatched_checkpoints_get_clear_errors(
    trained: ForecastReport, tmp_path: Path, small: Small
) -> None:
    source = trained.checkpoint
    with pytest.raises(CheckpointError, match="file not found"):
        Forecaster.load(tmp_path / "nowhere")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((source / "config.json").read_text())
    (corrupt / "model.pt").write_bytes(b"\x80\x02 definitely not a zip archive")
    with pytest.raises(CheckpointError, match=r"corrupt/model\.pt: not a readable state_dict"):
        Forecaster.load(corrupt)

    (corrupt / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        Forecaster.load(corrupt)

    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    (mismatched / "model.pt").write_bytes((source / "model.pt").read_bytes())
    meta = json.loads((source / "config.json").read_text())
    meta["config"]["hidden"] = 16
    (mismatched / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"has shape \(32,\), the config implies \(16,\)"
    ) as err:
        Forecaster.load(mismatched)
    assert "mismatched/model.pt" in str(err.value)

    meta["config"]["hidden"] = 32
    meta["features"] = meta["features"][:-1]
    (mismatched / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="field 'features'"):
        Forecaster.load(mismatched)

    # Through a scenario file: the error names the protocol's policy field.
    scenario = small("baseline", 100, protocols__0__policy=f"forecaster:{corrupt}")
    with pytest.raises(ScenarioError, match=r"protocols\[0\]\.policy .*not valid JSON"):
        run(scenario, steps=2)
