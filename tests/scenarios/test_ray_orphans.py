"""What a killed driver's local Ray instance leaves running is stopped at the next local
start, and nothing else (issue 19: after ``kill -9`` of ``liqnet sweep``, Ray's dashboard
and runtime-env agents stayed behind)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from liqnet.scenarios.ray_connect import ray_connection
from liqnet.scenarios.ray_orphans import MARKER, orphans, owner_marker, reap_orphans

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _start(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def _running(pids: dict[int, int | None]) -> set[int]:
    return {pid for pid, start in pids.items() if start is not None and _start(pid) == start}


def _sleeper(marker: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    if marker is not None:
        env[MARKER] = marker
    return subprocess.Popen(["sleep", "120"], env=env)


def test_only_processes_of_a_dead_drivers_instance_are_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    dead_marker = owner_marker(gone.pid)
    gone.wait()
    assert dead_marker is not None
    orphan = _sleeper(dead_marker)  # a process of the dead driver's instance
    live = _sleeper(owner_marker())  # of a driver that runs (this one)
    reused = _sleeper(f"{os.getpid()}:1")  # this pid, another start: a reused pid
    plain = _sleeper(None)  # anything else, e.g. a `ray start` head
    bad = _sleeper("not-a-marker")
    try:
        time.sleep(0.2)  # let them exec, so their environment is readable
        found = orphans()
        assert orphan.pid in found and reused.pid in found
        assert not {live.pid, plain.pid, bad.pid} & set(found)
        with caplog.at_level(logging.WARNING):
            stopped = reap_orphans()
        assert {orphan.pid, reused.pid} <= set(stopped)
        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert reused.wait(timeout=10) == -signal.SIGTERM
        assert live.poll() is None and plain.poll() is None and bad.poll() is None
        assert "left by the local Ray instance of a killed liqnet driver" in caplog.text
    finally:
        for proc in (orphan, live, reused, plain, bad):
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _session_members(sid: int) -> dict[int, int | None]:
    """Processes of session ``sid``: ``{pid: start time}``."""
    members: dict[int, int | None] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of proc(5): session
            members[int(entry.name)] = int(fields[19])
    return members


@pytest.fixture
def user_cluster(tmp_path: Path) -> Iterator[dict[int, int | None]]:
    """A `ray start --head` the user started (no liqnet marker), in a session of its own
    that teardown kills (``ray stop`` would stop every Ray on the machine)."""
    temp = tempfile.mkdtemp(prefix="liqnet-head-", dir="/tmp")  # short: socket paths
    env = {k: v for k, v in os.environ.items() if k not in (MARKER, "RAY_ADDRESS")}
    env.update(HOME=str(tmp_path), RAY_AUTH_MODE="disabled")
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", f"--port={_free_port()}", "--num-cpus=1"]
    command += ["--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"]
    command += [f"--dashboard-agent-listen-port={_free_port()}"]
    head = subprocess.Popen(command, env=env, start_new_session=True, cwd=tmp_path)
    try:
        assert head.wait(timeout=120) == 0
        yield _session_members(head.pid)
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, signum)
            except ProcessLookupError:
                break
            time.sleep(2)
        subprocess.run(["rm", "-rf", temp], check=False)


@pytest.mark.slow
def test_the_next_local_start_stops_what_a_killed_sweep_left(
    tmp_path: Path, no_ray_address: None, user_cluster: dict[int, int | None]
) -> None:
    assert _running(user_cluster), "the user's head runs"
    sweep_file = tmp_path / "long.toml"
    positions = ", ".join(f'"protocols.{k}.params.positions" = 40000' for k in range(3))
    sweep_file.write_text(
        'name = "long"\nbase = "flash_crash"\nsteps = 120\nseeds = [0, 1, 2, 3]\n'
        f"overrides = {{ {positions} }}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="liqnet-k9-", dir="/tmp")
    command = [sys.executable, "-m", "liqnet.scenarios.cli", "sweep", str(sweep_file)]
    command += ["--out", str(out), "--max-parallel", "1", "--no-progress"]
    driver = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "runs").glob("[!.]*/row.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        instance = _session_members(driver.pid)
        assert len(instance) > 3  # the driver, its GCS, raylet, agents, a worker
        assert not set(orphans()) & set(instance)  # a live driver's instance is left alone
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        left = orphans()
        # Usually the dashboard and runtime-env agents; under load other processes of the
        # killed instance (a worker) may be what is left when we look.
        assert left, "the killed driver's instance left processes behind"

        with ray_connection(num_cpus=1):  # the next sweep or training run starts here
            assert not _running(dict(left)), "the orphans are stopped"
        assert _running(user_cluster) == set(user_cluster), "the user's cluster is untouched"
        assert not orphans()
    finally:
        driver.kill()
        driver.wait()
        for pid in _session_members(driver.pid):  # whatever of its instance is left
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", env["RAY_TMPDIR"]], check=False)
