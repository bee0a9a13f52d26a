"""The README's cluster commands, run as written against a real two-node Ray cluster.

The test takes the ``bash`` block under ``<!-- cluster-commands ... -->`` in README.md and
runs it verbatim in ``bash`` on loopback: token auth as Ray 2.60 documents it, a head
(``ray start --head``) and a worker node (``ray start --address``), then ``liqnet train
--workers 2`` and ``liqnet sweep`` through ``RAY_ADDRESS``. What one machine needs to act
as several is a prelude, not an edit of the commands: ``$HEAD`` and ``$NODE`` are
127.0.0.1 (the project's CI rule: loopback only), the README's port is replaced by a free
one, ``HOME`` is a fresh folder (so ``~/.ray/auth_token`` is the test's own), each
``ray start`` runs in a folder of its own (nodes do not see the driver's files) with
``--temp-dir``, one CPU and no dashboard, and ``liqnet train``/``sweep`` get small sizes
(the sweep of ``shock_grid`` is swapped for a two-run sweep of the same kind).

Everything runs in one new process session; teardown kills that process group (the
head's and the node's Ray daemons stay in it; their workers exit with their raylet), so
no other Ray on the machine is touched (``ray stop`` would stop them all).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
README_PORT = "6379"
TRAIN_SIZES = "--steps 24 --envs 2 --horizon 12 --positions 100 --config $SMALL_CONFIG"
SWEEP_SIZES = "--no-progress"

# `ray` and `liqnet` wrap the real commands (`command ray ...`) with what one machine
# needs to act as a head, a worker node and a driver at once.
PRELUDE = """
set -euo pipefail
HEAD=127.0.0.1
NODE=127.0.0.1
ray() {
    if [ "$1" = start ]; then
        local where=node
        for arg in "$@"; do [ "$arg" = --head ] && where=head; done
        local extra=(--temp-dir="$RAY_TEMP" --num-cpus=1 --disable-usage-stats
                     --dashboard-agent-listen-port="$(free_port)")
        [ "$where" = head ] && extra+=(--include-dashboard=false)
        mkdir -p "$NODES/$where"
        (cd "$NODES/$where" && command ray "$@" "${extra[@]}")
    else
        command ray "$@"
    fi
}
liqnet() {
    local args=()
    for arg in "$@"; do
        [ "$arg" = shock_grid ] && arg="$SMALL_SWEEP"
        args+=("$arg")
    done
    case "$1" in
        train) command liqnet "${args[@]}" __TRAIN__ ;;
        sweep) command liqnet "${args[@]}" __SWEEP__ ;;
        *) command liqnet "${args[@]}" ;;
    esac
}
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
"""


def readme_commands() -> str:
    """The README's cluster block (the lines a user types)."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- cluster-commands[^>]*-->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert found, "README.md lost its cluster-commands block"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_sweep(folder: Path) -> Path:
    """Two runs of flash_crash, one per policy mix; "trained" uses the relative
    checkpoint the README's train command writes, so it reaches the workers only through
    the runtime_env's working_dir."""
    positions = ", ".join(f'"protocols.{k}.params.positions" = 100' for k in range(3))
    path = folder / "small_sweep.toml"
    path.write_text(
        'name = "small"\nbase = "flash_crash"\nsteps = 12\nseeds = [0]\n'
        f"overrides = {{ {positions} }}\n"
        '[[policy_mixes]]\nname = "standing"\nset = {}\n'
        '[[policy_mixes]]\nname = "trained"\nset = { "protocols.1.policy" = "mappo:runs/mappo" }\n',
        encoding="utf-8",
    )
    return path


def kill_group(pgid: int) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture
def cluster_dirs() -> Iterator[Path]:
    # Short path: Ray's socket paths live under the temp dir and must stay < 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="lqc-", dir="/tmp"))
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.mark.slow
def test_readme_cluster_commands(cluster_dirs: Path) -> None:
    root = cluster_dirs
    project, home, nodes, temp = root / "project", root / "home", root / "nodes", root / "ray"
    for folder in (project, home, nodes):
        folder.mkdir()
    config = project / "mappo_small.json"
    config.write_text(json.dumps({"hidden_sizes": [8], "rollout_steps": 12, "num_envs": 2}))
    port = str(free_port())
    commands = readme_commands().replace(README_PORT, port)
    prelude = PRELUDE.replace("__TRAIN__", TRAIN_SIZES).replace("__SWEEP__", SWEEP_SIZES)
    bin_dir = str(Path(sys.executable).parent)  # the venv's `ray` and `liqnet`
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHON=sys.executable,
        RAY_TEMP=str(temp),
        NODES=str(nodes),
        SMALL_SWEEP=str(small_sweep(project)),
        SMALL_CONFIG=str(config),
        RAY_USAGE_STATS_ENABLED="0",
        COLUMNS="100",
    )
    # After the README's block: the same sweep without the runtime_env must be refused
    # at submission (the workers cannot see runs/mappo), not fail run by run. It runs with
    # RAY_AUTH_MODE unset, as in the issue: the token in ~/.ray/auth_token is used, as
    # `ray start` uses it, or the driver could not join the token-auth head at all.
    after = (
        "\nset +e\n"
        "env -u RAY_AUTH_MODE liqnet sweep $SMALL_SWEEP --out sweeps/no_env --no-progress "
        "> no_env.txt 2>&1\n"
        "echo $? > no_env.rc\n"
    )
    script = prelude + commands + after
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the teardown's handle
    )
    try:
        output, _ = proc.communicate(timeout=540)
    finally:
        kill_group(proc.pid)
    assert proc.returncode == 0, output[-6000:]

    # Token auth was on: the head read the token the README generated.
    assert (home / ".ray" / "auth_token").is_file()
    assert "trained" in output and (project / "runs" / "mappo" / "model.pt").is_file()
    df = pd.read_parquet(project / "sweeps" / "shock_grid" / "sweep.parquet")
    assert len(df) == 2 and (df["status"] == "done").all(), df["error"].tolist()
    assert set(df["policy_mix"]) == {"standing", "trained"}
    assert "2 runs (2 computed, 0 already done, 0 failed)" in " ".join(output.split())

    refused = (project / "no_env.txt").read_text(encoding="utf-8")
    assert (project / "no_env.rc").read_text().strip() == "2", refused
    assert "fail on the Ray workers" in refused and "runtime_env" in refused
    assert "runs/mappo" in refused
    assert not list((project / "sweeps" / "no_env" / "runs").iterdir())
