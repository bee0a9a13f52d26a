"""Model convergence: do the protocols' agents act, and represent the world, alike?

Three views of convergence, each documented where it is computed:

* **Behaviour** -- :func:`action_synchrony` over a run's lever time series, or
  :func:`response_similarity` over a common probe set of states (every policy answers
  the same observations, so differences are the policies', not the states'). Each
  agent's answers form a ``T x k`` matrix (steps or probes x levers); every lever
  column is centred on its own mean and the matrix flattened to one vector, so
  ``corr(i, j)`` is the cosine between the two centred response paths: 1 when they
  move together, 0 when unrelated, -1 when opposed. An agent whose response never
  varies has no direction: its correlation with anyone is **undefined (NaN)**, not
  "converged" -- two static policies are alike by construction, not because they
  learned the same thing -- and summaries (mean correlation, the eigenvalue share, the
  convergence index) are taken over the defined pairs only, NaN when there is none.
* **Models** -- :func:`linear_cka` / :func:`policy_similarity`: linear Centered Kernel
  Alignment (Kornblith et al. 2019, "Similarity of Neural Network Representations
  Revisited", ICML) between policies' representations (outputs, or hidden activations
  with ``layer=``) of a common probe set,
  ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred X, Y;
  1 for identical representations, invariant to orthogonal transforms and isotropic
  scaling; NaN when either representation is constant (no variance to align).
* **Structure** -- :func:`structural_similarity`: the share of protocol pairs that run
  the same model (identical weights), the same architecture and the same training data,
  from :class:`ModelCard` s.
* :func:`convergence_index`: one number in [0, 1] for a sweep table (formula there), NaN
  when no component is defined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from liqnet.analysis.results import lever_actions
from liqnet.analysis.similarity import (
    ModelCard,
    PolicySimilarity,
    linear_cka,
    policy_similarity,
    representations,
    structural_similarity,
    varies,
)
from liqnet.core.result import RunResult

__all__ = [
    "ModelCard",
    "PolicySimilarity",
    "Synchrony",
    "action_synchrony",
    "convergence_components",
    "convergence_index",
    "linear_cka",
    "policy_similarity",
    "representations",
    "response_similarity",
    "structural_similarity",
]


@dataclass(frozen=True)
class Synchrony:
    """Synchrony of the agents' actions.

    Attributes:
        correlation: Agent-by-agent correlation matrix (symmetric, unit diagonal; NaN
            off the diagonal in the rows and columns of static agents).
        graph: Undirected graph of agents (node attribute ``static``), an edge
            (``weight`` = correlation) for every defined pair whose correlation is at
            least ``threshold``.
        mean_correlation: Mean over distinct defined pairs, in [-1, 1]; NaN if none.
        eigenvalue_share: Largest eigenvalue of the moving agents' correlation matrix /
            their number, in [1/m, 1]: 1 when every moving agent moves as one; NaN with
            fewer than two moving agents.
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
    moving = np.array([varies(m, c) for m, c in zip(mats, centred, strict=True)])
    unit = np.where(moving[:, None], centred / np.where(moving, norms, 1.0)[:, None], 0.0)
    corr = np.clip(unit @ unit.T, -1.0, 1.0)
    # A constant response has no direction: its correlation with anyone is undefined.
    corr[~moving, :] = np.nan
    corr[:, ~moving] = np.nan
    np.fill_diagonal(corr, 1.0)
    frame = pd.DataFrame(corr, index=names, columns=names)
    static = {n: not bool(m) for n, m in zip(names, moving, strict=True)}
    graph = nx.Graph(threshold=float(threshold))
    graph.add_nodes_from((n, {"static": static[n]}) for n in names)
    upper = np.triu_indices(len(names), k=1)
    for i, j in zip(*upper, strict=True):
        if corr[i, j] >= threshold:  # False for NaN: undefined pairs get no edge
            graph.add_edge(names[i], names[j], weight=float(corr[i, j]))
    pairs = corr[upper]
    defined = pairs[np.isfinite(pairs)]
    mean = float(defined.mean()) if defined.size else math.nan
    share = math.nan
    if moving.sum() >= 2:
        # eigvalsh: the matrix is symmetric, its eigenvalues real and sorted ascending.
        sub = corr[np.ix_(moving, moving)]
        share = min(1.0, float(np.linalg.eigvalsh(sub)[-1]) / int(moving.sum()))
    return Synchrony(frame, graph, mean, share, float(threshold), static)


def response_similarity(
    policies: Mapping[str, Any] | Sequence[Any],
    probes: Any,
    *,
    threshold: float = 0.5,
    batched: bool = False,
) -> Synchrony:
    """Behavioural similarity on a common probe set: how alike the policies *answer*.

    Every policy acts on the same ``(n, obs_dim)`` probe observations (see
    ``liqnet.scenarios.probes.probe_states``); its ``(n, levers)`` responses take the
    place of a lever time series in :func:`action_synchrony`, so the correlation of two
    policies is the cosine of their centred responses across the probes, and a policy
    whose response does not vary with the state is undefined (NaN), not converged.

    Args:
        policies: ``{name: policy}`` (or a sequence, named by position); each a callable
            ``obs -> action`` or a ``torch.nn.Module`` (see :func:`representations`).
        probes: The shared observations.
        threshold: Edge threshold of the similarity graph.
        batched: Call plain callables once on the whole batch.

    Raises:
        ValueError: Fewer than two policies or fewer than two probes.
    """
    named = dict(policies) if isinstance(policies, Mapping) else dict(enumerate(policies))
    responses = {str(k): representations(p, probes, batched=batched) for k, p in named.items()}
    return action_synchrony(responses, threshold=threshold)


def convergence_components(
    actions: Synchrony | Mapping[str, Any] | RunResult | None = None,
    *,
    similarity: PolicySimilarity | None = None,
) -> dict[str, float]:
    """The [0, 1] components :func:`convergence_index` averages (NaN: undefined).

    * ``correlation``: mean pairwise action correlation over defined pairs, negative
      values clipped to 0;
    * ``eigenvalue``: ``(lambda_max - 1) / (m - 1)``, the largest eigenvalue of the
      moving agents' correlation matrix rescaled from [1, m] to [0, 1] (0: no common
      mode; 1: one);
    * ``cka``: mean pairwise policy CKA (only when ``similarity`` is given).

    Both action components are NaN when fewer than two agents' levers move.
    """
    parts: dict[str, float] = {}
    if actions is not None:
        sync = actions if isinstance(actions, Synchrony) else action_synchrony(actions)
        m = len(sync.agents) - sum(sync.static.values())
        parts["correlation"] = float(np.clip(sync.mean_correlation, 0.0, 1.0))
        rescaled = (sync.eigenvalue_share * m - 1.0) / (m - 1) if m >= 2 else math.nan
        parts["eigenvalue"] = float(np.clip(rescaled, 0.0, 1.0))
    if similarity is not None:
        parts["cka"] = float(np.clip(similarity.mean, 0.0, 1.0))
    return parts


def convergence_index(
    actions: Synchrony | Mapping[str, Any] | RunResult | None = None,
    *,
    similarity: PolicySimilarity | None = None,
) -> float:
    """One number in [0, 1]: how alike the agents have become.

    ``index = mean(components)`` over the defined components of
    :func:`convergence_components` that the inputs allow: ``correlation`` and
    ``eigenvalue`` from the actions, ``cka`` from the policies. 1 means identical
    behaviour (every action correlation 1, one common mode, identical representations);
    0 means unrelated or opposed agents; NaN means undefined: no two agents' responses
    vary (all-static policies are not "converged"), and no CKA is defined.

    Args:
        actions: Anything :func:`action_synchrony` takes, or its result.
        similarity: A :func:`policy_similarity` result.

    Raises:
        ValueError: Neither ``actions`` nor ``similarity`` was given.
    """
    parts = convergence_components(actions, similarity=similarity)
    if not parts:
        raise ValueError("convergence_index needs actions and/or a policy similarity")
    defined = [v for v in parts.values() if math.isfinite(v)]
    return float(np.mean(defined)) if defined else math.nan
