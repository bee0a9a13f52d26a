"""Damaged and doctored checkpoints are refused (:mod:`liqnet.agents.weights`).

Regression tests of issue 19: byte-flipped ``model.pt`` files that loaded with changed
weights, int64/complex tensors cast silently, int state-dict keys, NaN weights,
``observation_names = 5`` and ``obs_dim = 1e9`` (which tried to allocate 256 GB).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from liqnet.agents.checkpoint import load_checkpoint, save_checkpoint
from liqnet.agents.mappo import ActorCritic, MAPPOConfig
from liqnet.agents.weights import CHECKSUM_FIELD, state_checksum
from liqnet.core.errors import CheckpointError


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A valid checkpoint of a tiny shared network (10 observations, 3 agents)."""
    config = MAPPOConfig(hidden_sizes=(8,))
    torch.manual_seed(0)
    net = ActorCritic(10, 3, 6, config)
    save_checkpoint(tmp_path, net, config, ["a", "b", "c"], [f"o{i}" for i in range(10)])
    return tmp_path


def resave(folder: Path, change: Callable[[dict], object], checksum: bool = True) -> None:
    """Rewrite the weights with ``change`` applied, with a matching checksum if asked."""
    state = torch.load(folder / "model.pt", weights_only=True)
    changed = change(state)
    state = changed if isinstance(changed, dict) else state
    torch.save(state, folder / "model.pt")
    if checksum:
        meta = json.loads((folder / "config.json").read_text())
        meta[CHECKSUM_FIELD] = state_checksum({str(k): v for k, v in state.items()})
        (folder / "config.json").write_text(json.dumps(meta))


def edit_config(folder: Path, **changes: object) -> None:
    """Set fields of the checkpoint's config.json."""
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**meta, **changes}))


def test_a_valid_checkpoint_round_trips(checkpoint: Path) -> None:
    loaded = load_checkpoint(checkpoint)
    assert loaded.agent_ids == ("a", "b", "c")


def test_every_byte_flip_is_refused_or_harmless(checkpoint: Path) -> None:
    data = (checkpoint / "model.pt").read_bytes()
    original = {k: v.clone() for k, v in load_checkpoint(checkpoint).net.state_dict().items()}
    refused = 0
    for offset in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        (checkpoint / "model.pt").write_bytes(bytes(flipped))
        try:
            net = load_checkpoint(checkpoint).net
        except CheckpointError:
            refused += 1
            continue
        # A flip in zip padding or an unused field may load: then with the same weights.
        assert all(torch.equal(net.state_dict()[k], v) for k, v in original.items())
    assert refused > 50


def test_changed_weights_are_refused_by_the_checksum(checkpoint: Path) -> None:
    resave(checkpoint, lambda s: s["actors.0.0.weight"].add_(626.0), checksum=False)
    with pytest.raises(CheckpointError, match="weights do not match the config's weights_sha256"):
        load_checkpoint(checkpoint)


def test_a_config_without_a_checksum_is_refused(checkpoint: Path) -> None:
    meta = json.loads((checkpoint / "config.json").read_text())
    del meta[CHECKSUM_FIELD]
    (checkpoint / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.float64])
def test_tensors_of_another_dtype_are_refused(checkpoint: Path, dtype: torch.dtype) -> None:
    key = "actors.0.0.weight"
    resave(checkpoint, lambda s: s.__setitem__(key, s[key].to(dtype)))
    with pytest.raises(CheckpointError, match=f"'{key}' has dtype {dtype}, expected torch.float32"):
        load_checkpoint(checkpoint)


def test_nan_weights_are_refused(checkpoint: Path) -> None:
    resave(checkpoint, lambda s: s["actors.0.0.bias"].fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"'actors\.0\.0\.bias' holds NaN"):
        load_checkpoint(checkpoint)


def test_int_state_dict_keys_are_refused(checkpoint: Path) -> None:
    resave(checkpoint, lambda s: {k if i else 7: v for i, (k, v) in enumerate(s.items())})
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("observation_names", 5, "'observation_names' must be a list of strings"),
        ("agent_ids", [1, 2, 3], "'agent_ids' must list"),
        ("notes", [], "'notes' must be a JSON object"),
        ("action_dim", 7, "'action_dim' = 7, expected 6"),
    ],
)
def test_config_fields_of_the_wrong_type_are_refused(
    checkpoint: Path, field: str, value: object, message: str
) -> None:
    edit_config(checkpoint, **{field: value})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(checkpoint)


def test_a_huge_network_is_refused_before_allocating(checkpoint: Path) -> None:
    edit_config(checkpoint, obs_dim=10**9)
    with pytest.raises(CheckpointError, match="weights; at most 50,000,000"):
        load_checkpoint(checkpoint)
