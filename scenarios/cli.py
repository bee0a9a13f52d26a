"""The ``liqnet`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from liqnet.scenarios.loader import ScenarioError, builtin_names, load, parse_override_value
from liqnet.scenarios.run import run


def parse_assignments(items: Sequence[str]) -> dict[str, object]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (values parsed as TOML)."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set {item!r}: expected KEY=VALUE, e.g. steps=48")
        overrides[key.strip()] = parse_override_value(value.strip())
    return overrides


def _summary_table(result) -> Table:
    title = f"{result.scenario.name} (seed {result.seed}, feedback {result.feedback})"
    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.summary.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                table.add_row(escape(f"{key}.{sub}"), _fmt(sub_value))
        else:
            table.add_row(escape(key), _fmt(value))
    return table


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    scenario = load(args.scenario, parse_assignments(args.set))
    result = run(scenario, seed=args.seed, feedback=False if args.no_feedback else None)
    console.print(_summary_table(result))
    out = Path(args.out) if args.out else Path("runs") / f"{scenario.name}-seed{result.seed}"
    result.save(out, figure=not args.no_figure)
    console.print(
        escape(f"wrote {out}/ (timeseries.parquet, events.parquet, summary.json, run.png)")
    )
    return 0


def _cmd_scenarios(args: argparse.Namespace, console: Console) -> int:
    table = Table(title="built-in scenarios")
    table.add_column("name")
    table.add_column("steps", justify="right")
    table.add_column("description")
    for name in builtin_names():
        scenario = load(name)
        table.add_row(escape(name), str(scenario.steps), escape(scenario.description))
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``liqnet`` command."""
    parser = argparse.ArgumentParser(prog="liqnet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a scenario and write its results")
    run_parser.add_argument("scenario", help="built-in name or path to a .toml file")
    run_parser.add_argument("--seed", type=int, default=None)
    run_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override"
    )
    run_parser.add_argument("--out", default=None, help="output directory")
    run_parser.add_argument("--no-feedback", action="store_true", help="counterfactual twin")
    run_parser.add_argument("--no-figure", action="store_true")
    run_parser.set_defaults(handler=_cmd_run)
    list_parser = commands.add_parser("scenarios", help="list the built-in scenarios")
    list_parser.set_defaults(handler=_cmd_scenarios)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liqnet`` console script."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return args.handler(args, console)
    except ScenarioError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
