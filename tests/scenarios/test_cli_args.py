"""Tests of the command line's argument types (:mod:`liqnet.scenarios.cli_args`).

Every value the issue found crashing a command (``--seed -1``, ``--seeds -1``,
``--steps 0``, ``--workers 0``, ``--out`` naming a file) is one error line naming the
flag, with exit status 2, before any run starts or any file is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from liqnet.scenarios import cli_args
from liqnet.scenarios.cli import build_parser, main


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The last line argparse wrote to standard error."""
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "flag", "allowed"),
    [
        (["run", "flash_crash", "--seed", "-1"], "--seed", "[0, 2**63)"),
        (["run", "flash_crash", "--seed", "x"], "--seed", "expected an integer"),
        (["evaluate", "flash_crash", "--policies", "static", "--seeds", "-1"], "--seeds", "[0,"),
        (["evaluate", "flash_crash", "--policies", "static", "--steps", "0"], "--steps", "1"),
        (["train", "baseline", "--steps", "0"], "--steps", "at least 1"),
        (["train", "baseline", "--workers", "0"], "--workers", "at least 1"),
        (["train", "baseline", "--envs", "0"], "--envs", "at least 1"),
        (["train", "baseline", "--horizon", "-3"], "--horizon", "at least 1"),
        (["train", "baseline", "--team-weight", "1.5"], "--team-weight", "[0, 1]"),
        (["train", "baseline", "--revenue-weight", "nan"], "--revenue-weight", "finite"),
        (["train", "baseline", "--config", "missing.json"], "--config", "no such file"),
        (["analyze", "no/such/run"], "result_dir", "no such file"),
    ],
)
def test_bad_values_are_one_error_naming_the_flag(
    argv: list[str], flag: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert f"argument {flag}" in line and allowed in line
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "train", "evaluate", "analyze"])
def test_out_naming_an_existing_file_writes_nothing(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    argv = {
        "run": ["run", "flash_crash"],
        "train": ["train", "baseline", "--no-ray"],
        "evaluate": ["evaluate", "flash_crash", "--policies", "static"],
        "analyze": ["analyze", str(tmp_path)],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(target / "inside")])
    assert exit_info.value.code == 2
    assert "is not a directory" in error_line(capsys)
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(target)])
    assert "exists and is not a directory" in error_line(capsys)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


def test_every_flag_has_help_and_shows_its_default() -> None:
    parser = build_parser()
    subcommands = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    for name, sub in subcommands.items():
        for action in sub._actions:
            assert action.help, f"liqnet {name} {action.option_strings or action.dest}: no help"
    text = subcommands["train"].format_help()
    assert "(default: 100000)" in text and "(default: 0.0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_types_accept_their_bounds() -> None:
    assert cli_args.seed("0") == 0 and cli_args.seed(str(2**63 - 1)) == 2**63 - 1
    with pytest.raises(argparse.ArgumentTypeError):
        cli_args.seed(str(2**63))
    assert cli_args.at_least(1, "n")("1") == 1
    assert cli_args.fraction("0") == 0.0 and cli_args.fraction("1") == 1.0
    assert cli_args.non_negative("0") == 0.0
    with pytest.raises(argparse.ArgumentTypeError):
        cli_args.non_negative("-0.5")
    with pytest.raises(argparse.ArgumentTypeError):
        cli_args.fraction("inf")


def test_run_closing_line_names_every_file_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    out = tmp_path / "crash"
    argv = ["run", "flash_crash", "--set", "steps=40", "--out", str(out)]
    argv += [f"--set=protocols.{i}.params.positions=300" for i in range(3)]
    assert main(argv) == 0
    closing = " ".join(capsys.readouterr().out.split()).split("wrote")[-1]
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 7  # four tables, summary.json, scenario.json, run.png
    assert all(name in closing for name in names)


def test_train_progress_fits_and_never_shows_nan() -> None:
    from liqnet.scenarios.train_command import progress_stats

    row = {"steps_per_s": 1234.5, "mean_return": float("nan"), "entropy": 1.5}
    assert "nan" not in progress_stats(row) and "ret -" in progress_stats(row)
    row["mean_return"] = -0.01234
    assert "ret -0.012" in progress_stats(row)
    # With the bar (16), the count, the clock and the label, the line stays within 80.
    assert len(progress_stats({**row, "steps_per_s": 1e6})) <= 30
