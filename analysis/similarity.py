"""Similarity of models: linear CKA of representations, and structural similarity.

Linear Centered Kernel Alignment follows Kornblith et al. (2019), "Similarity of Neural
Network Representations Revisited" (ICML): for column-centred representations X, Y of
the same probes, ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``, 1 for
identical representations and invariant to orthogonal transforms and isotropic scaling.
A constant representation has nothing to align: its CKA is NaN, not 1.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ModelCard",
    "PolicySimilarity",
    "linear_cka",
    "policy_similarity",
    "representations",
    "structural_similarity",
    "varies",
]

_TINY = 1e-12


def varies(raw: np.ndarray, centred: np.ndarray) -> bool:
    """Whether a series is not constant, relative to its own magnitude (scale-free)."""
    return float(np.abs(centred).max()) > _TINY * float(np.abs(raw).max())


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA between two representations of the same probes (rows = probes).

    Args:
        x: ``(n, p)`` array (a 1-D array is one feature).
        y: ``(n, q)`` array.

    Returns:
        CKA in [0, 1]; NaN when either representation is constant (nothing to align).

    Raises:
        ValueError: Different numbers of rows, fewer than 2 rows, or non-finite values.
    """
    a, b = (np.asarray(v, dtype=np.float64) for v in (x, y))
    a, b = (v[:, None] if v.ndim == 1 else v.reshape(v.shape[0], -1) for v in (a, b))
    if a.shape[0] != b.shape[0] or a.shape[0] < 2:
        raise ValueError(f"need the same >= 2 probes in both, got {a.shape[0]} and {b.shape[0]}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("representations must be finite")
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    varies_a, varies_b = varies(a, ca), varies(b, cb)
    if not (varies_a and varies_b):
        return math.nan
    a, b = ca, cb
    xx, yy = np.linalg.norm(a.T @ a), np.linalg.norm(b.T @ b)
    return float(np.clip(np.linalg.norm(b.T @ a) ** 2 / (xx * yy), 0.0, 1.0))


def representations(
    policy: Callable[[Any], Any] | Any,
    probes: Any,
    *,
    layer: str | None = None,
    batched: bool = False,
) -> np.ndarray:
    """A policy's representation of each probe, as an ``(n, features)`` array.

    Args:
        policy: A ``torch.nn.Module`` (run once on the whole batch, without gradients;
            with ``layer``, the output of that named submodule is captured by a forward
            hook) or any callable ``obs -> array``, called once per probe (once on the
            whole ``(n, obs_dim)`` batch if ``batched``).
        probes: ``(n, obs_dim)`` observations (array or tensor).
        layer: Name of a submodule (as in ``named_modules()``) of a torch policy;
            ignored for plain callables, which return their representation themselves.
        batched: Call a plain callable on the whole batch.

    Returns:
        ``(n, features)`` float64 array; tuple outputs are concatenated.
    """
    torch = sys.modules.get("torch")  # a torch module can exist only if torch is loaded
    if torch is not None and isinstance(policy, torch.nn.Module):
        return _torch_representations(torch, policy, probes, layer)
    obs = probes.detach().cpu().numpy() if hasattr(probes, "detach") else np.asarray(probes)
    if batched:
        return _flatten(policy(obs), len(obs))
    return np.stack([_flatten(policy(o), 1)[0] for o in obs])


def _flatten(output: Any, n: int) -> np.ndarray:
    parts = output if isinstance(output, tuple | list) else (output,)
    arrays = []
    for part in parts:
        value = part.detach().cpu().numpy() if hasattr(part, "detach") else np.asarray(part)
        arrays.append(np.asarray(value, dtype=np.float64).reshape(n, -1))
    return np.concatenate(arrays, axis=1)


def _torch_representations(torch: Any, module: Any, probes: Any, layer: str | None) -> np.ndarray:
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else "cpu"
    batch = torch.as_tensor(np.asarray(probes), dtype=dtype, device=device)
    captured: list[Any] = []
    handle = None
    if layer is not None:
        named = dict(module.named_modules())
        if layer not in named:
            raise ValueError(f"layer {layer!r} not in the policy; allowed {sorted(named)}")
        handle = named[layer].register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            output = module(batch)
    finally:
        if handle is not None:
            handle.remove()
    return _flatten(captured[-1] if captured else output, batch.shape[0])


@dataclass(frozen=True)
class PolicySimilarity:
    """Pairwise linear CKA between policies.

    Attributes:
        matrix: Policy-by-policy CKA (symmetric, unit diagonal; NaN for pairs with a
            constant representation).
        mean: Mean CKA over distinct defined pairs; NaN if none.
    """

    matrix: pd.DataFrame
    mean: float


def policy_similarity(
    policies: Mapping[str, Any] | Sequence[Any],
    probes: Any,
    *,
    layer: str | None = None,
    batched: bool = False,
) -> PolicySimilarity:
    """Linear CKA between every pair of policies on a common probe set.

    Args:
        policies: ``{name: policy}`` (or a sequence, named by position); each a callable
            ``obs -> representation`` or a ``torch.nn.Module`` (see :func:`representations`).
        probes: ``(n, obs_dim)`` observations shared by all policies.
        layer: Submodule whose output is the representation of torch policies.
        batched: Call plain callables once on the whole batch.

    Returns:
        The :class:`PolicySimilarity`.

    Raises:
        ValueError: Fewer than two policies, or ``layer`` without any torch policy.
    """
    named = dict(policies) if isinstance(policies, Mapping) else dict(enumerate(policies))
    names = [str(n) for n in named]
    if len(names) < 2:
        raise ValueError(f"policy similarity needs at least two policies, got {names}")
    torch = sys.modules.get("torch")
    if layer is not None and not (
        torch is not None and any(isinstance(p, torch.nn.Module) for p in named.values())
    ):
        raise ValueError(f"layer = {layer!r} needs at least one torch.nn.Module policy")
    reps = [representations(p, probes, layer=layer, batched=batched) for p in named.values()]
    n = len(reps)
    matrix = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = linear_cka(reps[i], reps[j])
    pairs = matrix[np.triu_indices(n, k=1)]
    defined = pairs[np.isfinite(pairs)]
    mean = float(defined.mean()) if defined.size else math.nan
    return PolicySimilarity(pd.DataFrame(matrix, index=names, columns=names), mean)


@dataclass(frozen=True)
class ModelCard:
    """What a protocol's policy is, for structural similarity.

    Attributes:
        model: Identity of the fitted model: a hash of its weights (checkpoints carry
            ``weights_sha256``), or the rule's name and parameters for a rule-based one.
        architecture: The model class and its shape (e.g. ``"mappo-actor[64,64]"``).
        training: What it learned from (scenario mix and seeds; ``""`` for rules).
    """

    model: str
    architecture: str
    training: str = ""


def structural_similarity(cards: Mapping[str, ModelCard]) -> dict[str, float]:
    """Share of distinct protocol pairs that share each structural trait.

    Returns ``same_model`` (identical fitted model), ``same_architecture`` and
    ``same_training`` (identical training data), each in [0, 1]: 1 when every protocol
    runs the same thing. A monoculture of one model scores 1 on all three.

    Raises:
        ValueError: Fewer than two protocols.
    """
    names = list(cards)
    if len(names) < 2:
        raise ValueError(f"structural similarity needs at least two protocols, got {names}")
    pairs = [(cards[a], cards[b]) for i, a in enumerate(names) for b in names[i + 1 :]]
    return {
        f"same_{trait}": float(np.mean([getattr(x, trait) == getattr(y, trait) for x, y in pairs]))
        for trait in ("model", "architecture", "training")
    }
