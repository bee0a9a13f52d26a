"""Machine instructions per world step, counted by valgrind: a speed figure load does not move.

The wall-clock ratios of ``world_throughput.py`` move by 1.2x between runs of the same
code on a shared machine, which hides any change worth less than that. Callgrind counts
the instructions the CPU runs instead: the same code and seed give the same count
within ~0.1%, whatever else the machine is doing, so a before/after comparison of one
commit needs one run of each, not a dozen paired blocks.

It builds ``world_throughput.protocols_world(1)`` (baseline, 3 protocols) and
``protocols_world(copies)`` (36 by default), steps each ``--warmup`` steps uninstrumented,
then switches counting on (``callgrind_control -i on``) for ``--steps`` steps and exits
without tearing the interpreter down, so imports, construction and shutdown are not
counted. The two worlds run as two processes at once (a count does not depend on load).

An instruction is not a fixed time (NumPy's inner loops run more of them per cycle than
the interpreter does), so the 36 / 3 ratio of counts runs above the wall-clock ratio
(8.7 against about 6.3 at the end of stop 34); it is for comparing code, while the
issue's bar stays the wall-clock ratio. Needs ``valgrind`` (Debian package) on PATH;
without it the script says so and exits 2.

    python benchmarks/instruction_counts.py [--steps 100] [--copies 12] [--out ...]
"""

from __future__ import annotations

import os

# One core: pin BLAS/OpenMP threads before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _child(copies: int, warmup: int, steps: int, signals: Path) -> None:
    """Build and warm the world, wait for counting to be switched on, step, exit."""
    sys.path.insert(0, str(HERE))
    from world_throughput import protocols_world

    model = protocols_world(copies)
    for _ in range(warmup):
        model.step()
    (signals / "ready").touch()
    while not (signals / "go").exists():
        time.sleep(0.02)
    for _ in range(steps):
        model.step()
    os._exit(0)  # no interpreter teardown: it would be counted


def _start(copies: int, warmup: int, steps: int, workdir: Path) -> tuple[subprocess.Popen, Path]:
    signals = workdir / f"copies{copies}"
    signals.mkdir()
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={signals / 'callgrind.out'}",
        sys.executable,
        __file__,
        "--child",
        str(copies),
        str(warmup),
        str(steps),
        str(signals),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # string hashing: the same per run
    log = (signals / "valgrind.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), signals


def _count(process: subprocess.Popen, signals: Path, steps: int) -> float:
    """Switch counting on once the world is warm; instructions per step."""
    while not (signals / "ready").exists():
        if process.poll() is not None:
            raise RuntimeError((signals / "valgrind.log").read_text()[-2000:])
        time.sleep(0.2)
    subprocess.run(
        ["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True
    )
    (signals / "go").touch()
    if process.wait() != 0:
        raise RuntimeError((signals / "valgrind.log").read_text()[-2000:])
    match = _COLLECTED.search((signals / "valgrind.log").read_text())
    if match is None:
        raise RuntimeError("callgrind printed no instruction count")
    return int(match.group(1)) / steps


def main() -> None:
    """Count both worlds, print the counts and their ratio, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="counted steps per world")
    parser.add_argument("--warmup", type=int, default=30, help="uncounted steps first")
    parser.add_argument("--copies", type=int, default=12, help="copies of baseline's specs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "instruction_counts.json")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instruction_counts.py needs valgrind (Debian package 'valgrind') on PATH")
        raise SystemExit(2)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {c: _start(c, args.warmup, args.steps, Path(tmp)) for c in (1, args.copies)}
        counts = {c: _count(p, s, args.steps) for c, (p, s) in runs.items()}
    small, large = counts[1], counts[args.copies]
    added = (large - small) / (3 * (args.copies - 1))
    ratio = large / small
    print(f"instructions per step, {args.steps} steps after {args.warmup} uncounted:")
    print(f"  3 protocols:   {small / 1e6:8.3f} M")
    print(f"  {3 * args.copies} protocols: {large / 1e6:8.3f} M")
    print(f"  per added protocol: {added / 1e3:.0f} k;  {3 * args.copies} / 3 ratio: {ratio:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "steps": args.steps,
        "warmup": args.warmup,
        "instructions_per_step": {str(3 * c): n for c, n in counts.items()},
        "per_added_protocol": added,
        "ratio": ratio,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
