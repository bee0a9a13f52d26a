"""Inputs that used to escape as tracebacks from the loader: each is one ScenarioError.

Regression tests of issue 19's findings (non-UTF-8 files, deep nesting in tomllib and
in ``_deep_merge``, long ``base`` chains, a 20,000-segment dotted key, names that become
unsafe folder names, and error messages that echoed a whole 1 MB value).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from liqnet.core.schema import MAX_SHOWN, shorten
from liqnet.scenarios.loader import (
    MAX_BASE_CHAIN,
    MAX_DEPTH,
    ScenarioError,
    load,
    parse_override_value,
)
from tests.helpers.scenario_files import MINIMAL_TOML, write_toml


def error_of(*args: object) -> str:
    """The message of the ScenarioError that ``load(*args)`` raises."""
    with pytest.raises(ScenarioError) as info:
        load(*args)  # type: ignore[arg-type]
    return str(info.value)


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(MINIMAL_TOML.replace('"tiny"', '"caf\xe9"').encode("latin-1"))
    message = error_of(path)
    assert "not UTF-8" in message and "0xe9" in message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    text = MINIMAL_TOML + f"\nextra = {'[' * depth}{']' * depth}\n"
    assert f"deeper than {MAX_DEPTH}" in error_of(write_toml(tmp_path, "deep.toml", text))


def test_deep_inline_tables_are_refused(tmp_path: Path) -> None:
    text = MINIMAL_TOML + "\nextra = " + "{ a = " * 40 + "1" + " }" * 40 + "\n"
    assert f"deeper than {MAX_DEPTH}" in error_of(write_toml(tmp_path, "deep.toml", text))


def test_a_long_base_chain_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path, "s0.toml", MINIMAL_TOML)
    for k in range(1, MAX_BASE_CHAIN + 3):
        write_toml(tmp_path, f"s{k}.toml", f'base = "s{k - 1}.toml"\n')
    assert load(tmp_path / f"s{MAX_BASE_CHAIN}.toml").name == "tiny"
    assert "chain of more than" in error_of(tmp_path / f"s{MAX_BASE_CHAIN + 2}.toml")


def test_a_long_dotted_key_is_refused_quickly() -> None:
    message = error_of("baseline", {".".join(["a"] * 20_000): 1})
    assert "more than 16 key segments" in message
    assert len(message) < 400


def test_a_deeply_nested_override_value_is_refused() -> None:
    with pytest.raises(ScenarioError, match="deeper than"):
        parse_override_value("[" * 5_000 + "]" * 5_000)
    assert "deeper than" in error_of(
        "baseline", {"description": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}
    )


@pytest.mark.parametrize("name", ["../../X", "/tmp/abs", "a\x00b", "with space", "x" * 101])
def test_names_that_are_not_safe_folder_names_are_refused(name: str) -> None:
    assert "name = " in error_of("baseline", {"name": name})


def test_errors_never_echo_a_huge_value() -> None:
    message = error_of("baseline", {"market.assets.ETH.volatility": "v" * 1_000_000})
    assert "market.assets.ETH.volatility" in message
    assert len(message) < 1_000 and "1,000,002 characters" in message
    assert len(shorten("y" * 10_000)) <= MAX_SHOWN + 30


def test_a_very_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(MINIMAL_TOML + "\n# " + "x" * (2 << 20) + "\n")
    assert "at most" in error_of(path)


def test_dt_hours_below_a_second_is_refused() -> None:
    assert "dt_hours" in error_of("baseline", {"dt_hours": 5e-324})
