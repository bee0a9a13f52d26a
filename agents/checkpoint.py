"""MAPPO checkpoints and the ``"mappo:PATH"`` policy.

A checkpoint is a directory with two files, written atomically (temporary name, then
rename, so an interrupted save never leaves a half-written file under a final name):

* ``model.pt`` - the :class:`~liqnet.agents.mappo.ActorCritic` ``state_dict``, loaded
  with ``torch.load(..., weights_only=True)`` (no code runs on load);
* ``config.json`` - the :class:`~liqnet.agents.mappo.MAPPOConfig`, the network shape
  (``obs_dim``, ``n_agents``, ``action_dim``), the agent ids and observation names it was
  trained on, and free-form training notes.

``PATH`` may name the directory or its ``model.pt``. A corrupt or mismatched checkpoint
raises :class:`CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liqnet.agents.base import Policy, PolicyContext
from liqnet.agents.mappo import ActorCritic, MAPPOConfig
from liqnet.agents.weights import CHECKSUM_FIELD, check_state, parameter_count, state_checksum
from liqnet.core.errors import CheckpointError
from liqnet.core.io import atomic_write
from liqnet.core.levers import LEVER_NAMES

FORMAT = "liqnet-mappo-1"
"""Value of ``format`` in ``config.json``; other values are refused."""

MODEL_FILE = "model.pt"
"""Weights file inside a checkpoint directory."""
CONFIG_FILE = "config.json"
"""Configuration file inside a checkpoint directory."""
_REQUIRED = ("format", "config", "obs_dim", "n_agents", "action_dim", "agent_ids", CHECKSUM_FIELD)


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        net: The networks, weights loaded, in eval mode.
        config: The training hyper-parameters.
        agent_ids: Agent slots, in order.
        observation_names: Observation entries the actor expects (empty if unknown).
        notes: Free-form training notes (scenarios, steps, wall time, ...).
    """

    net: ActorCritic
    config: MAPPOConfig
    agent_ids: tuple[str, ...]
    observation_names: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    directory: str | Path,
    net: ActorCritic,
    config: MAPPOConfig,
    agent_ids: tuple[str, ...] | list[str],
    observation_names: tuple[str, ...] | list[str] = (),
    notes: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.pt`` and ``config.json`` into ``directory``; returns ``model.pt``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "config": config.to_dict(),
        "obs_dim": net.obs_dim,
        "n_agents": net.n_agents,
        "action_dim": net.action_dim,
        "agent_ids": list(agent_ids),
        "observation_names": list(observation_names),
        "notes": notes or {},
    }
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    meta[CHECKSUM_FIELD] = state_checksum(state)
    # Weights first: a config.json beside stale weights would be the worse mismatch.
    atomic_write(out / MODEL_FILE, lambda p: torch.save(state, p))
    text = json.dumps(meta, indent=2, default=float)
    atomic_write(out / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return out / MODEL_FILE


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    directory = p if p.is_dir() or p.suffix != ".pt" else p.parent
    model = p if p.suffix == ".pt" else directory / MODEL_FILE
    return model, directory / CONFIG_FILE


def _read_config(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint config {path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint config {path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint config {path}: expected a JSON object")
    for name in _REQUIRED:
        if name not in meta:
            raise CheckpointError(f"checkpoint config {path}: missing field {name!r}")
    if meta["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint config {path}: field 'format' = {meta['format']!r}, expected {FORMAT!r}"
        )
    for name in ("obs_dim", "n_agents", "action_dim"):
        value = meta[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(
                f"checkpoint config {path}: field {name!r} = {value!r}, expected an integer >= 1"
            )
    if meta["action_dim"] != len(LEVER_NAMES):
        raise CheckpointError(
            f"checkpoint config {path}: field 'action_dim' = {meta['action_dim']}, expected "
            f"{len(LEVER_NAMES)} (the levers {list(LEVER_NAMES)})"
        )
    ids = meta["agent_ids"]
    if not _strings(ids) or len(ids) != meta["n_agents"]:
        raise CheckpointError(
            f"checkpoint config {path}: field 'agent_ids' must list n_agents = "
            f"{meta['n_agents']} ids (strings)"
        )
    if not _strings(meta.get("observation_names", [])):
        raise CheckpointError(
            f"checkpoint config {path}: field 'observation_names' must be a list of strings"
        )
    if not isinstance(meta.get("notes", {}), dict):
        raise CheckpointError(f"checkpoint config {path}: field 'notes' must be a JSON object")
    return meta


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint directory (or its ``model.pt``).

    Raises:
        CheckpointError: If a file is missing or corrupt, a config field is missing or
            out of range, or a weight is missing, unexpected or of the wrong shape.
    """
    model_path, config_path = _paths(path)
    meta = _read_config(config_path)
    try:
        config = MAPPOConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint config {config_path}: field 'config': {err}") from None
    shape = (meta["obs_dim"], meta["n_agents"], meta["action_dim"])
    # Sized before anything is allocated: obs_dim = 1e9 must not try to take 256 GB.
    parameter_count(lambda: ActorCritic(*shape, config), f"checkpoint config {config_path}")
    net = ActorCritic(*shape, config)
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint weights {model_path}: file not found") from None
    except Exception as err:  # torch raises many types for a damaged file
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"checkpoint weights {model_path}: cannot be read as a weights-only state_dict "
            f"({type(err).__name__}: {first})"
        ) from None
    state = check_state(state, net.state_dict(), f"checkpoint weights {model_path}", meta)
    net.load_state_dict(state)
    net.eval()
    return Checkpoint(
        net=net,
        config=config,
        agent_ids=tuple(meta["agent_ids"]),
        observation_names=tuple(meta.get("observation_names") or ()),
        notes=dict(meta.get("notes") or {}),
    )


class MAPPOPolicy(Policy):
    """A trained MAPPO actor acting deterministically (the Gaussian's mean, clipped).

    With shared parameters it acts for any agent; with independent parameters each
    agent uses the actor of the checkpoint slot with its id.

    Args:
        checkpoint: A loaded checkpoint.
        path: Where it came from (for error messages).
    """

    name = "mappo"

    def __init__(self, checkpoint: Checkpoint, path: str = "") -> None:
        self.checkpoint = checkpoint
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> MAPPOPolicy:
        """Build the policy from a checkpoint path (directory or ``model.pt``)."""
        return cls(load_checkpoint(path), str(path))

    def reset(self, context: PolicyContext) -> None:
        """Check the env's observation layout and agents against the checkpoint."""
        ckpt = self.checkpoint
        names = tuple(context.observation_names)
        if ckpt.observation_names and names != ckpt.observation_names:
            diff = sorted(set(names) ^ set(ckpt.observation_names)) or "order differs"
            raise CheckpointError(
                f"checkpoint {self.path}: field 'observation_names' does not match the "
                f"environment (names in only one of them: {diff}); it was trained on "
                "another observation layout: train it again with `liqnet train`"
            )
        if context.observation_space.shape != (ckpt.net.obs_dim,):
            raise CheckpointError(
                f"checkpoint {self.path}: field 'obs_dim' = {ckpt.net.obs_dim}, environment "
                f"observations have shape {context.observation_space.shape}"
            )
        if ckpt.config.sharing == "independent":
            unknown = sorted(set(context.agent_ids) - set(ckpt.agent_ids))
            if unknown:
                raise CheckpointError(
                    f"checkpoint {self.path}: field 'agent_ids' = {list(ckpt.agent_ids)} has "
                    f"no actor for {unknown} (independent parameters)"
                )
        super().reset(context)

    def act(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Mean levers of every observed agent, clipped to [-1, 1]."""
        net, agents = self.checkpoint.net, list(observations)
        if not agents:
            return {}
        matrix = np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents])
        with torch.no_grad():
            x = net.obs_norm.normalize(torch.from_numpy(matrix))
            if len(net.actors) == 1:
                mean = net.actors[0](x)  # shared: the same network for every agent
            else:
                slots = self.checkpoint.agent_ids
                mean = torch.stack([net.actors[slots.index(a)](x[k]) for k, a in enumerate(agents)])
        levers = mean.clamp(-1.0, 1.0).numpy()
        return {agent: levers[k] for k, agent in enumerate(agents)}


def make_mappo_policy(argument: str | None) -> Policy:
    """Factory of the ``"mappo:PATH"`` policy spec: the actors of a saved checkpoint."""
    if not argument:
        raise ValueError('policy "mappo" needs a checkpoint: "mappo:PATH"')
    return MAPPOPolicy.load(argument)
