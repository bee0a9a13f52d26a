"""Tests of :mod:`liqnet.scenarios.sweep`: sweep files, planning, and sweeps on a real Ray
runtime (a local instance, a connection the caller made, and a three-node cluster that
loses a node mid-sweep), resume, Ctrl-C, failures recorded per run, determinism.

Worlds are small (200 positions per protocol, 24 steps) except where a run must last long
enough to be interrupted.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray

from liqnet.scenarios.ray_connect import ray_connection
from liqnet.scenarios.sweep import SweepError, _lock, load_sweep, plan, run_one, sweep
from liqnet.scenarios.sweep_schema import builtin_sweeps
from tests.helpers.sweeps import canonical, mtimes, rows_on_disk, small, spec

# -- sweep files and plans (no Ray) --------------------------------------------------------


def test_plan_is_the_product_of_grid_random_mixes_and_seeds() -> None:
    mixes = [
        {"name": "a", "set": {"protocols.aave.policy": "static"}},
        {"name": "b", "set": {"protocols.dydx.policy": "static"}},
    ]
    random = {
        "samples": 3,
        "seed": 5,
        "params": {
            "market.permanent_impact": {"dist": "uniform", "low": 0.1, "high": 0.9},
            "market.assets.ETH.volatility": {"dist": "loguniform", "low": 0.2, "high": 2.0},
            "market.assets.ETH.oracle.latency_steps": {"dist": "choice", "values": [0, 2, 4]},
        },
    }
    configs = plan(load_sweep(spec(random=random, policy_mixes=mixes, seeds=[0, 1, 2])))
    assert len(configs) == 2 * 3 * 2 * 3
    assert len({c.run_id for c in configs}) == len(configs)
    samples = {tuple(sorted(c.params.items())) for c in configs}
    assert len(samples) == 2 * 3
    for c in configs:
        assert 0.1 <= c.params["market.permanent_impact"] <= 0.9
        assert 0.2 <= c.params["market.assets.ETH.volatility"] <= 2.0
        assert c.params["market.assets.ETH.oracle.latency_steps"] in (0, 2, 4)
        assert c.scenario["protocols"][0]["params"]["positions"] == 200
    # Seeded: the same file gives the same runs, and ids do not depend on the process.
    again = plan(load_sweep(spec(random=random, policy_mixes=mixes, seeds=[0, 1, 2])))
    assert [c.run_id for c in again] == [c.run_id for c in configs]
    mix_b = next(c for c in configs if c.policy_mix == "b")
    assert mix_b.scenario["protocols"][2]["policy"] == "static"


def test_builtin_sweeps_load() -> None:
    assert builtin_sweeps() == [
        "convergence",
        "negotiation_value",
        "negotiation_value_credit_crunch",
        "negotiation_value_ecosystem",
        "negotiation_value_vol_regime",
        "shock_grid",
    ]
    ablation = load_sweep("negotiation_value")
    assert ablation.grid["negotiation.enabled"] == [True, False]
    assert len(plan(ablation)) == 2 * 3 * 10
    for world in ("credit_crunch", "ecosystem", "vol_regime"):
        twin = load_sweep(f"negotiation_value_{world}")
        assert twin.base == world and twin.grid == {"negotiation.enabled": [True, False]}
        assert len(plan(twin)) == 2 * 20
    shock_grid = load_sweep("shock_grid")
    assert len(plan(shock_grid)) == 4 * 3 * 3 * 3
    assert shock_grid.feedback_twin
    convergence = load_sweep("convergence")
    mixes = {m.name: m.set_ for m in convergence.policy_mixes}
    assert {"all_static", "bayesian_shared", "mappo_shared", "mappo_independent"} <= set(mixes)
    assert len(set(mixes["mappo_shared"].values())) == 1  # one spec: one shared model
    assert len(plan(convergence)) == len(mixes) * 4 * 3


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"bogus": 1}, "bogus = 1: Extra inputs are not permitted"),
        ({"seeds": [0, -3]}, "seeds.1 = -3: Input should be greater than or equal to 0"),
        ({"seeds": []}, "seeds"),
        ({"steps": 0}, "steps = 0: Input should be greater than or equal to 1"),
        ({"base": "no_such_scenario"}, "unknown scenario 'no_such_scenario'"),
        (
            {"grid": {"market.assets.ETH.pool_usdd": [1.0]}},
            "grid.\"market.assets.ETH.pool_usdd\": 'market.assets.ETH.pool_usdd' is not a field",
        ),
        (
            {"grid": {"market.assets.DOGE.price": [1.0]}},
            "'market.assets.DOGE.price' names no table of scenario 'flash_crash'",
        ),
        (
            {"grid": {"protocols.9.params.positions": [10]}},
            "'protocols.9' selects no element",
        ),
        (
            {
                "random": {
                    "samples": 2,
                    "params": {"seed": {"dist": "loguniform", "low": 0, "high": 1}},
                }
            },
            'random.params.seed: low = 0.0: dist = "loguniform" needs low > 0',
        ),
        (
            {"random": {"samples": 2, "params": {"seed": {"dist": "normal", "low": 0, "high": 1}}}},
            "random.params.seed.dist = 'normal': Input should be 'uniform', 'loguniform' or",
        ),
        (
            {"policy_mixes": [{"name": "a", "set": {}}, {"name": "a", "set": {}}]},
            "policy_mixes names must be unique; repeated: ['a']",
        ),
    ],
)
def test_bad_sweep_gets_a_clear_error(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(SweepError) as info:
        load_sweep(spec(**fields))
    assert expected in str(info.value)


def test_bad_sweep_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nbase = "baseline"\nseeds = [0, 1\n', encoding="utf-8")
    with pytest.raises(SweepError, match=r"bad\.toml: not valid TOML"):
        load_sweep(path)
    path.write_text('name = "bad"\nbase = "baseline"\nsteps = "many"\n', encoding="utf-8")
    with pytest.raises(SweepError, match=r"bad\.toml: invalid sweep\n  steps = 'many'"):
        load_sweep(path)
    with pytest.raises(SweepError, match="unknown sweep 'nope'"):
        load_sweep("nope")
    # A sweep file's relative base is relative to the file, as for scenario files.
    (tmp_path / "world.toml").write_text('base = "baseline"\nname = "w"\n', encoding="utf-8")
    path.write_text('name = "ok"\nbase = "world.toml"\n', encoding="utf-8")
    assert plan(load_sweep(path))[0].scenario["name"] == "w"


def test_failed_runs_are_rows_not_exceptions() -> None:
    configs = plan(
        load_sweep(
            spec(
                grid={"market.assets.ETH.pool_usd": [100e6, -1.0]},
                seeds=[0],
                policy_mixes=[
                    {"name": "static", "set": {"protocols.aave.policy": "static"}},
                    {"name": "learned", "set": {"protocols.aave.policy": "no_such_policy"}},
                    {"name": "bayes", "set": {"protocols.compound.policy": "bayesian"}},
                ],
            )
        )
    )
    rows = {(c.params["market.assets.ETH.pool_usd"], c.policy_mix): run_one(c) for c in configs}
    assert rows[(100e6, "static")]["status"] == "done"
    bad_value = rows[(-1.0, "static")]
    assert bad_value["status"] == "failed"
    assert "pool_usd = -1.0: Input should be greater than or equal to 10000" in bad_value["error"]
    unknown = rows[(100e6, "learned")]
    assert unknown["status"] == "failed"
    assert "unknown policy 'no_such_policy'" in unknown["error"]
    # A policy mix really changes who acts: the Bayesian manager's run differs.
    bayes = rows[(100e6, "bayes")]
    assert bayes["status"] == "done"
    # Its actions differ (the convergence index), and so does the balance sheet it acts
    # for (compound's; with realistic depth aave's 24-step equity is the static run's).
    static = rows[(100e6, "static")]
    # All static: undefined (NaN), not "converged"; one Bayesian manager moves, but a
    # single moving agent still has no partner to correlate with.
    assert math.isnan(static["convergence_index"])
    assert bayes["convergence_index"] != static["convergence_index"]
    # Structure: static protocols share the architecture; a Bayesian one does not.
    assert static["structure_same_architecture"] == 1.0
    assert bayes["structure_same_architecture"] == pytest.approx(1 / 3)
    assert bayes["equity_change_usd.compound"] != static["equity_change_usd.compound"]


# -- sweeps on Ray -------------------------------------------------------------------------


@pytest.mark.slow
def test_local_sweep(tmp_path: Path, no_ray_address: None) -> None:
    """A local sweep: rows and artifacts, failures recorded, rows equal to in-process runs,
    resume without recomputation."""
    out = tmp_path / "sweep"
    table = spec(
        grid={"market.assets.ETH.pool_usd": [100e6, 400e6, -1.0]},
        policy_mixes=[
            {"name": "all_static", "set": {"protocols.aave.policy": "static"}},
            {"name": "placeholder", "set": {"protocols.aave.policy": "mappo_shared"}},
        ],
        feedback_twin=True,
    )
    df = sweep(table, out=out, max_parallel=2, progress=False)
    assert not ray.is_initialized()  # the local instance it started is gone
    assert len(df) == 3 * 2 * 2 and df["run_id"].is_unique
    assert df.attrs["computed"] == 12 and df.attrs["skipped"] == 0
    ok = (df["market.assets.ETH.pool_usd"] > 0) & (df["policy_mix"] == "all_static")
    assert (df.loc[ok, "status"] == "done").all() and df.loc[ok, "error"].isna().all()
    assert (df.loc[~ok, "status"] == "failed").all() and df.loc[~ok, "error"].notna().all()
    assert df.loc[ok, "liquidated_usd"].gt(0).all()
    for column in ["run_id", "seed", "policy_mix", "status", "error", "bad_debt_usd"]:
        assert column in df
    assert {"max_drawdown", "defaults", "equity_change_usd.aave"} <= set(df.columns)
    if importlib.util.find_spec("liqnet.analysis.amplification"):
        assert df.loc[ok, "amplification_bad_debt"].notna().all()
    on_disk = pd.read_parquet(out / "sweep.parquet")
    pd.testing.assert_frame_equal(on_disk, df.reset_index(drop=True), check_like=False)
    done_dir = out / "runs" / df.loc[ok, "run_id"].iloc[0]
    assert {"row.json", "timeseries.parquet", "events.parquet", "summary.json"} <= {
        p.name for p in done_dir.iterdir()
    }
    assert set(rows_on_disk(out)) == set(df["run_id"])
    assert not list((out / "runs").glob(".tmp-*")) and not (out / ".sweep.lock").exists()

    # Determinism: every row computed by a Ray worker equals the row computed here.
    rows = rows_on_disk(out)
    for config in plan(load_sweep(table)):
        assert canonical(rows[config.run_id]) == canonical(run_one(config))

    # Resume: everything is done, nothing is recomputed (and Ray is not even started).
    before = mtimes(out)
    again = sweep(table, out=out, progress=False)
    assert again.attrs["computed"] == 0 and again.attrs["skipped"] == 12
    assert mtimes(out) == before
    pd.testing.assert_frame_equal(again, df)

    # Lose one finished run: exactly that one is computed again, to the same row.
    lost = df.loc[ok, "run_id"].iloc[1]
    (out / "runs" / lost / "row.json").unlink()
    third = sweep(table, out=out, progress=False)
    assert third.attrs["computed"] == 1
    after = mtimes(out)
    assert {k for k in after if after[k] != before[k]} == {lost}
    pd.testing.assert_frame_equal(third, df)


@pytest.fixture
def private_ray_tmpdir(monkeypatch: pytest.MonkeyPatch):
    """A Ray temp dir of our own: a test cluster records its address there, so no other
    process on this machine calling a bare ``ray.init()`` joins it by mistake."""
    folder = tempfile.mkdtemp(prefix="liqnet-ray-", dir="/tmp")  # short: socket paths
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_cluster_sweep_survives_losing_a_node(
    tmp_path: Path, no_ray_address: None, private_ray_tmpdir: None
) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        # Runs of about half a second, so the node dies with tasks in flight on it.
        table = spec(overrides=small(40_000), steps=120, seeds=list(range(6)))
        out = tmp_path / "cluster"

        victim = workers[0]
        killed_while_running: list[str] = []

        def remove_a_node() -> None:
            """After two runs, remove the node as soon as it is running a task of ours."""
            from ray.util.state import list_tasks

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if len(list((out / "runs").glob("*/row.json"))) >= 2:
                    try:
                        running = list_tasks(
                            filters=[("node_id", "=", victim.node_id), ("state", "=", "RUNNING")]
                        )
                    except ConnectionError:
                        # The state API reads the dashboard's address from GCS, which can
                        # lag on a loaded machine: ask again until the deadline.
                        time.sleep(0.2)
                        continue
                    if any(t.name == "_task" for t in running):
                        killed_while_running.append(victim.node_id)
                        cluster.remove_node(victim)
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=remove_a_node)
        killer.start()
        df = sweep(table, address=cluster.address, out=out, progress=False)
        killer.join()
        # The node died with one of our tasks running on it: Ray must have retried it.
        assert killed_while_running and victim not in cluster.worker_nodes
        assert len(df) == 12 and df["run_id"].is_unique
        assert (df["status"] == "done").all(), df["error"].dropna().tolist()
        assert set(rows_on_disk(out)) == set(df["run_id"])
        assert len(list((out / "runs").iterdir())) == 12
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_leaves_a_resumable_directory(
    tmp_path: Path, no_ray_address: None, signum: int, code: int
) -> None:
    # SIGTERM (issue 19: it aborted with a native stack dump) takes the Ctrl-C path.
    runs = 2 * 4  # two pool depths x four seeds
    out = tmp_path / "interrupted"
    sweep_file = tmp_path / "long.toml"
    positions = ", ".join(f'"protocols.{k}.params.positions" = 40000' for k in range(3))
    sweep_file.write_text(
        'name = "long"\nbase = "flash_crash"\nsteps = 120\nseeds = [0, 1, 2, 3]\n'
        f"overrides = {{ {positions} }}\n"
        '[grid]\n"market.assets.ETH.pool_usd" = [100e6, 400e6]\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "liqnet.scenarios.cli", "sweep", str(sweep_file)]
    command += ["--out", str(out), "--max-parallel", "1", "--no-progress"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A job started with "&" from a script inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: give the sweep a terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        # "[!.]*": a run being written sits in .tmp-<id>/ (with its row.json) until renamed;
        # a Ctrl-C in between rightly drops it, so only renamed runs count as finished.
        while len(list((out / "runs").glob("[!.]*/row.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, output
    assert "run again to resume" in " ".join(output.split())
    kept = mtimes(out)
    assert 2 <= len(kept) < runs
    assert not list((out / "runs").glob(".tmp-*")) and not (out / ".sweep.lock").exists()
    assert not list(out.glob(".sweep.*"))  # no atomic_write temporaries left
    partial = pd.read_parquet(out / "sweep.parquet")
    assert set(partial["run_id"]) == set(kept)

    # Resume on a Ray connection the caller made: it is used, and left running.
    with ray_connection(num_cpus=2):
        df = sweep(sweep_file, out=out, progress=False)
        assert ray.is_initialized()
    assert df.attrs["skipped"] == len(kept) and df.attrs["computed"] == runs - len(kept)
    assert {k: v for k, v in mtimes(out).items() if k in kept} == kept
    assert len(df) == runs and df["run_id"].is_unique and (df["status"] == "done").all()


def test_a_sweep_too_large_to_plan_is_refused_before_planning() -> None:
    # Issue 19: random.samples = 1e6 took ~5 GiB with no progress; a 1e10 grid never
    # returned. The count is checked arithmetically first (10^10 points x 2 seeds).
    grid = {f"market.assets.ETH.k{i}": list(range(10)) for i in range(10)}
    with pytest.raises(SweepError, match=r"20,000,000,000 runs .* at most 100,000"):
        load_sweep(spec(grid=grid))
    with pytest.raises(SweepError, match=r"random\.samples"):
        load_sweep(spec(random={"samples": 1_000_000, "params": {}}))


def test_temporaries_of_a_killed_driver_are_removed(tmp_path: Path) -> None:
    # A kill -9 mid-write leaves atomic_write's temporary beside sweep.parquet.
    tmp_path.joinpath(".sweep.parquet.k3j2.parquet").write_bytes(b"half")
    tmp_path.joinpath(".sweep.json.x9.json").write_text("{")
    sweep(spec(grid={}, seeds=[0]), out=tmp_path, progress=False)
    assert not list(tmp_path.glob(".sweep.parquet.*")) and not list(tmp_path.glob(".sweep.json.*"))


def test_one_sweep_per_directory(tmp_path: Path) -> None:
    lock = tmp_path / ".sweep.lock"
    lock.write_text(str(os.getpid()), encoding="utf-8")
    with pytest.raises(SweepError, match="another sweep"):
        sweep(spec(), out=tmp_path, progress=False)
    # A lock left by a process that no longer exists is taken over, and released.
    lock.write_text("999999999", encoding="utf-8")
    with _lock(tmp_path):
        assert lock.read_text(encoding="utf-8") == str(os.getpid())
    assert not lock.exists()
    with pytest.raises(SweepError, match="max_parallel = 0: must be at least 1"):
        sweep(spec(), out=tmp_path, max_parallel=0, progress=False)
