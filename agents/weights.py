"""Checking saved weights before they act: size, keys, shapes, dtypes, values, checksum.

``torch.load(weights_only=True)`` refuses code, but not a damaged file: a flipped byte in
a tensor's data still loads, with weights changed silently, and ``load_state_dict`` casts
an int64 or complex tensor to float without a word. So every checkpoint carries a SHA-256
of its weights (:func:`state_checksum`) in its config, and :func:`check_state` compares
keys, shapes, dtypes and finiteness with the network the config describes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import torch
from torch import nn

from liqnet.core.errors import CheckpointError

MAX_PARAMETERS = 50_000_000
"""Largest network a checkpoint may describe (200 MB of float32; ours have ~10^4). The
count is taken on PyTorch's ``meta`` device, before any memory is allocated."""

CHECKSUM_FIELD = "weights_sha256"
"""Config field holding :func:`state_checksum` of the weights file."""


def state_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def parameter_count(build: Callable[[], nn.Module], where: str) -> int:
    """Parameters and buffers of the network ``build`` makes, counted without allocating.

    Raises:
        CheckpointError: If the network would exceed :data:`MAX_PARAMETERS`.
    """
    try:
        with torch.device("meta"):
            net = build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise CheckpointError(
            f"{where}: does not describe a network ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    count = sum(t.numel() for t in net.state_dict().values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: describes a network of {count:,} weights; at most {MAX_PARAMETERS:,}"
        )
    return count


def check_state(
    state: object, expected: Mapping[str, torch.Tensor], where: str, meta: Mapping[str, object]
) -> dict[str, torch.Tensor]:
    """``state`` as a state_dict that matches ``expected`` exactly, or a CheckpointError.

    Args:
        state: What ``torch.load`` returned.
        expected: The ``state_dict()`` of the network the config describes.
        where: The weights file, for messages.
        meta: The checkpoint's config; its :data:`CHECKSUM_FIELD` must match.
    """
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{where}: expected a state_dict (a dict of named tensors)")
    for key in sorted(set(expected) | set(state)):
        if key not in state:
            raise CheckpointError(f"{where}: missing tensor {key!r}")
        if key not in expected:
            raise CheckpointError(f"{where}: unexpected tensor {key!r}")
        value, want = state[key], expected[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {key!r} is a {type(value).__name__}, not a tensor")
        if value.shape != want.shape:
            raise CheckpointError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)}, the config implies "
                f"{tuple(want.shape)}"
            )
        if value.dtype != want.dtype:
            raise CheckpointError(
                f"{where}: tensor {key!r} has dtype {value.dtype}, expected {want.dtype}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{where}: tensor {key!r} holds NaN or infinite values")
    recorded = meta.get(CHECKSUM_FIELD)
    if not isinstance(recorded, str):
        raise CheckpointError(
            f"{where}: the config has no {CHECKSUM_FIELD!r} field (written before checksums; "
            "train again, or re-save it if you trust the file)"
        )
    actual = state_checksum(state)
    if actual != recorded:
        raise CheckpointError(
            f"{where}: weights do not match the config's {CHECKSUM_FIELD} (file damaged or "
            f"replaced: {actual[:12]}... != {recorded[:12]}...)"
        )
    return state
