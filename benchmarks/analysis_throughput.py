"""Throughput of the contagion measures: vectorised code vs plain-Python references.

For each size n it builds a seeded random credit graph (``n`` nodes, ``5 n`` directed
credit edges, so the average out-degree is 5) and times, per call (median of repeats):

* DebtRank: ``liqnet.analysis.debtrank.debtrank`` vs ``debtrank_reference``;
* Eisenberg-Noe clearing: ``eisenberg_noe_sparse`` (fictitious default, sparse LU) and,
  up to ``--en-max-size``, the dense ``eisenberg_noe``, vs a plain-Python Picard
  iteration over the edge list written below.

A reference whose single call is predicted to exceed ``--reference-budget`` seconds
(extrapolated from the previous size) is skipped and the table says so.

Usage::

    .venv/bin/python benchmarks/analysis_throughput.py --sizes 100 1000 10000 \
        --out benchmarks/results/analysis_throughput.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from scipy import sparse

from liqnet.analysis.debtrank import _validate, debtrank, debtrank_reference
from liqnet.market.clearing import eisenberg_noe_sparse

AVG_OUT_DEGREE = 5
SHOCKED_SHARE = 0.01  # share of nodes defaulted at t = 1
EN_SHOCKED_SHARE = 0.05  # share of nodes whose external assets drop by 80%


def build_credit_graph(n: int, seed: int) -> nx.DiGraph:
    """Random credit graph: lognormal exposures, lenders levered ~2x on their loans."""
    rng = np.random.default_rng(seed)
    graph = nx.gnm_random_graph(n, AVG_OUT_DEGREE * n, seed=seed, directed=True)
    weights = rng.lognormal(0.0, 1.0, graph.number_of_edges())
    for (lender, borrower), exposure in zip(graph.edges, weights, strict=True):
        graph.edges[lender, borrower].update(weight=float(exposure), channel="credit")
    lent = dict(graph.out_degree(weight="weight"))
    for node in graph.nodes:
        # Equity of half the loan book: a lender loses it all when its debtors lose half.
        graph.nodes[node]["equity"] = 0.5 * lent[node] + 1.0
        graph.nodes[node]["value"] = float(rng.lognormal(0.0, 1.0))
    return graph


def clearing_inputs(
    graph: nx.DiGraph, seed: int
) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
    """Sparse liabilities (``L[i, j]`` = what i owes j), external assets and debts."""
    n = graph.number_of_nodes()
    rng = np.random.default_rng(seed + 1)
    lenders, borrowers, exposures = zip(*graph.edges(data="weight"), strict=True)
    # The borrower owes its lender the exposure.
    L = sparse.csr_array((exposures, (borrowers, lenders)), shape=(n, n))
    owed, claims = np.asarray(L.sum(axis=1)).ravel(), np.asarray(L.sum(axis=0)).ravel()
    external_liabilities = rng.uniform(0.0, 1.0, n) * owed
    # Solvent before the shock: external assets cover senior debt plus the net network
    # position with a 10-30% buffer; then a few nodes lose 80% of external assets.
    buffer = rng.uniform(0.1, 0.3, n) * owed
    external_assets = external_liabilities + np.maximum(owed - claims, 0.0) + buffer
    hit = rng.choice(n, size=max(1, int(EN_SHOCKED_SHARE * n)), replace=False)
    external_assets[hit] *= 0.2
    return L, external_assets, external_liabilities


def eisenberg_noe_reference(
    liabilities: sparse.csr_array,
    external_assets: np.ndarray,
    external_liabilities: np.ndarray,
    tol: float = 1e-10,
    max_iterations: int = 100_000,
) -> tuple[list[float], int]:
    """Plain-Python Picard iteration of the Eisenberg-Noe clearing map.

    ``p <- min(p_bar, max(0, a + Pi^T p))`` started from ``p = p_bar`` decreases
    monotonically to the greatest clearing vector (Eisenberg & Noe 2001, Theorem 2),
    the same one the fictitious-default algorithm finds.

    Args:
        liabilities: ``L[i, j]`` = what i owes j (CSR: only the nonzero claims are read).
        external_assets: Assets outside the network, per node.
        external_liabilities: Senior external debt, paid first, per node.
        tol: Stop when no payment moves by more than ``tol`` times the largest obligation.
        max_iterations: Safety cap on Picard steps.

    Returns:
        The clearing payments and the number of Picard steps.
    """
    indptr, indices, data = (x.tolist() for x in (liabilities.indptr, liabilities.indices,
                                                    liabilities.data))  # fmt: skip
    n = len(indptr) - 1
    rows = [list(zip(indices[indptr[i] : indptr[i + 1]], data[indptr[i] : indptr[i + 1]],
                     strict=True)) for i in range(n)]  # fmt: skip
    owed = [sum(x for _, x in row) for row in rows]
    # Creditor lists (j, share of i's obligations): the map only touches nonzero claims.
    shares = [[(j, x / owed[i]) for j, x in row if x > 0.0] for i, row in enumerate(rows)]
    # Senior external debt is netted against everything the node has (receipts too).
    available = [a - d for a, d in zip(external_assets, external_liabilities, strict=True)]
    payments = list(owed)
    scale = tol * max([*owed, 1.0])
    for step in range(1, max_iterations + 1):
        received = [0.0] * n
        for i in range(n):
            for j, share in shares[i]:
                received[j] += share * payments[i]
        new = [min(owed[i], max(0.0, available[i] + received[i])) for i in range(n)]
        moved = max((abs(a - b) for a, b in zip(new, payments, strict=True)), default=0.0)
        payments = new
        if moved <= scale:
            return payments, step
    return payments, max_iterations


def time_call(fn: Callable[[], Any], min_repeats: int = 3, budget_s: float = 2.0) -> float:
    """Median seconds per call over at least ``min_repeats`` calls (more if they are fast)."""
    times: list[float] = []
    while len(times) < min_repeats or (sum(times) < budget_s and len(times) < 50):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_debtrank(graph: nx.DiGraph, seed: int, skip_reference: str | None) -> dict[str, Any]:
    """Time DebtRank (vectorised and, unless skipped, the reference) on one graph."""
    rng = np.random.default_rng(seed + 2)
    n = graph.number_of_nodes()
    shocked_nodes = rng.choice(n, size=max(1, int(SHOCKED_SHARE * n)), replace=False)
    shocked = {int(k): 1.0 for k in shocked_nodes}
    fast = debtrank(graph, shocked)
    row: dict[str, Any] = {
        "fast_s": time_call(lambda: debtrank(graph, shocked)),
        # Reading and checking the NetworkX attributes is pure Python and dominates the
        # vectorised call; reported so the propagation kernel's own cost is visible.
        "fast_validate_s": time_call(lambda: _validate(graph, shocked, "value", None)),
        "rank": fast.total,
        "rounds": fast.rounds,
    }
    if skip_reference:
        row.update(reference_s=None, reference_note=skip_reference)
    else:
        slow = debtrank_reference(graph, shocked)
        row["reference_s"] = time_call(lambda: debtrank_reference(graph, shocked), budget_s=5.0)
        row["max_abs_diff"] = max(abs(fast.distress[k] - slow.distress[k]) for k in graph)
        # The speed figure is a ratio measured in this process, so it does not depend on
        # how fast or how loaded the machine is.
        row["speedup"] = row["reference_s"] / row["fast_s"]
    return row


def bench_eisenberg_noe(
    graph: nx.DiGraph,
    seed: int,
    clear: Callable[..., Any] | None,
    dense_note: str | None,
    skip_reference: str | None,
) -> dict[str, Any]:
    """Time sparse and dense Eisenberg-Noe clearing and the Picard reference on one graph."""
    if clear is None:
        return {"fast_s": None, "reference_s": None, "note": "eisenberg_noe not available"}
    L, assets, debts = clearing_inputs(graph, seed)
    fast = eisenberg_noe_sparse(L, assets, debts)
    row: dict[str, Any] = {
        "fast_s": time_call(lambda: eisenberg_noe_sparse(L, assets, debts)),
        "defaulted": int(np.count_nonzero(fast.defaulted)),
        "solves": fast.iterations,
    }
    if dense_note is None:
        dense = L.toarray()
        row["dense_s"] = time_call(lambda: clear(dense, assets, debts))
        row["dense_vs_sparse_max_diff"] = float(
            np.max(np.abs(clear(dense, assets, debts).payments - fast.payments))
        )
    else:
        row["dense_note"] = dense_note
    if skip_reference:
        row.update(reference_s=None, reference_note=skip_reference)
    else:
        payments, steps = eisenberg_noe_reference(L, assets, debts)
        row["reference_s"] = time_call(lambda: eisenberg_noe_reference(L, assets, debts))
        row["picard_steps"] = steps
        row["max_abs_diff"] = float(np.max(np.abs(np.asarray(payments) - fast.payments)))
        row["speedup"] = row["reference_s"] / row["fast_s"]  # same-process ratio
    return row


def load_eisenberg_noe() -> Callable[..., Any] | None:
    """``liqnet.market.clearing.eisenberg_noe`` if that module provides it, else None."""
    try:
        module = importlib.import_module("liqnet.market.clearing")
    except ImportError:
        return None
    return getattr(module, "eisenberg_noe", None)


def predicted_skip(
    previous: tuple[int, float] | None, n: int, power: float, budget: float
) -> str | None:
    """Why to skip a reference at size ``n``, from the previous size's time, or None.

    Args:
        previous: (size, seconds per call) measured at the last size, if any.
        n: The size about to be run.
        power: Assumed growth exponent of the reference's cost in n.
        budget: Longest acceptable single call, in seconds.
    """
    if previous is None:
        return None
    size, seconds = previous
    predicted = seconds * (n / size) ** power
    if predicted <= budget:
        return None
    return f"skipped: one call predicted ~{predicted:.0f} s (> {budget:.0f} s budget)"


def fmt(seconds: float | None) -> str:
    """Seconds as milliseconds for the table, or a dash when not measured."""
    return "-" if seconds is None else f"{seconds * 1e3:10.2f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/analysis_throughput.json")
    )
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument("--reference-budget", type=float, default=30.0, help="seconds per call")
    parser.add_argument(
        "--en-max-size", type=int, default=2000, help="largest n for dense Eisenberg-Noe"
    )
    args = parser.parse_args(argv)

    clear = load_eisenberg_noe()
    if clear is None:
        print("note: liqnet.market.clearing.eisenberg_noe not found; Eisenberg-Noe skipped")
    results: list[dict[str, Any]] = []
    last_dr: tuple[int, float] | None = None
    last_en: tuple[int, float] | None = None
    for n in sorted(args.sizes):
        graph = build_credit_graph(n, args.seed)
        # DebtRank's reference is ~linear in n + edges; so is a Picard step over the edge
        # list, and the step count grows slowly with n: assume n^1.5.
        dr = bench_debtrank(
            graph, args.seed, predicted_skip(last_dr, n, 1.0, args.reference_budget)
        )
        if dr["reference_s"] is not None:
            last_dr = (n, dr["reference_s"])
        en_too_big = None
        if n > args.en_max_size:
            gib = n * n * 8 / 2**30
            en_too_big = (
                f"dense version skipped: {n}x{n} float64 is {gib:.1f} GiB (> --en-max-size)"
            )
        en = bench_eisenberg_noe(
            graph,
            args.seed,
            clear,
            en_too_big,
            predicted_skip(last_en, n, 1.5, args.reference_budget),
        )
        if en.get("reference_s") is not None:
            last_en = (n, en["reference_s"])
        results.append(
            {"n": n, "edges": graph.number_of_edges(), "debtrank": dr, "eisenberg_noe": en}
        )

    print(
        f"\n{'n':>6} {'edges':>7} | {'DebtRank ms':>10} {'ref ms':>10} {'x':>6} | "
        f"{'E-N ms':>10} {'ref ms':>10} {'x':>6} {'dense ms':>10}"
    )
    for r in results:
        dr, en = r["debtrank"], r["eisenberg_noe"]
        cells = []
        for part in (dr, en):
            speedup = (
                f"{part['reference_s'] / part['fast_s']:6.1f}"
                if part.get("reference_s") and part.get("fast_s")
                else f"{'-':>6}"
            )
            cells.append(
                f"{fmt(part.get('fast_s')):>10} {fmt(part.get('reference_s')):>10} {speedup}"
            )
        dense = fmt(en.get("dense_s"))
        print(f"{r['n']:>6} {r['edges']:>7} | {cells[0]} | {cells[1]} {dense:>10}")
        for name, part in (("DebtRank", dr), ("Eisenberg-Noe", en)):
            note = part.get("note") or part.get("reference_note") or part.get("dense_note")
            if note:
                print(f"       n={r['n']} {name}: {note}")

    report = {
        "benchmark": "analysis_throughput",
        "units": "seconds per call, median of repeats",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "networkx": nx.__version__,
        "machine": platform.machine(),
        "seed": args.seed,
        "avg_out_degree": AVG_OUT_DEGREE,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
