"""The ``liqnet train`` command: its flags (checked by :mod:`liqnet.scenarios.cli_args`),
a progress line that fits 80 columns, and the checkpoint it writes."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from liqnet.scenarios import cli_args
from liqnet.scenarios.train import ALGOS, REWARDS, SHARING, positions_overrides, train

if TYPE_CHECKING:
    from liqnet.agents.mappo import MAPPO


def add_train_command(commands: argparse._SubParsersAction) -> None:
    """Add ``liqnet train SCENARIO --algo mappo ...`` to the CLI's subcommands."""
    p = commands.add_parser(
        "train",
        help="train learning agents (MAPPO) on a scenario",
        formatter_class=cli_args.HelpFormatter,
    )
    p.add_argument("scenario", help="built-in name, .toml path, or a comma-separated list")
    p.add_argument("--algo", choices=ALGOS, default="mappo", help="learning algorithm")
    p.add_argument(
        "--workers",
        type=cli_args.at_least(1, "the number of workers"),
        default=1,
        help="rollout workers (Ray actors)",
    )
    p.add_argument(
        "--steps",
        type=cli_args.at_least(1, "the number of steps"),
        default=100_000,
        help="environment steps",
    )
    p.add_argument(
        "--out",
        type=cli_args.out_dir,
        default=None,
        help="checkpoint directory (default: runs/train-NAME-seedN)",
    )
    p.add_argument(
        "--seed", type=cli_args.seed, default=None, help="seed (default: config, else 0)"
    )
    p.add_argument("--sharing", choices=SHARING, default=None, help="default: config, shared")
    p.add_argument(
        "--envs",
        type=cli_args.at_least(1, "the number of environments"),
        default=None,
        help="environments (default: config)",
    )
    p.add_argument(
        "--positions",
        type=cli_args.at_least(1, "positions per protocol"),
        default=None,
        help="positions per protocol (default: the scenario's)",
    )
    p.add_argument(
        "--horizon",
        type=cli_args.at_least(1, "the horizon"),
        default=None,
        help="steps per training episode (default: the scenario's)",
    )
    p.add_argument("--reward", choices=REWARDS, default="equity", help="training reward")
    p.add_argument(
        "--revenue-weight",
        type=cli_args.non_negative,
        default=1.0,
        help="revenue weight of --reward system",
    )
    p.add_argument(
        "--team-weight",
        type=cli_args.fraction,
        default=0.0,
        help="share of reward mixed with the team mean, in [0, 1]",
    )
    p.add_argument(
        "--config",
        type=cli_args.existing_path,
        default=None,
        metavar="JSON",
        help="MAPPOConfig fields as a JSON file",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="scenario override"
    )
    p.add_argument("--no-ray", action="store_true", help="roll out in this process")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)"
    )
    p.add_argument(
        "--runtime-env",
        type=cli_args.existing_path,
        default=None,
        metavar="FILE",
        help="Ray runtime_env (JSON/TOML/YAML: working_dir, py_modules, pip) for the workers",
    )
    p.set_defaults(handler=run_train_command)


def run_train_command(args: argparse.Namespace, console: Console) -> int:
    """Handler of ``liqnet train``: trains with a live progress line, writes a checkpoint."""
    from liqnet.agents.mappo import MAPPOConfig
    from liqnet.scenarios.cli import parse_assignments  # the CLI imports this module
    from liqnet.scenarios.ray_connect import load_runtime_env

    overrides: dict[str, object] = {}
    if args.positions:
        overrides.update(positions_overrides(args.positions))
    overrides.update(parse_assignments(args.set))
    try:
        values = _read_config(args.config) if args.config else {}
        values.update({k: v for k in ("seed", "sharing") if (v := getattr(args, k)) is not None})
        if args.envs is not None:
            values["num_envs"] = args.envs
        config = MAPPOConfig.from_dict(values)
    except (TypeError, ValueError) as error:  # one line naming the field, as for scenarios
        console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        return 2
    name = args.scenario.replace(",", "+").replace("/", "_")
    out = Path(args.out) if args.out else Path("runs") / f"train-{name}-seed{config.seed}"
    runtime_env = load_runtime_env(args.runtime_env) if args.runtime_env else None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
    )

    def show(row: dict[str, float], _: MAPPO) -> None:
        progress.update(
            task, completed=min(int(row["env_steps"]), args.steps), stats=progress_stats(row)
        )

    with progress:
        task = progress.add_task(f"{args.algo} {args.scenario}", total=args.steps, stats="")
        result = train(
            args.scenario,
            steps=args.steps,
            workers=args.workers,
            config=config,
            overrides=overrides,
            horizon=args.horizon,
            out=out,
            use_ray=not args.no_ray,
            address=args.address,
            runtime_env=runtime_env,
            on_iteration=show,
            reward=args.reward,
            revenue_weight=args.revenue_weight,
            team_weight=args.team_weight,
        )
    last = result.history[-1]
    console.print(
        escape(
            f"trained {int(last['env_steps']):,} env steps in {result.wall_s:.1f} s; "
            f"mean return {last['mean_return']:+.4f}; wrote {result.checkpoint} "
            f'(use policy "mappo:{out}")'
        )
    )
    return 0


def progress_stats(row: dict[str, float]) -> str:
    """The train progress line's figures, short enough for 80 columns.

    The mean return is over episodes finished so far: before the first one ends there is
    none, shown as "-" rather than nan.
    """
    mean = row["mean_return"]
    shown = f"{mean:+.3f}" if math.isfinite(mean) else "-"
    return f"{row['steps_per_s']:,.0f}/s ret {shown} H {row['entropy']:.2f}"


def _read_config(path: str | Path) -> dict[str, Any]:
    """MAPPOConfig fields from a JSON file (unknown fields are named by ``from_dict``)."""
    try:
        values = json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"--config {path}: cannot read ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--config {path}: not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a JSON object of MAPPOConfig fields")
    return values
