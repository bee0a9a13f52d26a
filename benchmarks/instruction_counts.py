"""Machine instructions per world step, counted by valgrind: a speed figure load does not move.

The wall-clock ratios of ``world_throughput.py`` move by 1.2x between runs of the same
code on a shared machine, which hides any change worth less than that. Callgrind counts
the instructions the CPU runs instead: the same code and seed give the same count
within ~0.1% run to run, whatever else the machine is doing, and within ~0.5% between
the working tree and the same code loaded by ``--against`` (module paths differ), so
a before/after comparison needs one run of each side, not a dozen paired blocks; a
change under ~0.5% is not resolved.

It builds ``world_throughput.protocols_world(1)`` (baseline, 3 protocols) and
``protocols_world(copies)`` (36 by default), steps each ``--warmup`` steps uninstrumented,
then switches counting on (``callgrind_control -i on``) for ``--steps`` steps and exits
without tearing the interpreter down, so imports, construction and shutdown are not
counted. The two worlds run as two processes at once (a count does not depend on load).

An instruction is not a fixed time (NumPy's inner loops run more of them per cycle than
the interpreter does), so the 36 / 3 ratio of counts runs above the wall-clock ratio
(8.7 against about 6.3 at the end of stop 34); it is for comparing code, while the
issue's bar stays the wall-clock ratio.

``--against REV`` counts the same two worlds on the code of git revision ``REV`` too
(its packages extracted to a temporary directory and put first on ``PYTHONPATH``; the
worlds are built by this checkout's ``world_throughput.py``) and prints the change. Needs
``valgrind`` (Debian package) on PATH; without it the script says so and exits 2.

    python benchmarks/instruction_counts.py [--steps 100] [--copies 12] [--against REV]
        [--out ...]
"""

from __future__ import annotations

import os

# One core: pin BLAS/OpenMP threads before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _child(copies: int, warmup: int, steps: int, signals: Path) -> None:
    """Build and warm the world, wait for counting to be switched on, step, exit."""
    sys.path.insert(0, str(HERE))
    from world_throughput import protocols_world

    model = protocols_world(copies)
    for _ in range(warmup):
        model.step()
    # Objects alive now (the imports' and the world's) leave the collector's view: else a
    # full collection's cost depends on what else was imported, not on the code measured.
    gc.collect()
    gc.freeze()
    (signals / "ready").touch()
    while not (signals / "go").exists():
        time.sleep(0.02)
    for _ in range(steps):
        model.step()
    os._exit(0)  # no interpreter teardown: it would be counted


def _package_of(rev: str, workdir: Path) -> Path:
    """A directory holding revision ``rev``'s ``liqnet`` package (for ``PYTHONPATH``)."""
    source, shim = workdir / "source", workdir / "path"
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    # The revision's own package layout (setuptools package-dir): liqnet's __init__ from
    # one directory, each top-level subpackage from another.
    layout = tomllib.loads((source / "pyproject.toml").read_text())
    package_dir = layout["tool"]["setuptools"]["package-dir"]
    package = shim / "liqnet"
    package.mkdir(parents=True)
    shutil.copy(source / package_dir["liqnet"] / "__init__.py", package / "__init__.py")
    for name, directory in package_dir.items():
        if name.count(".") == 1:  # liqnet.core, liqnet.market, ...: nested ones come along
            (package / name.split(".")[1]).symlink_to(source / directory)
    return shim


def _start(
    copies: int, warmup: int, steps: int, workdir: Path, path: Path | None = None
) -> tuple[subprocess.Popen, Path]:
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
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(path), env.get("PYTHONPATH"))))
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


def _counts(args: argparse.Namespace, workdir: Path, path: Path | None) -> dict[int, float]:
    """Instructions per step of both worlds (3 protocols, and ``args.copies`` times that)."""
    workdir.mkdir(parents=True)
    runs = {c: _start(c, args.warmup, args.steps, workdir, path) for c in (1, args.copies)}
    return {c: _count(p, s, args.steps) for c, (p, s) in runs.items()}


def _summary(counts: dict[int, float], copies: int) -> dict[str, Any]:
    small, large = counts[1], counts[copies]
    return {
        "instructions_per_step": {str(3 * c): n for c, n in counts.items()},
        "per_added_protocol": (large - small) / (3 * (copies - 1)),
        "ratio": large / small,
    }


def main() -> None:
    """Count both worlds (and on ``--against``'s code), print the counts, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="counted steps per world")
    parser.add_argument("--warmup", type=int, default=30, help="uncounted steps first")
    parser.add_argument("--copies", type=int, default=12, help="copies of baseline's specs")
    parser.add_argument("--against", metavar="REV", help="also count git revision REV")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "instruction_counts.json")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instruction_counts.py needs valgrind (Debian package 'valgrind') on PATH")
        raise SystemExit(2)
    results: dict[str, Any] = {"steps": args.steps, "warmup": args.warmup}
    with tempfile.TemporaryDirectory() as tmp:
        if args.against:
            path = _package_of(args.against, Path(tmp) / "against")
            results["against"] = {"rev": args.against} | _summary(
                _counts(args, Path(tmp) / "against" / "runs", path), args.copies
            )
        results["this"] = _summary(_counts(args, Path(tmp) / "this", None), args.copies)
    n = 3 * args.copies
    print(f"instructions per step, {args.steps} steps after {args.warmup} uncounted:")
    print(f"{'code':>14} {'3 protocols':>12} {f'{n} protocols':>13} {'per added':>10} {'ratio':>7}")
    for row in (results.get("against"), results["this"]):
        if row is None:
            continue
        per_step = row["instructions_per_step"]
        name = row.get("rev", "working tree")[:14]
        print(
            f"{name:>14} {per_step['3'] / 1e6:11.3f}M {per_step[str(n)] / 1e6:12.3f}M "
            f"{row['per_added_protocol'] / 1e3:9.0f}k {row['ratio']:7.3f}"
        )
    if "against" in results:
        before, after = results["against"], results["this"]
        for key in ("3", str(n)):
            change = after["instructions_per_step"][key] / before["instructions_per_step"][key] - 1
            print(f"  {key} protocols: {100 * change:+.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
