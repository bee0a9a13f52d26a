"""Running moments for normalisation: one formula for the learner and the env wrapper."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["RunningNorm", "merge_moments"]


def merge_moments(
    mean: Any, var: Any, count: Any, batch_mean: Any, batch_var: Any, n: int
) -> tuple[Any, Any, Any]:
    """Running mean and (population) variance merged with a batch (parallel Welford).

    Plain arithmetic, so NumPy arrays and torch tensors both work: one formula for
    :class:`NormalizeObservation` and MAPPO's ``RunningNorm``.

    Returns:
        ``(mean, var, count)`` of everything seen so far.
    """
    delta, total = batch_mean - mean, count + n
    new_mean = mean + delta * n / total
    m2 = var * count + batch_var * n + delta**2 * count * n / total
    return new_mean, m2 / total, total


class RunningNorm(nn.Module):
    """Running mean and variance (parallel Welford), kept as buffers in the state_dict."""

    # Registered buffers (declared so type checkers see tensors, not Tensor | Module).
    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...] = (), clip: float = 10.0) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch (leading dimension = samples) into the running moments."""
        x = x.to(torch.float64).reshape(-1, *self.mean.shape)
        if x.shape[0] == 0:
            return
        moments = (self.mean, self.var, self.count, x.mean(0), x.var(0, unbiased=False))
        mean, var, count = merge_moments(*moments, x.shape[0])
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.fill_(float(count))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``, clipped (outliers such as a 50x gas spike stay bounded)."""
        z = (x - self.mean) / torch.sqrt(self.var + 1e-8)
        return z.clamp(-self.clip, self.clip).to(torch.float32)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` (without the clip)."""
        return (z * torch.sqrt(self.var + 1e-8) + self.mean).to(torch.float32)
