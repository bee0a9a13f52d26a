"""Sweeps' exit status, retrying failed runs, and what reaches the Ray workers
(registered types, runtime_env paths); split from test_sweep.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from liqnet.scenarios.sweep import SweepError, load_sweep, sweep
from tests.helpers.sweeps import mtimes

# -- exit status, retrying failed runs, what reaches the workers ---------------------------


@pytest.mark.slow
def test_failed_runs_exit_1_with_the_count_and_retry_failed_reruns_them(
    tmp_path: Path,
    no_ray_address: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from liqnet.scenarios.cli import main
    from liqnet.scenarios.train import train

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where Ray would write its token
    monkeypatch.chdir(tmp_path)
    sweep_file = tmp_path / "mixes.toml"
    positions = ", ".join(f'"protocols.{k}.params.positions" = 100' for k in range(3))
    sweep_file.write_text(
        'name = "mixes"\nbase = "flash_crash"\nsteps = 12\nseeds = [0]\n'
        f"overrides = {{ {positions} }}\n"
        '[[policy_mixes]]\nname = "standing"\nset = {}\n'
        '[[policy_mixes]]\nname = "trained"\nset = { "protocols.1.policy" = "mappo:ck" }\n',
        encoding="utf-8",
    )
    command = ["sweep", str(sweep_file), "--out", "out", "--no-progress", "--max-parallel", "2"]

    def printed() -> str:
        return " ".join(capsys.readouterr().out.split())  # rich wraps long lines

    # The checkpoint does not exist yet: one run fails, and the command says so.
    assert main(command) == 1
    first = printed()
    assert "2 runs (2 computed, 0 already done, 1 failed)" in first
    assert "error: 1 of 2 runs failed" in first and "--retry-failed" in first
    assert "ck/config.json: file not found" in first
    # A local instance gets a token of its own: Ray wrote no ~/.ray/auth_token.
    assert not (tmp_path / "home" / ".ray").exists()
    assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ
    failed_before = mtimes(tmp_path / "out")

    # A plain re-run keeps the failed run's row (and still exits 1).
    assert main(command) == 1
    assert "2 runs (0 computed, 2 already done, 1 failed)" in printed()
    assert mtimes(tmp_path / "out") == failed_before

    # The cause fixed (the checkpoint now exists), --retry-failed runs it again.
    config = load_mappo_config()
    train(
        "flash_crash",
        steps=24,
        config=config,
        horizon=12,
        out="ck",
        use_ray=False,
        overrides={f"protocols.{k}.params.positions": 100 for k in range(3)},
    )
    assert main([*command, "--retry-failed"]) == 0
    assert "2 runs (1 computed, 1 retried, 1 already done, 0 failed)" in printed()
    df = pd.read_parquet(tmp_path / "out" / "sweep.parquet")
    assert (df["status"] == "done").all() and df["error"].isna().all()
    after = mtimes(tmp_path / "out")
    assert [k for k in after if after[k] != failed_before[k]] == [
        df.loc[df["policy_mix"] == "trained", "run_id"].item()
    ]


def load_mappo_config() -> Any:
    """A MAPPO configuration small enough to train in a second."""
    from liqnet.agents.mappo import MAPPOConfig

    return MAPPOConfig.from_dict({"hidden_sizes": [8], "rollout_steps": 12, "num_envs": 2})


@pytest.mark.slow
def test_registered_types_reach_the_workers_or_fail_at_submission(
    tmp_path: Path, no_ray_address: None
) -> None:
    import types

    from liqnet.protocols import registry

    examples = Path(__file__).resolve().parents[2] / "examples/liqnet-fixed-rate-desk"
    sys.path.insert(0, str(examples))
    from fixed_rate_desk import FixedRateDesk

    desk = {"base": str(examples / "desk.toml"), "steps": 12, "name": "desk", "seeds": [0]}
    # A type added with register() in this process is sent with the runs, its module
    # shipped with the runtime_env (the workers do not have it): they succeed.
    registry.register("fixed_rate_desk", FixedRateDesk)
    ship = {"py_modules": [str(examples / "fixed_rate_desk")]}
    try:
        df = sweep(desk, out=tmp_path / "ok", max_parallel=1, progress=False, runtime_env=ship)
        assert (df["status"] == "done").all(), df["error"].tolist()

        # A class whose module exists only in this process (a plugin not installed on
        # the workers) fails once, at submission, before any run is written.
        driver_only = types.ModuleType("liqnet_driver_only_plugin")
        clone = type("DriverOnlyDesk", (FixedRateDesk,), {"__module__": driver_only.__name__})
        driver_only.DriverOnlyDesk = clone  # type: ignore[attr-defined]
        sys.modules[driver_only.__name__] = driver_only
        registry.register("fixed_rate_desk", clone)
        with pytest.raises(SweepError, match="pass here but fail on the Ray workers") as err:
            sweep(desk, out=tmp_path / "refused", max_parallel=1, progress=False, runtime_env=ship)
        assert "liqnet_driver_only_plugin" in str(err.value) and "py_modules" in str(err.value)
        assert not list((tmp_path / "refused" / "runs").iterdir())
    finally:
        registry.PROTOCOLS.unregister("fixed_rate_desk")
        sys.modules.pop("liqnet_driver_only_plugin", None)
        sys.path.remove(str(examples))


def test_runtime_env_paths_are_relative_to_their_file(tmp_path: Path) -> None:
    from liqnet.scenarios.ray_connect import RuntimeEnvError, load_runtime_env

    (tmp_path / "project" / "plugin").mkdir(parents=True)
    env_file = tmp_path / "project" / "env.json"
    env_file.write_text(
        json.dumps({"working_dir": ".", "py_modules": ["plugin"], "pip": ["x"]}),
        encoding="utf-8",
    )
    env = load_runtime_env(env_file)
    assert env == {
        "working_dir": str((tmp_path / "project").resolve()),
        "py_modules": [str((tmp_path / "project" / "plugin").resolve())],
        "pip": ["x"],
    }
    toml_file = tmp_path / "project" / "env.toml"
    toml_file.write_text('working_dir = "missing"\n', encoding="utf-8")
    with pytest.raises(RuntimeEnvError, match=r"working_dir = 'missing': .* does not exist"):
        load_runtime_env(toml_file)
    env_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(RuntimeEnvError, match=r"not valid \.json"):
        load_runtime_env(env_file)
    # In a sweep file, the [runtime_env] table's paths are relative to the sweep file.
    sweep_file = tmp_path / "project" / "s.toml"
    sweep_file.write_text(
        'name = "s"\nbase = "flash_crash"\n[runtime_env]\nworking_dir = "."\n', encoding="utf-8"
    )
    assert load_sweep(sweep_file).runtime_env == {
        "working_dir": str((tmp_path / "project").resolve())
    }
