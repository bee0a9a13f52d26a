"""Mesa's own tools work on the world: model reporters, ``running`` and ``batch_run``."""

from __future__ import annotations

import mesa
import pandas as pd
import pytest

from liqnet.market import MarketModel
from liqnet.scenarios import load

POSITIONS = {f"protocols.{k}.params.positions": 200 for k in range(3)}


def test_model_vars_dataframe_is_the_time_series() -> None:
    model = MarketModel(load("baseline", {**POSITIONS, "steps": 5}))
    for _ in range(3):
        model.step()
    frame = model.datacollector.get_model_vars_dataframe()
    assert frame["step"].tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(frame, model.timeseries())
    assert frame["aave.equity"].iloc[-1] == pytest.approx(model.protocols["aave"].equity())


def test_a_model_reporter_computes_its_column_like_the_fast_path() -> None:
    model = MarketModel(load("baseline", {**POSITIONS, "steps": 5}))
    model.step()
    reporters = model.datacollector.model_reporters
    assert set(reporters) == set(model.timeseries().columns)
    assert reporters["aave.equity"](model) == model.timeseries()["aave.equity"].iloc[-1]


def test_running_turns_false_at_the_horizon() -> None:
    model = MarketModel(load("baseline", {**POSITIONS, "steps": 3}))
    flags = []
    while model.running:
        model.step()
        flags.append(model.running)
    assert flags == [True, True, False]
    assert model.step_index == 3


def test_batch_run_stops_at_the_horizon_and_reports_every_step() -> None:
    scenario = load("baseline", {**POSITIONS, "steps": 4})
    rows = mesa.batch_run(
        MarketModel,
        parameters={"scenario": [scenario], "seed": [1, 2]},
        iterations=1,
        max_steps=1000,  # the world stops itself after 4 steps, long before this
        number_processes=1,
        data_collection_period=1,
        display_progress=False,
    )
    frame = pd.DataFrame(rows)
    assert sorted(frame["seed"].unique()) == [1, 2]
    # batch_run reads rows 0 .. model.steps - 1 (Mesa's convention; row k is the state
    # after k steps, row 0 the initial state), so it stopped after the 4 steps.
    assert frame.groupby("seed")["Step"].agg(list).tolist() == [[0, 1, 2, 3]] * 2
    for seed in (1, 2):
        alone = MarketModel(scenario, seed=seed)
        for _ in range(4):
            alone.step()
        expected = alone.timeseries()["ETH.reference"].iloc[:4].tolist()
        assert frame[frame["seed"] == seed]["ETH.reference"].tolist() == expected
    assert frame[frame["seed"] == 1]["ETH.reference"].iloc[-1] != expected[-1]
