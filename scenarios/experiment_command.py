"""``liqnet experiment convergence``: its flags, generated from :class:`ExperimentConfig`.

Every field of the config is a ``--flag`` whose help is the field's docstring (read from
the source, as CleanRL's tyro does), so the command and the dataclass cannot drift apart.
Values are checked by argparse types (exit 2 naming the flag) and then by the config.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import math
import time
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from liqnet.scenarios import cli_args
from liqnet.scenarios.experiment import ExperimentConfig, run_experiment

__all__ = ["add_experiment_command"]

EXPERIMENTS = ("convergence",)


def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after an annotated field)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _items(convert: Any, what: str) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = tuple(convert(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what}, got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one of {what}, got {text!r}")
        return values

    return parse


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _hidden(text: str) -> tuple[int, ...]:
    sizes = tuple(int(p) for p in text.split("x"))
    if not all(1 <= s <= 4096 for s in sizes):
        raise ValueError(text)
    return sizes


_TYPES: dict[str, Any] = {
    "int": cli_args.at_least(1, "a positive integer"),
    "float": cli_args.non_negative,
    "str": str,
    "str | None": str,
    "tuple[float, ...]": _items(_finite, "numbers"),
    "tuple[int, ...]": _items(int, "integers"),
    "tuple[str, ...]": _items(str, "names"),
    "tuple[tuple[int, ...], ...]": _items(_hidden, "hidden sizes such as 64x64"),
}


def add_experiment_command(commands: argparse._SubParsersAction) -> None:
    """Add ``liqnet experiment convergence --flag ...`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "experiment",
        help="run a built-in experiment (convergence: does model convergence amplify shocks?)",
        formatter_class=cli_args.HelpFormatter,
    )
    parser.add_argument("name", choices=EXPERIMENTS, help="the experiment")
    parser.add_argument(
        "--out", type=cli_args.out_dir, default=None, help="output directory (experiments/NAME)"
    )
    docs = _field_docs(ExperimentConfig)
    for f in fields(ExperimentConfig):
        if f.name == "extra":
            parser.add_argument(
                "--set", action="append", default=[], metavar="KEY=VALUE", help=docs[f.name]
            )
            continue
        default = f.default if f.default is not MISSING else None
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_TYPES[str(f.type)],
            default=default,
            help=docs.get(f.name, ""),
        )
    parser.set_defaults(handler=_cmd_experiment)


def _cmd_experiment(args: argparse.Namespace, console: Console) -> int:
    from liqnet.scenarios.cli import parse_assignments

    values = {f.name: getattr(args, f.name) for f in fields(ExperimentConfig) if f.name != "extra"}
    try:
        config = ExperimentConfig(**values, extra=parse_assignments(args.set))
    except ValueError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        return 2
    out = args.out or Path("experiments") / args.name
    start = time.perf_counter()

    def progress(text: str) -> None:
        console.print(f"[dim]{time.perf_counter() - start:6.0f} s[/dim] {escape(text)}")

    report = run_experiment(config, out, on_progress=progress)
    console.print(f"wrote {report} ({time.perf_counter() - start:.0f} s)")
    return 0
