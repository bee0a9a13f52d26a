"""Observation naming (``<asset>.<feature>``) and the forecaster interface.

Shared by policies (``agents.rules``, ``agents.bayesian``), the forecaster
(``agents.forecaster``) and the forecast-observation wrapper (``agents.wrappers``), which
may import only the core layer, PettingZoo, gymnasium, NumPy and torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


def observation_indices(names: Sequence[str], suffix: str) -> list[int]:
    """Positions of every observation in ``names`` called ``<asset>.{suffix}`` (one per asset).

    Raises:
        KeyError: If the environment provides no such entry (names the available ones).
    """
    found = [i for i, n in enumerate(names) if n.endswith(f".{suffix}")]
    if not found:
        raise KeyError(f"no observation named '<asset>.{suffix}'; available: {list(names)}")
    return found


class ForecasterLike(Protocol):
    """What forecast consumers need of a forecaster (see ``liqnet.agents.forecaster``)."""

    def reset(self, observation_names: tuple[str, ...], dt_hours: float) -> None:
        """Start an episode."""

    def observe(
        self, observations: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{agent: (volatility, crash probability)}`` per asset for one step."""
