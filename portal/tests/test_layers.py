"""Imports point down: portal/api -> tickets -> orders -> billing -> notifications -> accounts -> core, ops.

Every module of an app (tests and migrations aside) may import its own app and the layers below it,
never a layer above or a sibling, including imports inside functions (tickets may name the
order a ticket is about, so they sit above orders)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"core": 0, "ops": 0, "accounts": 1, "passkeys": 1.5, "notifications": 2, "billing": 3, "orders": 4, "tickets": 5, "portal": 6, "api": 6}


def imported_apps(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYERS}
    return found


def app_modules():
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")) if (ROOT / app).is_dir() else []:
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts or "conftest.py" in parts:
                continue
            yield app, path


def test_every_app_module_imports_only_its_own_app_and_lower_layers():
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for app, path in app_modules()
        for target, line in imported_apps(path)
        if target != app and LAYERS[target] >= LAYERS[app]
    ]
    assert violations == []


@pytest.mark.parametrize("app", [app for app, rank in LAYERS.items() if rank == 0])
def test_the_bottom_layer_imports_no_app(app):
    assert [t for _, path in app_modules() if path.parts[-2] == app or app in path.parts
            for t, _ in imported_apps(path) if t != app] == []
