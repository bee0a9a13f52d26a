"""Forecaster: a small torch model of next-day realised volatility and crash probability.

Trained supervised (:func:`liqnet.scenarios.forecast_training.train_forecaster`) on
simulated trajectories: the env's observations under static governance give the
features, the run's reference price path the targets. One sample is one (step, agent,
asset), so the model is asset-agnostic and a checkpoint serves any market. Features
(:data:`FEATURES`) come from the observation vector alone plus a short memory of past
returns, so the same code (:class:`FeatureState`) computes them in training and when
acting: log realised volatility (the env's window and a short one), last log return,
drawdown since the episode began, oracle and pool deviation, gas, the stressed-regime
flag, and the observing protocol's utilisation, funding rate, open interest and
liquidation volume.

Targets, over the next ``horizon_hours``: annualised realised volatility (uncentred, as
the env computes it; learnt in log space) and whether the asset's drawdown exceeds
``crash_drawdown``.

A checkpoint is a directory (the MAPPO layout): ``model.pt``, the ``state_dict``, loaded
with ``torch.load(..., weights_only=True)``, and ``config.json``, the
:class:`ForecastConfig` with the format tag and feature names. :class:`CheckpointError`
names the file and what is wrong. :class:`~liqnet.agents.rules.ForecastRiskPolicy` (spec
``"forecaster:PATH"``) tightens the risk lever when the forecasts are high; other
policies can call :meth:`Forecaster.observe` the same way.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liqnet.agents.rules import ForecastRiskPolicy
from liqnet.agents.weights import CHECKSUM_FIELD, check_state, parameter_count, state_checksum
from liqnet.core.errors import CheckpointError
from liqnet.core.io import atomic_write
from liqnet.core.observations import observation_indices
from liqnet.core.units import HOURS_PER_YEAR

FORMAT = "liqnet-forecaster-1"
"""Value of ``format`` in ``config.json``; other values are refused."""
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
FEATURES: tuple[str, ...] = (
    "log_realised_vol",
    "log_short_vol",
    "log_return",
    "drawdown",
    "oracle_deviation",
    "pool_deviation",
    "log_gas_multiplier",
    "stressed_regime",
    "utilization",
    "funding_rate",
    "open_interest_to_assets",
    "liquidated_to_assets",
)
"""Model inputs, in order (a checkpoint with other features is refused)."""
_PROTOCOL_FEATURES = FEATURES[-4:]
_VOL_FLOOR = 1e-3  # annualised; keeps log(vol) finite on a flat path


@dataclass
class ForecastConfig:
    """Hyper-parameters of the forecaster and its training."""

    horizon_hours: float = 24.0
    """Forecast horizon: volatility and drawdown over the next this many hours."""
    crash_drawdown: float = 0.10
    """A crash is a drawdown above this within the horizon."""
    short_window: int = 6
    """Steps in the short realised-volatility feature."""
    min_history: int = 6
    """Skip the first steps of an episode (their realised volatility is mostly noise)."""
    hidden: int = 32
    """Width of each hidden layer."""
    layers: int = 2
    """Number of hidden layers."""
    epochs: int = 400
    """Full-batch Adam steps."""
    lr: float = 3e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """Adam L2 penalty."""
    crash_weight: float = 1.0
    """Weight of the crash cross-entropy next to the log-volatility squared error."""
    positions: int = 200
    """Positions per protocol in the simulated training worlds (small = fast)."""
    seed: int = 0
    """Seed of weight initialisation."""


class ForecastNet(nn.Module):
    """MLP with two heads: next-horizon log volatility and crash logit.

    Feature standardisation (``mean``, ``std``) is part of the state dict.
    """

    # Registered buffers: declared so type checkers see tensors, not Module attributes.
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        blocks: list[nn.Module] = []
        width = n_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_vol, crash_logit)`` for a batch of raw features."""
        out = self.body((x - self.mean) / self.std)
        return out[..., 0], out[..., 1]


class FeatureState:
    """Turns each step's observations into model features; remembers recent returns.

    Call it once per step with every observed agent; the first call after construction is
    the reset observation, which carries no return yet.
    """

    def __init__(self, observation_names: tuple[str, ...], dt_hours: float, window: int) -> None:
        names = tuple(observation_names)
        self._ret = observation_indices(names, "log_return")
        self.assets = [names[i].rsplit(".", 1)[0] for i in self._ret]
        self._vol = observation_indices(names, "realised_vol")
        self._oracle = observation_indices(names, "oracle_deviation")
        self._pool = observation_indices(names, "pool_deviation")
        needed = (*_PROTOCOL_FEATURES, "gas_multiplier", "stressed_regime")
        missing = [n for n in needed if n not in names]
        if missing:
            raise KeyError(f"forecaster needs observations {missing}; env has {list(names)}")
        self._protocol = [names.index(n) for n in _PROTOCOL_FEATURES]
        self._gas = names.index("gas_multiplier")
        self._stressed = names.index("stressed_regime")
        self.steps_per_year = HOURS_PER_YEAR / dt_hours
        self.recent: deque[np.ndarray] = deque(maxlen=window)
        self.log_price = np.zeros(len(self._ret))
        self.peak = np.zeros(len(self._ret))
        self.fresh = True

    def __call__(self, observations: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One step's features.

        Returns:
            Features ``(n_agents, n_assets, F)`` in the dict's agent order, and the env's
            realised volatility per asset (the persistence forecast).
        """
        first = next(iter(observations.values())).astype(np.float64)
        if not self.fresh:
            returns = first[self._ret]
            self.recent.append(returns)
            self.log_price += returns
            np.maximum(self.peak, self.log_price, out=self.peak)
        self.fresh = False
        realised = first[self._vol]
        short = (
            np.sqrt(np.mean(np.square(self.recent), axis=0) * self.steps_per_year)
            if self.recent
            else realised
        )
        market = np.stack(
            [
                np.log(realised + _VOL_FLOOR),
                np.log(short + _VOL_FLOOR),
                first[self._ret] if self.recent else np.zeros(len(self._ret)),
                1.0 - np.exp(self.log_price - self.peak),
                first[self._oracle],
                first[self._pool],
                np.full(len(self._ret), math.log(max(first[self._gas], 1e-6))),
                np.full(len(self._ret), first[self._stressed]),
            ],
            axis=-1,
        )
        rows = np.stack([obs[self._protocol] for obs in observations.values()])
        out = np.concatenate(
            [
                np.broadcast_to(market, (len(rows), *market.shape)),
                np.broadcast_to(rows[:, None, :], (len(rows), market.shape[0], rows.shape[1])),
            ],
            axis=-1,
        )
        return out.astype(np.float32), realised


class Forecaster:
    """A trained :class:`ForecastNet` with its config; forecasts from observations.

    Args:
        net: The network (eval mode is set here).
        config: The hyper-parameters it was trained with.
    """

    def __init__(self, net: ForecastNet, config: ForecastConfig) -> None:
        self.net = net.eval()
        self.config = config
        self.state: FeatureState | None = None

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Annualised volatility and crash probability for features ``(..., F)``."""
        with torch.no_grad():
            log_vol, logit = self.net(torch.as_tensor(features, dtype=torch.float32))
        vol = np.maximum(np.exp(log_vol.numpy()) - _VOL_FLOOR, 0.0)
        return vol, torch.sigmoid(logit).numpy()

    def reset(self, observation_names: tuple[str, ...], dt_hours: float) -> None:
        """Start an episode in an env with these observation names."""
        self.state = FeatureState(observation_names, dt_hours, self.config.short_window)

    def observe(
        self, observations: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One step's forecasts: ``{agent: (volatility, crash probability)}``, per asset."""
        if self.state is None:
            raise RuntimeError("Forecaster.observe before reset()")
        if not observations:
            return {}
        features, _ = self.state(observations)
        vol, crash = self.predict(features)
        return {a: (vol[k], crash[k]) for k, a in enumerate(observations)}

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state_dict) and ``config.json`` into ``directory``.

        Each file goes to a temporary name first and is renamed into place, weights first
        (a config beside stale weights would be the worse mismatch). Returns the directory.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        meta = {
            "format": FORMAT,
            "features": list(FEATURES),
            "config": asdict(self.config),
            CHECKSUM_FIELD: state_checksum(state),
        }
        atomic_write(out / MODEL_FILE, lambda p: torch.save(state, p))
        atomic_write(out / CONFIG_FILE, lambda p: p.write_text(json.dumps(meta, indent=2)))
        return out

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Read a checkpoint written by :meth:`save`: its directory or its ``model.pt``.

        Raises:
            CheckpointError: If a file is missing or corrupt, the config is from another
                format or feature set, or the weights do not match the config.
        """
        p = Path(path)
        directory = p.parent if p.suffix == ".pt" else p
        model_file, config_file = directory / MODEL_FILE, directory / CONFIG_FILE
        try:
            meta = json.loads(config_file.read_text(encoding="utf-8"))
            config = ForecastConfig(**meta["config"])
            problem = (
                f"field 'format' = {meta['format']!r}, expected {FORMAT!r}"
                if meta["format"] != FORMAT
                else f"field 'features' = {meta['features']}, expected {list(FEATURES)}"
                if meta["features"] != list(FEATURES)
                else None
            )
        except FileNotFoundError:
            problem = "file not found (train one with liqnet.scenarios.forecast_training)"
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = f"not valid JSON ({err})"
        except (TypeError, KeyError) as err:
            problem = f"not a forecaster config ({type(err).__name__}: {err})"
        if problem is not None:
            raise CheckpointError(f"forecaster checkpoint {config_file}: {problem}")
        try:
            state = torch.load(model_file, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a damaged file
            lines = str(err).strip().splitlines() or [""]
            raise CheckpointError(
                f"forecaster checkpoint {model_file}: not a readable state_dict "
                f"({type(err).__name__}: {lines[0]})"
            ) from None
        shape = (len(FEATURES), config.hidden, config.layers)
        parameter_count(lambda: ForecastNet(*shape), f"forecaster checkpoint {config_file}")
        net = ForecastNet(*shape)
        where = f"forecaster checkpoint {model_file}"
        net.load_state_dict(check_state(state, net.state_dict(), where, meta))
        return cls(net, config)


def make_forecast_policy(argument: str | None) -> ForecastRiskPolicy:
    """Factory for the ``"forecaster:PATH"`` spec."""
    if not argument:
        raise ValueError(
            "policy spec 'forecaster' needs a checkpoint: 'forecaster:PATH' "
            "(train one with `liqnet.scenarios.forecast_training.train_forecaster`)"
        )
    return ForecastRiskPolicy(Forecaster.load(argument))
