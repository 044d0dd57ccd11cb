"""A module's `_private` names stay inside it: what another module needs is public, named for what it
does, in the module that owns it. Checked over every app module (tests, conftest and migrations may
reach in): `from x import _name` and `module._name` on an imported module both count."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ["core", "ops", "accounts", "passkeys", "notifications", "billing", "orders", "tickets", "portal", "api"]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name != "_"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if node.level == 0:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def reaches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, path)
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {source}.{alias.name}")
                elif _is_module(f"{source}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name) \
                and node.value.id in modules:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def app_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts or path.name == "conftest.py":
                continue
            yield path


def test_no_module_uses_another_modules_private_names():
    assert [reach for path in app_modules() for reach in reaches(path)] == []
