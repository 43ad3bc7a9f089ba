"""DESIGN.md "Layering": imports point down only. Each package may import only the packages listed here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "tenantcard"

ALLOWED: dict[str, set[str]] = {
    "wire": set(),
    "crypto": {"wire"},
    "transport": {"wire"},
    "device": {"crypto", "wire", "keyvault"},
    "keyvault": set(),
    "settings": set(),
    "client": {"crypto", "wire", "transport"},
    "provider": {"client", "crypto", "wire", "transport"},
    "operator": {"client", "crypto", "wire", "transport", "keyvault", "settings"},
    "idp": {"client", "crypto", "wire", "transport", "provider", "keyvault", "settings"},
}
# The factory step: manufacturing writes a device's first store (DESIGN.md "Manufacture").
EXCEPTIONS = {("operator/services/manufacturing.py", "device")}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tenantcard" and len(parts) > 1:
                found.add(parts[1])
    return found


def _layer(path: Path) -> str:
    first = path.relative_to(SRC).parts[0]
    return first.removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if _layer(p) in ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(SRC)
    layer = _layer(path)
    bad = {
        target
        for target in _imports(path) - {layer}
        if target not in ALLOWED[layer] and target != "__init__" and (str(rel), target) not in EXCEPTIONS
    }
    assert not bad, f"{rel} ({layer}) imports {sorted(bad)}; allowed: {sorted(ALLOWED[layer])}"


def test_every_layer_is_known() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    # cli and scenario sit on top and may import anything.
    assert (packages | modules) - {"cli", "scenario"} <= set(ALLOWED), "a new package needs its place"
