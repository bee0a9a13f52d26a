"""Model convergence: do the protocols' agents act, and represent the world, alike?

* :func:`action_synchrony`: lever time series per agent -> agent-by-agent correlation.
  Each agent's series is a ``T x k`` matrix (steps x levers); every lever column is
  centred on its own mean and the agent's matrix flattened to one vector, so
  ``corr(i, j)`` is the cosine between the two agents' centred lever paths: 1 when
  they move their levers together, 0 when unrelated, -1 when opposed. An agent whose
  levers never move has no direction; by convention two such agents correlate 1 if
  their (constant) levers are equal and 0 otherwise, and a constant agent correlates 0
  with a moving one. Identical series therefore always give 1.
* :func:`linear_cka` / :func:`policy_similarity`: linear Centered Kernel Alignment
  (Kornblith et al. 2019) between policies' representations of a common probe set,
  ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred X, Y;
  1 for identical representations, invariant to orthogonal transforms and isotropic
  scaling. Two constant representations count as identical (1), one constant and one
  varying as unrelated (0).
* :func:`convergence_index`: one number in [0, 1] for a sweep table (formula there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from liqnet.analysis.results import lever_actions
from liqnet.core.result import RunResult

__all__ = [
    "PolicySimilarity",
    "Synchrony",
    "action_synchrony",
    "convergence_components",
    "convergence_index",
    "linear_cka",
    "policy_similarity",
    "representations",
]

_TINY = 1e-12


@dataclass(frozen=True)
class Synchrony:
    """Synchrony of the agents' actions.

    Attributes:
        correlation: Agent-by-agent correlation matrix (symmetric, unit diagonal).
        graph: Undirected graph of agents, an edge (``weight`` = correlation) for every
            pair whose correlation is at least ``threshold``.
        mean_correlation: Mean over distinct pairs, in [-1, 1].
        eigenvalue_share: Largest eigenvalue of ``correlation`` / number of agents, in
            [1/n, 1]: 1 when every agent moves as one.
        threshold: The edge threshold used.
        static: Agent -> whether its actions never moved (constant series).
    """

    correlation: pd.DataFrame
    graph: nx.Graph
    mean_correlation: float
    eigenvalue_share: float
    threshold: float
    static: dict[str, bool] = field(default_factory=dict)

    @property
    def agents(self) -> list[str]:
        """Agent names, in matrix order."""
        return list(self.correlation.index)


def _varies(raw: np.ndarray, centred: np.ndarray) -> bool:
    """Whether a series is not constant, relative to its own magnitude (scale-free)."""
    return float(np.abs(centred).max()) > _TINY * float(np.abs(raw).max())


def _as_matrix(name: object, series: Any) -> np.ndarray:
    values = np.asarray(series, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"actions[{name!r}]: need a (steps,) or (steps, levers) series of >= 2")
    if not np.isfinite(values).all():
        raise ValueError(f"actions[{name!r}]: values must be finite")
    return values


def action_synchrony(actions: Mapping[str, Any] | RunResult, threshold: float = 0.5) -> Synchrony:
    """Correlation of the agents' lever time series (see the module doc).

    Args:
        actions: ``{agent: (steps,) or (steps, levers) array or DataFrame}``, all the same
            shape; or a :class:`RunResult`, whose applied levers are used.
        threshold: Correlation at or above which the synchrony graph links two agents.

    Returns:
        The :class:`Synchrony`.

    Raises:
        ValueError: Fewer than two agents, mismatched shapes or non-finite values.
    """
    if isinstance(actions, RunResult):
        actions = lever_actions(actions)
    names = list(actions)
    if len(names) < 2:
        raise ValueError(f"action synchrony needs at least two agents, got {names}")
    mats = [_as_matrix(n, actions[n]) for n in names]
    if len({m.shape for m in mats}) != 1:
        shapes = {n: m.shape for n, m in zip(names, mats, strict=True)}
        raise ValueError(f"actions must all have the same shape, got {shapes}")
    centred = np.stack([(m - m.mean(axis=0)).ravel() for m in mats])
    norms = np.linalg.norm(centred, axis=1)
    moving = np.array([_varies(m, c) for m, c in zip(mats, centred, strict=True)])
    unit = np.where(moving[:, None], centred / np.where(moving, norms, 1.0)[:, None], 0.0)
    corr = np.clip(unit @ unit.T, -1.0, 1.0)
    for i in np.flatnonzero(~moving):
        for j in np.flatnonzero(~moving):
            corr[i, j] = float(np.allclose(mats[i], mats[j], rtol=0.0, atol=_TINY))
    np.fill_diagonal(corr, 1.0)
    frame = pd.DataFrame(corr, index=names, columns=names)
    graph = nx.Graph(threshold=float(threshold))
    graph.add_nodes_from(names)
    upper = np.triu_indices(len(names), k=1)
    for i, j in zip(*upper, strict=True):
        if corr[i, j] >= threshold:
            graph.add_edge(names[i], names[j], weight=float(corr[i, j]))
    # eigvalsh: the matrix is symmetric, its eigenvalues real and sorted ascending.
    share = float(np.linalg.eigvalsh(corr)[-1]) / len(names)
    static = {n: not bool(m) for n, m in zip(names, moving, strict=True)}
    mean = float(corr[upper].mean())
    return Synchrony(frame, graph, mean, min(1.0, share), float(threshold), static)


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA between two representations of the same probes (rows = probes).

    Args:
        x: ``(n, p)`` array (a 1-D array is one feature).
        y: ``(n, q)`` array.

    Returns:
        CKA in [0, 1] (see the module doc for constant representations).

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
    varies_a, varies_b = _varies(a, ca), _varies(b, cb)
    if not (varies_a and varies_b):
        return float(varies_a == varies_b)
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
        matrix: Policy-by-policy CKA (symmetric, unit diagonal).
        mean: Mean CKA over distinct pairs.
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
    mean = float(matrix[np.triu_indices(n, k=1)].mean())
    return PolicySimilarity(pd.DataFrame(matrix, index=names, columns=names), mean)


def convergence_components(
    actions: Synchrony | Mapping[str, Any] | RunResult | None = None,
    *,
    similarity: PolicySimilarity | None = None,
) -> dict[str, float]:
    """The [0, 1] components :func:`convergence_index` averages.

    * ``correlation``: mean pairwise action correlation, negative values clipped to 0;
    * ``eigenvalue``: ``(lambda_max - 1) / (n - 1)``, the largest eigenvalue of the
      correlation matrix rescaled from [1, n] to [0, 1] (0: no common mode; 1: one);
    * ``cka``: mean pairwise policy CKA (only when ``similarity`` is given).
    """
    parts: dict[str, float] = {}
    if actions is not None:
        sync = actions if isinstance(actions, Synchrony) else action_synchrony(actions)
        n = len(sync.agents)
        parts["correlation"] = float(np.clip(sync.mean_correlation, 0.0, 1.0))
        parts["eigenvalue"] = float(np.clip((sync.eigenvalue_share * n - 1.0) / (n - 1), 0, 1))
    if similarity is not None:
        parts["cka"] = float(np.clip(similarity.mean, 0.0, 1.0))
    return parts


def convergence_index(
    actions: Synchrony | Mapping[str, Any] | RunResult | None = None,
    *,
    similarity: PolicySimilarity | None = None,
) -> float:
    """One number in [0, 1]: how alike the agents have become.

    ``index = mean(components)`` over the components of :func:`convergence_components`
    that the inputs allow: ``correlation`` and ``eigenvalue`` from the actions,
    ``cka`` from the policies. 1 means identical behaviour (every action correlation 1,
    one common mode, identical representations); 0 means unrelated or opposed agents.

    Args:
        actions: Anything :func:`action_synchrony` takes, or its result.
        similarity: A :func:`policy_similarity` result.

    Raises:
        ValueError: Neither ``actions`` nor ``similarity`` was given.
    """
    parts = convergence_components(actions, similarity=similarity)
    if not parts:
        raise ValueError("convergence_index needs actions and/or a policy similarity")
    return float(np.mean(list(parts.values())))
