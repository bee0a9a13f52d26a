"""Tests of :mod:`liqnet.scenarios.compose` on bad input: each bad ``[remove]``,
``[protocols.ID]`` table or ``replace`` flag is one ScenarioError naming the field and
what is allowed (the loader's other bad-input tests are in ``test_loader_errors``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.scenario_files import MINIMAL_TOML, scenario_error, write_toml

EXTENDS = 'base = "baseline"\nname = "s"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param(
            '[remove]\nprotocols = ["gmx"]\n',
            ["remove.protocols: 'gmx' is not a protocol of base 'baseline'", "'dydx']"],
            id="unknown-protocol",
        ),
        pytest.param(
            '[remove]\nassets = ["SOL"]\n',
            ["remove.assets: 'SOL' is not an asset of base 'baseline'", "['ETH', 'BTC']"],
            id="unknown-asset",
        ),
        pytest.param(
            '[remove]\nprotocols = "aave"\n',
            ["remove.protocols = 'aave'", "list"],
            id="not-a-list",
        ),
        pytest.param(
            "[remove]\nliquidators = [0]\n",
            ["remove.liquidators = [0]", "Extra inputs are not permitted"],
            id="unknown-remove-key",
        ),
        pytest.param(
            '[remove]\nprotocols = ["aave", "compound", "dydx"]\n',
            ["remove.protocols = ['aave', 'compound', 'dydx']: leaves no protocol"],
            id="no-protocol-left",
        ),
        pytest.param(
            '[remove]\nassets = ["ETH", "BTC"]\n',
            ["remove.assets = ['ETH', 'BTC']: leaves no market asset"],
            id="no-asset-left",
        ),
        pytest.param(
            '[protocols.aave]\nid = "spark"\n',
            ["protocols.aave.id = 'spark': must be 'aave' (its key) or left out"],
            id="id-differs-from-key",
        ),
        pytest.param(
            '[protocols.aave]\nreplace = "yes"\n',
            ["protocols.aave.replace = 'yes': must be true or false"],
            id="protocol-replace-not-bool",
        ),
        pytest.param(
            "[market.assets.ETH]\nreplace = 1\n",
            ["market.assets.ETH.replace = 1: must be true or false"],
            id="asset-replace-not-bool",
        ),
        pytest.param(
            "[protocols]\naave = 3\n",
            ["protocols.aave = 3: must be a table"],
            id="keyed-protocol-not-a-table",
        ),
    ],
)
def test_bad_composition_names_the_field(tmp_path: Path, text: str, fragments: list[str]) -> None:
    message = scenario_error(write_toml(tmp_path, "s.toml", EXTENDS + text))
    for fragment in fragments:
        assert fragment in message


def test_removing_an_asset_still_in_use_names_every_use(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "s.toml", EXTENDS + '[remove]\nassets = ["BTC"]\n')
    message = scenario_error(path)
    assert "remove.assets: 'BTC' is still used by protocols.0 (aave) params.collateral.BTC" in (
        message
    )
    assert "protocols.2 (dydx) params.markets.BTC" in message
    assert "compound" not in message  # ETH collateral only
    assert "[protocols.dydx] with replace = true" in message


def test_a_removed_asset_used_by_a_default_is_named(tmp_path: Path) -> None:
    text = (
        '[remove]\nassets = ["ETH"]\nprotocols = ["aave", "compound", "dydx"]\n'
        '[protocols.vault]\ntype = "options"\n'
    )
    message = scenario_error(write_toml(tmp_path, "s.toml", EXTENDS + text))
    assert "'ETH' is still used by protocols.0 (vault) params (by default)" in message


def test_a_shock_on_a_removed_asset_is_refused_by_the_schema(tmp_path: Path) -> None:
    text = (
        '[remove]\nassets = ["BTC"]\nprotocols = ["aave", "dydx"]\n'
        '[[shocks]]\nstep = 1\nasset = "BTC"\nreturn = -0.1\n'
    )
    message = scenario_error(write_toml(tmp_path, "s.toml", EXTENDS + text))
    assert "shocks[0].asset = 'BTC': allowed ['ETH']" in message


def test_remove_needs_a_base(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "s.toml", MINIMAL_TOML + '\n[remove]\nprotocols = ["pool"]\n')
    assert "remove: only a scenario with a base can remove from it" in scenario_error(path)


def test_duplicate_protocol_ids_after_composition_are_refused(tmp_path: Path) -> None:
    twice = MINIMAL_TOML + '\n[[protocols]]\nid = "pool"\ntype = "lending"\n'
    write_toml(tmp_path, "parent.toml", twice)
    text = 'base = "parent.toml"\nname = "s"\n[protocols.pool.params]\npositions = 10\n'
    message = scenario_error(write_toml(tmp_path, "s.toml", text))
    assert "protocol ids must be unique; repeated: ['pool']" in message
