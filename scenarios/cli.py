"""The ``liqnet`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from liqnet.core import __version__
from liqnet.core.errors import InputError
from liqnet.scenarios import cli_args
from liqnet.scenarios.cli_args import HelpFormatter
from liqnet.scenarios.experiment_command import add_experiment_command
from liqnet.scenarios.loader import ScenarioError, builtin_names, load, parse_override_value
from liqnet.scenarios.run import run
from liqnet.scenarios.train_command import add_train_command


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
    console.print(escape(f"wrote {out}/ ({written(out)})"))
    return 0


def written(folder: Path, since: float = 0.0) -> str:
    """The entries of ``folder`` modified at or after ``since`` (a ``time.time()``),
    comma-separated, for a command's closing line."""

    def fresh(path: Path) -> bool:
        if path.is_dir():  # a folder's own time changes only when entries come or go
            return any(fresh(child) for child in path.iterdir())
        return path.stat().st_mtime >= since

    entries = [p for p in folder.iterdir() if fresh(p)]
    return ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in entries))


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


def _cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    # Imported here so that `liqnet run` does not pay for importing Ray.
    from liqnet.scenarios.ray_connect import load_runtime_env
    from liqnet.scenarios.sweep import load_sweep, sweep

    spec = load_sweep(args.sweep, parse_assignments(args.set))
    if args.steps is not None:
        spec = load_sweep({**spec.model_dump(by_alias=True), "steps": args.steps})
    runtime_env = load_runtime_env(args.runtime_env) if args.runtime_env else None
    out = Path(args.out) if args.out else Path("sweeps") / spec.name
    # SIGTERM takes the Ctrl-C path (cancel, write the table, stop Ray), not a native abort:
    # Ray's core installs absl's failure-signal handler, which dumps a stack and aborts on
    # SIGTERM unless told not to (read when this driver connects).
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        df = sweep(
            spec,
            address=args.address,
            out=out,
            max_parallel=args.max_parallel,
            progress=not args.no_progress,
            console=console,
            runtime_env=runtime_env,
            retry_failed=args.retry_failed,
        )
    except KeyboardInterrupt:
        how = "terminated" if _Terminated.seen else "interrupted"
        console.print(escape(f"{how}: finished runs are kept in {out}/; run again to resume"))
        return 128 + signal.SIGTERM if _Terminated.seen else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = df[df["status"] != "done"]
    retried = f", {df.attrs['retried']} retried" if df.attrs.get("retried") else ""
    console.print(
        escape(
            f"{len(df)} runs ({df.attrs['computed']} computed{retried}, {df.attrs['skipped']} "
            f"already done, {len(failed)} failed) -> {out / 'sweep.parquet'}"
        )
    )
    for _, row in failed.head(5).iterrows():
        first = str(row["error"]).strip().splitlines()
        console.print(escape(f"  failed {row['run_id']}: {' '.join(first[:3])}"), highlight=False)
    if len(failed):
        # Failed runs keep their row.json (their error); a plain re-run keeps them as they
        # are, --retry-failed runs them again once the cause is fixed.
        console.print(
            escape(
                f"error: {len(failed)} of {len(df)} runs failed; fix the cause and run "
                "again with --retry-failed"
            ),
            highlight=False,
        )
        return 1
    return 0


class _Terminated:
    """Whether SIGTERM arrived during a sweep (it is delivered as a KeyboardInterrupt)."""

    seen = False


def _raise_terminated(signum: int, frame: object) -> None:
    # A KeyboardInterrupt, not an exception of our own: Ray's blocking calls re-raise it
    # as it is, while any other exception from a signal handler surfaces as a SystemError.
    _Terminated.seen = True
    raise KeyboardInterrupt


def _cmd_analyze(args: argparse.Namespace, console: Console) -> int:
    # Imported here: the analysis stack (matplotlib, networkx) is only needed by this command.
    import pyarrow

    from liqnet.scenarios.analyze import analyze

    start = time.time() - 1.0  # file times may be coarser than the clock
    with console.status(escape(f"analysing {args.result_dir}")) as status:

        def on_twin(done: int) -> None:
            status.update(escape(f"analysing {args.result_dir}: counterfactual twin {done + 1}"))

        try:
            report = analyze(args.result_dir, args.out, twin=not args.no_twin, on_twin=on_twin)
        except (FileNotFoundError, json.JSONDecodeError, pyarrow.ArrowInvalid) as err:
            # A missing, truncated or hand-edited table or summary.json of a saved run.
            console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            return 2
    console.print(escape(f"wrote {report.parent}/ ({written(report.parent, since=start)})"))
    console.print(escape(f"open {report.resolve().as_uri()} in a browser"))
    return 0


def _cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    # Imported here: evaluation builds policies (torch for learned ones) only when asked.
    from liqnet.scenarios.evaluate import evaluate

    scenario = load(args.scenario, parse_assignments(args.set))
    feedback = False if args.no_feedback else None
    total = len(dict.fromkeys(args.policies)) * len(args.seeds)
    with _run_progress(console, f"evaluate {scenario.name}", total, not args.no_progress) as bar:
        result = evaluate(
            scenario,
            args.policies,
            args.seeds,
            steps=args.steps,
            feedback=feedback,
            on_run=bar,
        )
    console.print(result.table())
    out = Path(args.out) if args.out else Path("runs") / f"evaluate-{scenario.name}"
    paths = result.save(out)
    console.print(escape(f"wrote {out}/ ({', '.join(p.name for p in paths)})"))
    return 0


@contextmanager
def _run_progress(
    console: Console, label: str, total: int, enabled: bool
) -> Iterator[Callable[[str], None]]:
    """A progress bar of ``total`` runs; yields the callback that advances it by one run."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        disable=not enabled,
        transient=True,
    )
    task = progress.add_task(label, total=total, last="")

    def advance(what: str) -> None:
        progress.update(task, advance=1, last=what[:30])

    with progress:
        yield advance


def _add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    """``liqnet evaluate SCENARIO --policies SPEC ... --seeds N ...``."""
    parser = commands.add_parser(
        "evaluate",
        help="compare policies on a scenario over seeds (losses, revenue, shortfall)",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("scenario", help="built-in name or path to a .toml file")
    parser.add_argument(
        "--policies",
        nargs="+",
        required=True,
        metavar="SPEC",
        help='a spec for every protocol ("bayesian") or per protocol ("aave=bayesian,dydx=static")',
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=cli_args.seed,
        default=[0, 1, 2],
        metavar="N",
        help="world seeds; every assignment runs on each",
    )
    parser.add_argument(
        "--steps",
        type=cli_args.at_least(1, "the horizon"),
        default=None,
        help="horizon of every run (default: the scenario's)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override"
    )
    parser.add_argument(
        "--out", type=cli_args.out_dir, default=None, help="output directory (runs/evaluate-NAME)"
    )
    parser.add_argument("--no-feedback", action="store_true", help="counterfactual twin")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``liqnet`` command."""
    parser = argparse.ArgumentParser(prog="liqnet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"liqnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run", help="run a scenario and write its results", formatter_class=HelpFormatter
    )
    run_parser.add_argument("scenario", help="built-in name or path to a .toml file")
    run_parser.add_argument(
        "--seed", type=cli_args.seed, default=None, help="world seed (default: the scenario's)"
    )
    run_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override"
    )
    run_parser.add_argument(
        "--out",
        type=cli_args.out_dir,
        default=None,
        help="output directory (default: runs/NAME-seedN)",
    )
    run_parser.add_argument(
        "--no-feedback", action="store_true", help="run the counterfactual twin (no feedback)"
    )
    run_parser.add_argument("--no-figure", action="store_true", help="do not draw run.png")
    run_parser.set_defaults(handler=_cmd_run)
    list_parser = commands.add_parser("scenarios", help="list the built-in scenarios")
    list_parser.set_defaults(handler=_cmd_scenarios)
    analyze_parser = commands.add_parser(
        "analyze",
        help="write report.html for a saved run or a sweep directory",
        formatter_class=HelpFormatter,
    )
    analyze_parser.add_argument(
        "result_dir",
        type=cli_args.existing_path,
        help="a `liqnet run` output or a sweep directory",
    )
    analyze_parser.add_argument(
        "--out", type=cli_args.out_dir, default=None, help="output directory (default: input)"
    )
    analyze_parser.add_argument(
        "--no-twin", action="store_true", help="skip the feedback=False twin (amplification)"
    )
    analyze_parser.set_defaults(handler=_cmd_analyze)
    sweep_parser = commands.add_parser(
        "sweep", help="run a scenario sweep on Ray", formatter_class=HelpFormatter
    )
    sweep_parser.add_argument("sweep", help="built-in sweep name or path to a .toml file")
    sweep_parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)"
    )
    sweep_parser.add_argument(
        "--out", type=cli_args.out_dir, default=None, help="output directory (sweeps/NAME)"
    )
    sweep_parser.add_argument(
        "--max-parallel",
        type=cli_args.at_least(1, "the number of runs at once"),
        default=None,
        metavar="N",
        help="most runs at once (default: every CPU of the Ray instance)",
    )
    sweep_parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override in every run"
    )
    sweep_parser.add_argument(
        "--steps",
        type=cli_args.at_least(1, "the horizon"),
        default=None,
        help="horizon of every run (default: the sweep's)",
    )
    sweep_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep_parser.add_argument(
        "--runtime-env",
        type=cli_args.existing_path,
        default=None,
        metavar="FILE",
        help="Ray runtime_env for the workers (JSON/TOML/YAML: working_dir, py_modules, pip); "
        "merged over the sweep file's [runtime_env] table",
    )
    sweep_parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the runs recorded as failed (default: keep them)",
    )
    sweep_parser.set_defaults(handler=_cmd_sweep)
    add_train_command(commands)
    _add_evaluate_parser(commands)
    add_experiment_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liqnet`` console script."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return args.handler(args, console)
    except InputError as err:  # scenario files, flags, checkpoints: one line, exit 2
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
