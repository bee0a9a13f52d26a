"""Where credit lines open, and how learned policies negotiate (issue 16's measurements).

Two parts, each printing one line per case and writing JSON:

* ``lines``: every named built-in at full size under its default policies (the treasury
  rule), per seed: lines opened, USD opened, defaults, lenders' credit losses and the
  lender -> borrower pairs;
* ``learned NAME CHECKPOINT``: on held-out seeds, losses and unmet withdrawals of the
  static rule and of a MAPPO checkpoint with negotiation on and off
  (``liqnet.scenarios.evaluate``), then the checkpoint's credit levers, lines and
  amount-weighted rate against the rule's.

    python benchmarks/negotiation_census.py lines --seeds 100 101 102 103 104
    python benchmarks/negotiation_census.py learned bank_run benchmarks/results/mappo/bank_run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from liqnet.agents.checkpoint import MAPPOPolicy
from liqnet.core.result import RunResult
from liqnet.scenarios import load, run
from liqnet.scenarios.evaluate import evaluate
from liqnet.scenarios.policies import run_with_policies

STRESS = "flash_crash,vol_regime,bank_run,credit_crunch,vol_crush,black_thursday,ecosystem"
HELD_OUT = list(range(2_000_000_000, 2_000_000_010))


def credit_terms(result: RunResult) -> dict[str, Any]:
    """Lines opened in a run, their USD, amount-weighted rate and lender -> borrower pairs."""
    opened = result.credit[result.credit["kind"] == "open"]
    usd = float(opened["amount_usd"].sum())
    rate = float(np.average(opened["rate"], weights=opened["amount_usd"])) if usd > 0 else None
    pairs = sorted({f"{a}->{b}" for a, b in zip(opened["lender"], opened["borrower"], strict=True)})
    return {"lines": len(opened), "opened_usd": usd, "rate": rate, "pairs": pairs}


def lines(names: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """Part 1: lines under the default policies, per world and seed."""
    rows = []
    for name in names:
        for seed in seeds:
            result = run(name, seed=seed)
            row = {"scenario": name, "seed": seed, **credit_terms(result)}
            row["defaults"] = result.summary["defaults"]
            row["credit_losses_usd"] = result.summary["credit_losses_total_usd"]
            print(
                f"{name:15s} seed {seed}: {row['lines']:3d} lines, "
                f"{row['opened_usd'] / 1e6:7.2f} M USD, {row['defaults']} defaults, "
                f"credit losses {row['credit_losses_usd'] / 1e6:.2f} M; {row['pairs'][:4]}"
            )
            rows.append(row)
    return rows


def learned(name: str, checkpoint: str, seeds: list[int]) -> dict[str, Any]:
    """Part 2: a checkpoint against the rule, negotiation on and off, and its credit use."""
    report: dict[str, Any] = {"scenario": name, "checkpoint": checkpoint, "seeds": seeds}
    scenario = load(name)
    for label, world in (("on", scenario), ("off", load(name, {"negotiation.enabled": False}))):
        runs = evaluate(world, ["static", f"mappo:{checkpoint}"], seeds).runs
        for policy, group in runs.groupby("policies"):
            means = {c: float(group[c].mean()) for c in ("losses_usd", "liquidity_shortfall_usd")}
            report[f"negotiation_{label}.{policy}"] = means
            print(f"{name} negotiation {label:3s} {policy:45s} {means}")
    ids = [p.id for p in scenario.protocols]
    levers: dict[str, list[np.ndarray]] = {k: [] for k in ("lend", "borrow")}
    terms: dict[str, list[dict[str, Any]]] = {"learned": [], "rule": []}
    for seed in seeds:
        policy = MAPPOPolicy.load(checkpoint)
        result = run_with_policies(scenario, seed, policies=dict.fromkeys(ids, policy))
        for lever, values in levers.items():
            values += [result.timeseries[f"{p}.lever.{lever}"].to_numpy() for p in ids]
        terms["learned"].append(credit_terms(result))
        terms["rule"].append(credit_terms(run(scenario, seed=seed)))
    for lever, values in levers.items():
        stacked = np.concatenate(values)
        report[f"{lever}_lever"] = {
            "mean": float(stacked.mean()),
            "share_no_order": float((stacked <= -0.9).mean()),
            "share_above_half": float((stacked >= 0.5).mean()),
        }
    for who, rows in terms.items():
        rates = [r["rate"] for r in rows if r["rate"] is not None]
        report[who] = {
            "lines_per_run": float(np.mean([r["lines"] for r in rows])),
            "opened_usd_per_run": float(np.mean([r["opened_usd"] for r in rows])),
            "mean_rate": float(np.mean(rates)) if rates else None,
        }
    print(json.dumps({k: report[k] for k in ("lend_lever", "borrow_lever", "learned", "rule")}))
    return report


def main() -> None:
    """Parse the part to run, run it and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    census = parts.add_parser("lines", help="lines under the default policies")
    census.add_argument("--scenarios", default=STRESS, help="comma-separated built-ins")
    census.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    census.add_argument("--out", default="benchmarks/results/negotiation_lines.json")
    trained = parts.add_parser("learned", help="a MAPPO checkpoint against the rule")
    trained.add_argument("scenario")
    trained.add_argument("checkpoint")
    trained.add_argument("--seeds", type=int, nargs="+", default=HELD_OUT)
    trained.add_argument("--out", default=None, help="JSON path (default: none written)")
    args = parser.parse_args()
    if args.part == "lines":
        result: Any = lines(args.scenarios.split(","), args.seeds)
    else:
        result = learned(args.scenario, args.checkpoint, args.seeds)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
