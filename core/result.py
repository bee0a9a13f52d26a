"""RunResult: everything a run produced, and its files on disk (save and load)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pydantic

from liqnet.core.errors import ScenarioError
from liqnet.core.io import atomic_write
from liqnet.core.schema import Scenario, format_errors

EVENT_COLUMNS: tuple[str, ...] = (
    "step",
    "round",
    "kind",
    "protocol",
    "book",
    "asset",
    "position",
    "repaid_usd",
    "seized_units",
    "proceeds_usd",
    "reward_usd",
    "bad_debt_usd",
    "oracle_price",
)
"""Columns of the event log (one row per liquidation, hedge trade or other forced action)."""

CREDIT_EVENT_COLUMNS: tuple[str, ...] = (
    "step",
    "kind",
    "line",
    "lender",
    "borrower",
    "amount_usd",
    "rate",
)
"""Columns of the credit-line history; ``kind`` is open, repay, rollover, default (the
written-off part) or recovery (cash collected from a defaulted borrower)."""

SAVED_TABLES: tuple[str, ...] = (
    "timeseries.parquet",
    "events.parquet",
    "credit.parquet",
    "credit_lines.parquet",
)
"""The tables :meth:`RunResult.save` writes (beside ``summary.json``, ``scenario.json``)."""


class Runner(Protocol):
    """Runs a scenario to its horizon (``liqnet.scenarios.run``); handed to analysis
    functions that need a counterfactual twin, so analysis never imports the runner."""

    def __call__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        feedback: bool | None = None,
        steps: int | None = None,
    ) -> RunResult:
        """Run ``scenario`` (seed, feedback switch and horizon overridden if given)."""
        ...


@dataclass
class RunResult:
    """Everything a run produced.

    Attributes:
        scenario: The validated scenario that ran.
        seed: The seed used.
        feedback: Whether price impact and loss passing were on.
        timeseries: One row per step (and the initial state), from Mesa's DataCollector.
        events: Every liquidation, with its step and cascade round.
        summary: Headline figures (see :func:`liqnet.scenarios.run.summarise`).
        defaults: Each default with its step and cause.
        credit: Every credit-line event (open, repay, rollover, default, recovery).
        credit_lines: Credit lines still open at the end.
        protocol_types: Registered type of each protocol, by id.
    """

    scenario: Scenario
    seed: int
    feedback: bool
    timeseries: pd.DataFrame
    events: pd.DataFrame
    summary: dict[str, Any]
    defaults: list[dict[str, Any]] = field(default_factory=list)
    credit: pd.DataFrame = field(default_factory=pd.DataFrame)
    credit_lines: pd.DataFrame = field(default_factory=pd.DataFrame)
    protocol_types: dict[str, str] = field(default_factory=dict)

    def save(self, out_dir: str | Path, figure: bool = True) -> Path:
        """Write the tables, ``summary.json``, ``scenario.json`` (and ``run.png``).

        Files are written to temporary names and renamed, so an interrupted save never
        leaves a half-written file under a final name.
        """
        payload = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "feedback": self.feedback,
            "summary": self.summary,
            "defaults": self.defaults,
            "protocol_types": self.protocol_types,
        }
        # Strict JSON: NaN or Infinity is not JSON (and a world that produced one is a
        # bug); checked before anything is written, so no partial run directory is left.
        try:
            text = json.dumps(payload, indent=2, default=float, allow_nan=False)
        except ValueError:
            bad = _non_finite(payload)
            raise ValueError(f"summary.json would hold non-finite values at {bad}") from None
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        frames = (self.timeseries, self.events, self.credit, self.credit_lines)
        for name, frame in zip(SAVED_TABLES, frames, strict=True):
            atomic_write(out / name, frame.to_parquet)
        atomic_write(out / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
        scenario_json = self.scenario.model_dump_json(indent=2, by_alias=True)
        atomic_write(out / "scenario.json", lambda p: p.write_text(scenario_json))
        if figure:
            # Looked up at call time so the figure can be swapped (tests break it on purpose).
            from liqnet.core import figures

            atomic_write(out / "run.png", lambda p: figures.plot_run(self, p))
        return out

    @classmethod
    def load(cls, result_dir: str | Path) -> RunResult:
        """Rebuild the result that :meth:`save` wrote to ``result_dir``.

        The scenario is re-validated from ``scenario.json`` against the schema, so a saved
        run with overrides comes back exactly as it ran. ``events``, ``credit`` and
        ``credit_lines`` are optional (empty tables when absent, as for runs saved before
        they existed).

        Raises:
            FileNotFoundError: The directory, ``timeseries.parquet``, ``summary.json`` or
                ``scenario.json`` is missing (the message names the file).
            ScenarioError: ``scenario.json`` is not a valid scenario.
        """
        root = Path(result_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{str(root)!r} is not a directory")
        for name in ("timeseries.parquet", "summary.json", "scenario.json"):
            if not (root / name).is_file():
                raise FileNotFoundError(f"{str(root)!r} has no {name}: not a saved run directory")
        payload = json.loads((root / "summary.json").read_text(encoding="utf-8"))
        raw = json.loads((root / "scenario.json").read_text(encoding="utf-8"))
        try:
            scenario = Scenario.model_validate(raw)
        except pydantic.ValidationError as err:
            raise ScenarioError(format_errors(str(root / "scenario.json"), err)) from None

        def table(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
            path = root / name
            return pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=list(columns))

        return cls(
            scenario=scenario,
            seed=int(payload["seed"]),
            feedback=bool(payload["feedback"]),
            timeseries=pd.read_parquet(root / "timeseries.parquet"),
            events=table("events.parquet", EVENT_COLUMNS),
            summary=dict(payload.get("summary", {})),
            defaults=list(payload.get("defaults", [])),
            credit=table("credit.parquet", CREDIT_EVENT_COLUMNS),
            credit_lines=table("credit_lines.parquet", ()),
            protocol_types=dict(payload.get("protocol_types", {})),
        )


def _non_finite(value: object, where: str = "") -> list[str]:
    """Dotted paths of the NaN and infinite numbers in a nested payload (the first 5)."""
    if isinstance(value, dict):
        found = [p for k, v in value.items() for p in _non_finite(v, f"{where}{k}.")]
        return found[:5]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    return [] if math.isfinite(number) else [where.rstrip(".")]
