"""Training the forecaster: simulate, fit, and report out-of-sample error vs naive baselines.

``python -m liqnet.scenarios.forecast_training [DIR]`` trains on the default worlds and
writes a checkpoint (default ``runs/forecaster``). Data come from
:func:`liqnet.scenarios.policies.record_observations` under static governance, so the
features are exactly what :class:`~liqnet.agents.forecaster.Forecaster` computes when
acting; targets come from the run's reference price path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from liqnet.agents.forecaster import (
    _VOL_FLOOR,
    FEATURES,
    FeatureState,
    ForecastConfig,
    Forecaster,
    ForecastNet,
)
from liqnet.core.schema import Scenario

if TYPE_CHECKING:
    from liqnet.core.result import RunResult

DEFAULT_SCENARIOS: tuple[str, ...] = ("baseline", "vol_regime", "bank_run", "credit_crunch")
"""Training worlds of :func:`train_forecaster`: calm, regime-switching and two crashes."""


@dataclass
class ForecastReport:
    """Out-of-sample error of a trained forecaster next to naive baselines (held-out seeds).

    Volatility errors are on the next-horizon annualised realised volatility: RMSE in log
    space (what the model fits) and MAE in volatility points; the baseline is persistence
    (today's realised volatility). Crash errors are Brier scores; the baseline predicts
    the training base rate for every sample.
    """

    n_train: int
    n_test: int
    simulate_seconds: float
    fit_seconds: float
    vol_rmse_log: float
    vol_rmse_log_persistence: float
    vol_mae: float
    vol_mae_persistence: float
    crash_brier: float
    crash_brier_base_rate: float
    crash_base_rate: float
    crash_rate_test: float
    checkpoint: Path | None = None
    forecaster: Forecaster | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        rows = [
            ("next-day vol, RMSE of log", self.vol_rmse_log, self.vol_rmse_log_persistence),
            ("next-day vol, MAE", self.vol_mae, self.vol_mae_persistence),
            ("crash (dd>threshold), Brier", self.crash_brier, self.crash_brier_base_rate),
        ]
        lines = [
            f"forecaster: {self.n_train} train / {self.n_test} held-out samples, "
            f"simulated in {self.simulate_seconds:.1f} s, fitted in {self.fit_seconds:.1f} s",
            f"crash rate: train {self.crash_base_rate:.3f}, held-out {self.crash_rate_test:.3f}",
            f"{'metric (held-out seeds)':<32}{'model':>10}{'naive':>10}{'ratio':>8}",
        ]
        for label, model, naive in rows:
            ratio = model / naive if naive > 0 else float("nan")
            lines.append(f"{label:<32}{model:>10.4f}{naive:>10.4f}{ratio:>8.3f}")
        lines.append("naive: persistence of realised vol; base rate of crashes")
        if self.checkpoint is not None:
            lines.append(f"checkpoint: {self.checkpoint}")
        return "\n".join(lines)


def _samples(
    observations: list[dict[str, np.ndarray]],
    names: tuple[str, ...],
    result: RunResult,
    config: ForecastConfig,
) -> dict[str, np.ndarray]:
    """Features, targets and the persistence forecast of one recorded episode."""
    dt_hours = result.scenario.dt_hours
    horizon = max(1, round(config.horizon_hours / dt_hours))
    state = FeatureState(names, dt_hours, config.short_window)
    ts = result.timeseries
    prices = np.stack([ts[f"{a}.reference"].to_numpy(float) for a in state.assets], axis=1)
    returns = np.diff(np.log(prices), axis=0)  # returns[t] is the move of step t + 1
    last = len(prices) - 1
    parts: dict[str, list[np.ndarray]] = {"x": [], "vol": [], "crash": [], "persist": []}
    for t, observed in enumerate(observations):
        if not observed:
            break
        features, realised = state(observed)
        if t < config.min_history or t + horizon > last:
            continue
        window = returns[t : t + horizon]
        vol = np.sqrt(np.mean(window**2, axis=0) * state.steps_per_year)
        path = prices[t : t + horizon + 1]
        drawdown = (1.0 - path / np.maximum.accumulate(path, axis=0)).max(axis=0)
        n_agents = features.shape[0]
        parts["x"].append(features.reshape(-1, features.shape[-1]))
        parts["vol"].append(np.tile(vol, n_agents))
        parts["crash"].append(np.tile(drawdown > config.crash_drawdown, n_agents))
        parts["persist"].append(np.tile(realised, n_agents))
    if not parts["x"]:
        return {k: np.zeros((0, len(FEATURES)) if k == "x" else 0) for k in parts}
    return {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}


def _small(scenario: Scenario | str, positions: int) -> Scenario:
    """A built-in name as a small world (``positions`` per protocol); scenarios as given."""
    from liqnet.protocols.registry import get_protocol_class
    from liqnet.scenarios import load

    if isinstance(scenario, Scenario):
        return scenario
    base = load(scenario)
    overrides = {
        f"protocols.{k}.params.positions": positions
        for k, spec in enumerate(base.protocols)
        if "positions" in get_protocol_class(spec.type).Params.model_fields
    }
    return load(scenario, overrides)


def _dataset(
    scenarios: Sequence[Scenario], seeds: Iterable[int], config: ForecastConfig
) -> dict[str, np.ndarray]:
    """Samples of every scenario and seed, under static governance."""
    # Imported here: the agents layer only reaches the simulator to make training data.
    from liqnet.agents.static import StaticGovernance
    from liqnet.scenarios.policies import record_observations

    chunks = []
    for scenario in scenarios:
        static = StaticGovernance()
        policies = {spec.id: static for spec in scenario.protocols}
        for seed in seeds:
            observations, names, result = record_observations(scenario, seed, policies=policies)
            chunks.append(_samples(observations, names, result, config))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _fit(data: dict[str, np.ndarray], config: ForecastConfig) -> ForecastNet:
    """Full-batch Adam on log-volatility squared error plus crash cross-entropy."""
    torch.manual_seed(config.seed)
    net = ForecastNet(len(FEATURES), config.hidden, config.layers)
    x = torch.from_numpy(data["x"])
    log_vol = torch.log(torch.from_numpy(data["vol"]) + _VOL_FLOOR)
    crash = torch.from_numpy(data["crash"])
    with torch.no_grad():
        net.mean.copy_(x.mean(0))
        net.std.copy_(x.std(0).clamp_min(1e-6))
        # Start the heads at the unconditional answers: training then only learns the rest.
        rate = crash.mean().clamp(1e-3, 1 - 1e-3)
        head = cast(nn.Linear, net.body[-1])  # ForecastNet's body ends in its output layer
        head.bias.copy_(torch.stack([log_vol.mean(), torch.log(rate / (1 - rate))]))
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # A tiny MLP gains nothing from intra-op threads; on a busy machine they only contend
    # (measured: 10x slower with 2 threads on 2 shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(config.epochs):
            optimiser.zero_grad()
            predicted, logit = net(x)
            loss = nn.functional.mse_loss(predicted, log_vol)
            loss = loss + config.crash_weight * nn.functional.binary_cross_entropy_with_logits(
                logit, crash
            )
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def train_forecaster(
    scenarios: Sequence[Scenario | str] = DEFAULT_SCENARIOS,
    seeds: Iterable[int] = range(6),
    test_seeds: Iterable[int] = (100, 101, 102),
    *,
    config: ForecastConfig | None = None,
    out: str | Path | None = None,
    verbose: bool = True,
) -> ForecastReport:
    """Simulate, train the forecaster on ``seeds``, report its error on ``test_seeds``.

    Args:
        scenarios: Built-in names (made small: ``config.positions`` per protocol) or
            validated scenarios (used as given).
        seeds: World seeds of the training episodes.
        test_seeds: Held-out world seeds for the report.
        config: Hyper-parameters (defaults: :class:`ForecastConfig`).
        out: Where to save the checkpoint (not saved if ``None``).
        verbose: Print the report.

    Returns:
        The :class:`ForecastReport`; its ``forecaster`` is the trained model.

    Raises:
        ValueError: If a split yields no samples (episodes shorter than the horizon).
    """
    config = config or ForecastConfig()
    worlds = [_small(s, config.positions) for s in scenarios]
    start = time.perf_counter()
    train = _dataset(worlds, seeds, config)
    test = _dataset(worlds, test_seeds, config)
    for label, data in [("training", train), ("held-out", test)]:
        if len(data["x"]) == 0:
            raise ValueError(
                f"no {label} samples: episodes must be longer than min_history + "
                f"horizon_hours ({config.min_history} steps + {config.horizon_hours} h)"
            )
    simulated = time.perf_counter()
    forecaster = Forecaster(_fit(train, config), config)
    fitted = time.perf_counter()
    vol, crash_prob = forecaster.predict(test["x"])
    floor_log = np.log(test["vol"] + _VOL_FLOOR)
    base_rate = float(train["crash"].mean())
    report = ForecastReport(
        n_train=len(train["x"]),
        n_test=len(test["x"]),
        simulate_seconds=simulated - start,
        fit_seconds=fitted - simulated,
        vol_rmse_log=_rmse(np.log(vol + _VOL_FLOOR), floor_log),
        vol_rmse_log_persistence=_rmse(np.log(test["persist"] + _VOL_FLOOR), floor_log),
        vol_mae=float(np.mean(np.abs(vol - test["vol"]))),
        vol_mae_persistence=float(np.mean(np.abs(test["persist"] - test["vol"]))),
        crash_brier=float(np.mean((crash_prob - test["crash"]) ** 2)),
        crash_brier_base_rate=float(np.mean((base_rate - test["crash"]) ** 2)),
        crash_base_rate=base_rate,
        crash_rate_test=float(test["crash"].mean()),
        checkpoint=forecaster.save(out) if out is not None else None,
        forecaster=forecaster,
    )
    if verbose:
        print(report)
    return report


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


if __name__ == "__main__":
    import sys

    train_forecaster(out=sys.argv[1] if len(sys.argv) > 1 else "runs/forecaster")
