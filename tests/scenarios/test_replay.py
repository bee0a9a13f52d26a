"""Replay CSVs (liqnet.scenarios.replay): read, resampled onto the step grid, equal to the
equivalent knots, paths relative to their scenario file, and one clear error per bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liqnet.core.schema import Scenario
from liqnet.market import MarketModel
from liqnet.scenarios import load
from liqnet.scenarios.loader import validate
from liqnet.scenarios.replay import MAX_CSV_ROWS, mark_replay_files, read_price_csv, resample
from tests.helpers.scenario_files import MINIMAL_TOML, scenario_error, write_toml

# ETH every 3 hours from 3000, in ISO-8601 (UTC) and in unix seconds.
ROWS = [("2022-05-09T00:00:00Z", 3000.0), ("2022-05-09T03:00:00Z", 2400.0)]
ROWS += [("2022-05-09T06:00:00+00:00", 2700.0), ("2022-05-09T09:00:00", 2100.0)]
START = 1652054400  # 2022-05-09T00:00:00Z
KNOTS = [[3, 2400.0], [6, 2700.0], [9, 2100.0]]


def write_csv(folder: Path, text: str, name: str = "eth.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def iso_csv() -> str:
    return "timestamp,price\n" + "".join(f"{t},{p}\n" for t, p in ROWS)


def csv_scenario(folder: Path, csv: str = "eth.csv", extra: str = "") -> Path:
    """MINIMAL_TOML (ETH at 3000, 10 hourly steps) replaying ``csv``."""
    text = MINIMAL_TOML + f'\n[market.assets.ETH.replay]\ncsv = "{csv}"\n{extra}'
    return write_toml(folder, "s.toml", text)


def reference(scenario: Scenario) -> np.ndarray:
    model = MarketModel(scenario, feedback=False)
    for _ in range(scenario.steps):
        model.step()
    return model.timeseries()["ETH.reference"].to_numpy()


def test_csv_gives_the_path_of_the_equivalent_knots(tmp_path: Path) -> None:
    write_csv(tmp_path, iso_csv())
    from_csv = load(csv_scenario(tmp_path))
    replay = from_csv.market.assets["ETH"].replay
    assert replay is not None
    assert replay.csv == str(tmp_path / "eth.csv")
    assert replay.csv_grid == (1.0, 10)
    assert [k for k, _ in replay.knots or []] == list(range(1, 10))  # one knot per step
    from_knots = load(
        write_toml(tmp_path, "k.toml", MINIMAL_TOML), {"market.assets.ETH.replay.knots": KNOTS}
    )
    np.testing.assert_allclose(reference(from_csv), reference(from_knots), rtol=1e-12)
    np.testing.assert_allclose(reference(from_csv)[[3, 6, 9, 10]], [2400, 2700, 2100, 2100])


def test_unix_seconds_read_as_iso_times(tmp_path: Path) -> None:
    iso = read_price_csv(write_csv(tmp_path, iso_csv()))
    text = "price,timestamp,volume\n" + "".join(
        f"{p},{START + 3 * 3600 * k},1\n" for k, (_, p) in enumerate(ROWS)
    )
    unix = read_price_csv(write_csv(tmp_path, text, "unix.csv"))
    np.testing.assert_array_equal(iso[0], unix[0])
    np.testing.assert_array_equal(iso[1], unix[1])


def test_resampling_follows_dt_hours_and_stops_at_the_horizon(tmp_path: Path) -> None:
    write_csv(tmp_path, iso_csv())
    path = csv_scenario(tmp_path)
    half = load(path, {"dt_hours": 0.5, "steps": 12}).market.assets["ETH"].replay
    assert half is not None and half.knots is not None
    assert half.knots[5] == (6, pytest.approx(2400.0, rel=1e-12))  # 3 h = 6 half-hour steps
    assert len(half.knots) == 12  # the CSV covers 18 steps; the run has 12
    assert half.csv_grid == (0.5, 12)
    seconds, prices = read_price_csv(tmp_path / "eth.csv")
    assert len(resample(seconds, prices, 2.0, 100)) == 4  # 9 h hold 4 whole 2 h steps


def test_a_dumped_scenario_validates_back_and_a_new_grid_resamples(tmp_path: Path) -> None:
    write_csv(tmp_path, iso_csv())
    scenario = load(csv_scenario(tmp_path))
    dumped = json.loads(json.dumps(scenario.model_dump(by_alias=True)))
    assert validate(dumped) == scenario
    assert Scenario.model_validate(dumped) == scenario  # core: no file read
    regridded = validate({**dumped, "dt_hours": 3.0, "steps": 3})
    replay = regridded.market.assets["ETH"].replay
    assert replay is not None and replay.knots == [(1, 2400.0), (2, 2700.0), (3, 2100.0)]
    with pytest.raises(ValueError, match="csv_grid"):
        Scenario.model_validate({**dumped, "dt_hours": 3.0, "steps": 3})


def test_csv_paths_are_relative_to_their_own_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "data", iso_csv())
    base = csv_scenario(tmp_path / "bases", "../data/eth.csv")
    child = write_toml(tmp_path / "runs", "child.toml", 'base = "../bases/s.toml"\nsteps = 9\n')
    replay = load(child).market.assets["ETH"].replay
    assert replay is not None
    assert Path(replay.csv or "").resolve() == (tmp_path / "data" / "eth.csv").resolve()
    # A file giving knots replaces its base's CSV (and the other way round).
    knots = write_toml(
        tmp_path / "runs",
        "knots.toml",
        f'base = "{base}"\n[market.assets.ETH.replay]\nknots = [[2, 2000.0]]\n',
    )
    replay = load(knots).market.assets["ETH"].replay
    assert replay is not None and (replay.knots, replay.csv) == ([(2, 2000.0)], None)


def test_a_builtin_csv_path_is_relative_to_the_builtin_folder() -> None:
    folder = Path("/somewhere/scenarios/builtin")
    raw = {"market": {"assets": {"ETH": {"replay": {"csv": "eth.csv"}}}}}
    marked = mark_replay_files(raw, folder, "built-in 'x'")
    assert marked["market"]["assets"]["ETH"]["replay"] == {
        "csv": str(folder / "eth.csv"),
        "knots": None,
        "csv_grid": None,
    }


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("", ["line 1", "timestamp and price"], id="empty"),
        pytest.param("time,price\n0,3000\n", ["line 1", "['time', 'price']"], id="header"),
        pytest.param("timestamp,price\n0,3000\n", ["1 data rows", "at least 2"], id="one-row"),
        pytest.param(
            "timestamp,price\n0,3000\n3600,abc\n", ["line 3, column price", "'abc'"], id="price"
        ),
        pytest.param(
            "timestamp,price\n0,3000\n3600,nan\n", ["line 3, column price", "[1e-08"], id="nan"
        ),
        pytest.param(
            "timestamp,price\n0,3000\n3600,-1\n", ["line 3, column price", "'-1'"], id="negative"
        ),
        pytest.param(
            "timestamp,price\n0,3000\nMay 9,2000\n",
            ["line 3, column timestamp", "'May 9'", "ISO-8601"],
            id="timestamp",
        ),
        pytest.param(
            "timestamp,price\n0,3000\n7200,2000\n3600,2500\n",
            ["line 4, column timestamp", "'3600' is not after"],
            id="not-increasing",
        ),
        pytest.param(
            "timestamp,price\n0,3000\n3600\n", ["line 3", "1 fields", "header has 2"], id="short"
        ),
        pytest.param(
            "timestamp,price\n0,3000\n1800,2000\n", ["1800 s", "less than one step"], id="span"
        ),
        pytest.param(
            "timestamp,price\n0,2000\n3600,2500\n",
            ["first price 2000.0", "initial price 3000.0", "market.assets.ETH.price = 2000.0"],
            id="start-price",
        ),
    ],
)
def test_bad_csv_is_one_error_naming_field_file_line_and_column(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write_csv(tmp_path, text)
    message = scenario_error(csv_scenario(tmp_path))
    assert "market.assets.ETH.replay.csv = " in message
    assert str(path) in message or "eth.csv" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_bad_csv_files(tmp_path: Path) -> None:
    assert "does not exist" in scenario_error(csv_scenario(tmp_path, "missing.csv"))
    (tmp_path / "eth.csv").write_bytes(b"timestamp,price\n0,3000\n\xff,1\n")
    assert "not UTF-8" in scenario_error(csv_scenario(tmp_path))
    write_csv(tmp_path, iso_csv())
    both = scenario_error(csv_scenario(tmp_path, extra="knots = [[1, 3000.0]]\n"))
    assert "market.assets.ETH.replay: give knots or csv, not both" in both
    # Core reads no files: a CSV not turned into knots by the loader is an error there.
    raw = load(csv_scenario(tmp_path)).model_dump(by_alias=True)
    raw["market"]["assets"]["ETH"]["replay"] = {"csv": "eth.csv"}
    with pytest.raises(ValueError, match="read by the scenario loader"):
        Scenario.model_validate(raw)


def test_too_many_rows(tmp_path: Path) -> None:
    rows = "".join(f"{k},3000\n" for k in range(MAX_CSV_ROWS + 1))
    path = write_csv(tmp_path, "timestamp,price\n" + rows)
    with pytest.raises(ValueError, match=f"line {MAX_CSV_ROWS + 2}: more than 1,000,000 rows"):
        read_price_csv(path)
