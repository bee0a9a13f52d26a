"""The layers import one way (docs/architecture.md, "Dependency direction").

Every import in the package is checked, lazy ones inside functions and ``TYPE_CHECKING``
blocks included: an edge that is only there for type hints still couples the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "protocols": {"core"},
    "market": {"core", "protocols"},
    "agents": {"core"},
    "analysis": {"core"},
    "scenarios": {"core", "protocols", "market", "agents", "analysis"},
}
"""Which layers each layer may import (the map's arrows; everything may use core)."""

ONLY_IN_SCENARIOS = ("ray", "argparse", "tomllib")
"""Ray, the command line and scenario files belong to the scenarios layer alone."""


def _layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``, relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    layer = path.relative_to(ROOT).parts[0]
    package = ["liqnet", layer, *path.relative_to(ROOT / layer).parts[:-1]]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.append((node.lineno, ".".join([*base, node.module or ""]).rstrip(".")))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def edges() -> list[tuple[str, str, str]]:
    """``(layer, imported layer or library, "file:line")`` of every cross-layer import."""
    out = []
    for layer in ALLOWED:
        for path in _layer_files(layer):
            where = str(path.relative_to(ROOT))
            for line, module in imports_of(path):
                parts = module.split(".")
                if parts[0] == "liqnet" and len(parts) > 1 and parts[1] in ALLOWED:
                    target = parts[1]
                elif parts[0] == "liqnet":
                    target = "core"  # ``import liqnet`` is the root package, in core/_root
                else:
                    target = parts[0]
                if target != layer:
                    out.append((layer, target, f"{where}:{line}"))
    return out


def test_every_layer_folder_exists() -> None:
    assert all((ROOT / layer).is_dir() for layer in ALLOWED)


def test_layers_import_one_way() -> None:
    wrong = [
        f"{where}: {layer} imports {target}"
        for layer, target, where in edges()
        if target in ALLOWED and target not in ALLOWED[layer]
    ]
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_only_scenarios_knows_ray_files_and_the_command_line() -> None:
    wrong = [
        f"{where}: {layer} imports {target}"
        for layer, target, where in edges()
        if target in ONLY_IN_SCENARIOS and layer != "scenarios"
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import ray\n", "ray"),
        ("def f():\n    from liqnet.scenarios.run import run\n", "scenarios"),
        (
            "if TYPE_CHECKING:\n    import liqnet.market\n",
            "market",
        ),
        ("from ...core import units\n", "core"),  # agents/sub/ -> liqnet.core
    ],
)
def test_the_scan_sees_lazy_type_only_and_relative_imports(
    tmp_path: Path, source: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module inside a fake ``agents/sub`` folder, scanned the way the real ones are.
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "agents" / "sub").mkdir(parents=True)
    (tmp_path / "agents" / "sub" / "mod.py").write_text(source)
    targets = [m for _, m in imports_of(tmp_path / "agents" / "sub" / "mod.py")]
    found = {m.split(".")[1] if m.startswith("liqnet.") else m.split(".")[0] for m in targets}
    assert expected in found
