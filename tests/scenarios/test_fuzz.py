"""Our own fuzz suite: mutated built-in scenario files and CLI values never break the world.

Every mutated input ends in exactly one of two ways: a :class:`ScenarioError` whose
message names a field (exit 2 on the command line), or a run whose summary is finite and
that conserves money and units at every step. Never a traceback, never NaN in
``summary.json``.

Example counts: the CI counts below; ``pytest --hypothesis-profile=long`` (registered in
``tests/conftest.py``) raises every test here to that profile's count for a soak run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from liqnet.market import MarketModel
from liqnet.scenarios import builtin_names
from liqnet.scenarios.cli import build_parser
from liqnet.scenarios.loader import ScenarioError, apply_overrides, resolve_raw, validate
from liqnet.scenarios.run import _result_from_model

FUZZ_STEPS = 12
"""Steps each mutated world runs (the shocks of most built-ins come later; the mutations
reach them through ``shocks.*.step``)."""


def fuzz(ci: int) -> settings:
    """Settings of a fuzz test: ``ci`` examples, derandomised (the same examples on every
    CI run, so main stays green or red for a reason); under a profile that asks for more
    than 100 (``--hypothesis-profile=long``), that many random examples."""
    loaded = settings.default.max_examples
    soak = loaded > 100
    return settings(
        max_examples=loaded if soak else ci,
        derandomize=not soak,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


RAW = {name: resolve_raw(name)[0] for name in builtin_names()}


def leaves(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value in a raw scenario table (list items by index)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, f"{prefix}{k}.")]
    if isinstance(node, list) and node and isinstance(node[0], dict | list):
        return [p for i, v in enumerate(node) for p in leaves(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")]


EXTREMES = st.sampled_from(
    [0, -1, 1, 2, 0.0, -0.0, 1e-12, 5e-324, -1e308, 1e308, 1e15, 2**63, -(2**63), 10**30]
)
WRONG_TYPES = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.sampled_from(["a", "share", "step"]), st.integers(0, 3), max_size=2),
    st.just("3"),
    st.just("yes"),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A built-in's raw table with one to three of its values replaced or removed."""
    name = draw(st.sampled_from(sorted(RAW)))
    raw = copy.deepcopy(RAW[name])
    paths = leaves(raw)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        value = draw(
            st.one_of(
                EXTREMES,
                WRONG_TYPES,
                st.floats(allow_nan=False, allow_infinity=False),
                st.integers(-(10**6), 10**6),
            )
        )
        # The path may no longer exist after an earlier mutation: then this one is skipped.
        with contextlib.suppress(ScenarioError):
            raw = apply_overrides(raw, {path: value})
    return name, raw


SCALES = st.sampled_from([0.0, 1e-9, 1e-3, 0.1, 0.5, 2.0, 10.0, 1e3, 1e6, 1e12, 1e300])


@st.composite
def rescaled(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A built-in's raw table with one to four numbers scaled (types kept), so most
    examples validate and run: extremes of depth, capital, prices, rates and counts."""
    name = draw(st.sampled_from(sorted(RAW)))
    raw = copy.deepcopy(RAW[name])
    numeric = []
    for path in leaves(raw):
        node: Any = raw
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, int | float) and not isinstance(node, bool):
            numeric.append((path, node))
    for _ in range(draw(st.integers(1, 4))):
        path, value = draw(st.sampled_from(numeric))
        scaled = value * draw(SCALES)
        new = int(min(scaled, 2**62)) if isinstance(value, int) else scaled
        raw = apply_overrides(raw, {path: new})
    return name, raw


def changes(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The values in ``raw`` that differ from the built-in (shown with a failing example)."""
    before = {p: _at(RAW[name], p) for p in leaves(RAW[name])}
    after = {p: _at(raw, p) for p in leaves(raw)}
    return {
        p: after.get(p, "<removed>")
        for p in sorted(set(before) | set(after))
        if before.get(p, "<absent>") != after.get(p, "<removed>")
    }


def _at(node: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def assert_finite(value: Any, where: str = "summary") -> None:
    """Every number in a (nested) summary is finite."""
    if isinstance(value, dict):
        for key, sub in value.items():
            assert_finite(sub, f"{where}.{key}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        assert math.isfinite(value), f"{where} = {value}"


def run_conserving(scenario: Any) -> dict[str, Any]:
    """Run a few steps with cash and units checked every step; the run's summary."""
    model = MarketModel(scenario)
    cash, units = model.total_cash(), model.total_units()
    scale = max([abs(v) for v in model.external_cash.values()] + [1.0])
    for _ in range(min(scenario.steps, FUZZ_STEPS)):
        model.step()
        assert model.total_cash() == pytest.approx(cash, abs=1e-9 * scale)
        for asset, total in model.total_units().items():
            # Holdings net out (external accounts hold minus what entered the world), so
            # the tolerance is a rounding error on the gross units in play.
            gross = abs(model.pools[asset].units) + abs(model.external_units[asset])
            assert total == pytest.approx(units[asset], abs=1e-9 * gross + 1e-9)
    summary = _result_from_model(model, scenario).summary
    json.dumps(summary, allow_nan=False)  # what summary.json must be able to hold
    return summary


def small_positions(raw: dict[str, Any]) -> dict[str, Any]:
    """Fuzzed worlds with few positions, so each example runs in well under a second."""
    protocols = raw.get("protocols")
    if not isinstance(protocols, list):
        return raw
    for spec in protocols:
        params = spec.get("params") if isinstance(spec, dict) else None
        if isinstance(params, dict) and isinstance(params.get("positions", 0), int):
            params["positions"] = min(params.get("positions", 200), 200)
    return raw


@fuzz(150)
@given(case=mutated())
def test_a_mutated_file_is_a_field_error_or_validates(case: tuple[str, dict]) -> None:
    name, raw = case
    try:
        validate(raw, f"fuzzed {name}")
    except ScenarioError as err:
        lines = str(err).splitlines()
        assert lines[0].startswith(f"fuzzed {name}")
        assert all(len(line) < 400 for line in lines)
        assert len(lines) >= 2 or ":" in lines[0]


@fuzz(30)
@given(case=st.one_of(rescaled(), mutated()))
def test_a_mutated_world_that_validates_runs_finite_and_conserving(
    case: tuple[str, dict],
) -> None:
    name, raw = case
    note(f"{name} with {changes(name, raw)}")
    try:
        scenario = validate(small_positions(raw), f"fuzzed {name}")
    except ScenarioError:
        return
    assert_finite(run_conserving(scenario))


@fuzz(60)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_scenario_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "bytes.toml"
    path.write_bytes(data)
    from liqnet.scenarios import load

    with pytest.raises(ScenarioError):
        load(path)


FLAGS = [
    ["run", "flash_crash", "--seed"],
    ["evaluate", "flash_crash", "--policies", "static", "--seeds"],
    ["evaluate", "flash_crash", "--policies", "static", "--steps"],
    ["train", "baseline", "--steps"],
    ["train", "baseline", "--workers"],
    ["train", "baseline", "--envs"],
    ["train", "baseline", "--team-weight"],
    ["train", "baseline", "--revenue-weight"],
    ["sweep", "shock_grid", "--max-parallel"],
    ["sweep", "shock_grid", "--steps"],
]


@fuzz(150)
@given(
    flag=st.sampled_from(FLAGS),
    value=st.one_of(
        st.text(max_size=12).filter(lambda s: not s.startswith("-") or s[1:2].isdigit()),
        st.integers(-(2**70), 2**70).map(str),
        st.floats().map(str),
    ),
)
def test_cli_values_parse_or_exit_2_with_one_line(flag: list[str], value: str) -> None:
    parser = build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args([*flag, value])
    except SystemExit as exit_info:
        assert exit_info.code == 2
        err = stderr.getvalue().strip().splitlines()
        assert err[-1].startswith("liqnet ") and "error: argument" in err[-1]
