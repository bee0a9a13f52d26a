"""The convergence experiment end to end on a local Ray, and its settings and flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqnet.scenarios.cli import main
from liqnet.scenarios.experiment import ExperimentConfig, levels, population
from liqnet.scenarios.rollout import HELD_OUT_SEEDS_FROM

TINY = [  # negative values as --flag=VALUE: argparse reads "-0.2" as an option otherwise
    "--rewards", "equity", "--architectures", "64x64,32", "--seeds", "0,1",
    "--train-steps", "768", "--eval-seeds", "2", "--eval-shocks=-0.2,-0.45",
    "--train-shocks=-0.15,-0.4", "--train-shock-steps", "8", "--eval-shock-step", "10",
    "--steps", "20", "--positions", "60", "--probes", "48", "--bootstrap", "100",
]  # fmt: skip


def test_population_varies_one_factor_at_a_time() -> None:
    cfg = ExperimentConfig()
    members = {m.name: m for m in population(cfg)}
    base = members["equity-base"]
    for name, member in members.items():
        if not name.startswith("equity-"):
            continue
        differs = [
            f for f in ("seed", "hidden", "shocks") if getattr(member, f) != getattr(base, f)
        ]
        assert len(differs) == (0 if member is base else 1), name
    assignment = levels(cfg, 3)
    assert assignment["equity/identical"] == ["equity-base"] * 3
    assert assignment["team/seeds"] == ["team-base", "team-seed1", "team-seed2"]
    assert assignment["static"] == ["static"] * 3
    assert assignment["bayesian"] == ["bayesian"] * 3
    assert cfg.seed_list[0] == HELD_OUT_SEEDS_FROM  # evaluation seeds are held out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rewards", "greedy"], "allowed ('equity', 'team')"),
        (["--eval-shocks", "0.3"], "eval_shocks must be returns in [-0.95, 0)"),
        (["--eval-shock-step", "500"], "shock steps must lie in [1, steps=48]"),
    ],
)
def test_bad_settings_exit_2_naming_the_field(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["experiment", "convergence", "--out", str(tmp_path / "x"), *flags]) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "x").exists()  # nothing written


def test_bad_flag_value_is_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "convergence", "--architectures", "64xfoo"])
    assert exit_info.value.code == 2
    assert "hidden sizes such as 64x64" in capsys.readouterr().err


def test_experiment_runs_end_to_end(tmp_path: Path, no_ray_address: None) -> None:
    out = tmp_path / "exp"
    assert main(["experiment", "convergence", "--out", str(out), *TINY]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    # 3 controls + 4 similarity levels, x 2 crashes x 2 seeds: nothing failed or dropped.
    assert len(runs) == 7 * 2 * 2 and runs["losses_usd"].notna().all()
    assert np.isnan(
        pd.read_csv(out / "similarity.csv")
        .set_index("level")
        .loc["bayesian", "similarity_behaviour"]
    )
    similarity = pd.read_csv(out / "similarity.csv").set_index("level")
    assert np.isnan(similarity.loc["static", "similarity_behaviour"])  # undefined, not 1
    assert similarity.loc["equity/identical", "similarity_behaviour"] == pytest.approx(1.0)
    assert similarity.loc["equity/identical", "similarity_structure"] == 1.0
    # Two seeds for three protocols: base, seed1, base -> one pair of three shares a model.
    assert similarity.loc["equity/seeds", "similarity_structure"] == pytest.approx(1 / 3)
    assert similarity.loc["equity/seeds", "similarity_behaviour"] < 0.999
    # Matched shocks: every level saw the same crashes on the same held-out seeds.
    seeds = runs.groupby("level")["seed"].apply(frozenset)
    assert seeds.nunique() == 1 and min(runs["seed"]) >= HELD_OUT_SEEDS_FROM
    effects = pd.read_csv(out / "tables" / "effects.csv")
    assert set(effects["family"]) == {"equity"} and effects["reading"].notna().all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Effect of similarity on losses" in html and "Mechanism trace" in html
    assert "Generalisation: one trained policy against the controls" in html
    settings = json.loads((out / "experiment.json").read_text(encoding="utf-8"))
    assert settings["rewards"] == ["equity"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "equity-arch32",
        "equity-base",
        "equity-data-0.15",
        "equity-data-0.40",
        "equity-seed1",
        "untrained",
    ]
