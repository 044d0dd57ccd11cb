"""Imports point down (docs/ARCHITECTURE.md "Layers"): the import-linter contract in `.importlinter` runs
with the suite, and is itself shown to fail on wrong-way imports in a throwaway tree of the same packages."""
import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """Run `lint-imports` with the project's contract on the packages found in `cwd` (a fresh process, so the
    packages already imported by this test run cannot stand in for the ones under `cwd`)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache", "--no-logo", str(CONFIG)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def root_packages() -> list[str]:
    config = configparser.ConfigParser()
    config.read(CONFIG)
    return config["importlinter"]["root_packages"].split()


def test_the_project_keeps_the_layers_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_every_first_party_package_is_under_the_contract():
    """A new app left out of `root_packages` would not be checked at all."""
    packages = sorted(path.parent.name for path in ROOT.glob("*/__init__.py"))
    assert sorted(root_packages()) == packages


# The allowed shape, one import per floor, plus what the contract lets through on purpose.
ALLOWED = {
    "portal/views.py": "import tickets.views\nimport orders.views\n",
    "api/views.py": "import tickets.services\nimport orders.services\nimport accounts.models\n",
    "tickets/selectors.py": "from orders.selectors import orders_for\n",
    "tickets/services.py": "from orders.models import Order\n",
    "orders/services.py": "import billing.services\n",
    "billing/services.py": "def pay():\n    from notifications.services import notify\n",
    "notifications/services.py": "import passkeys.models\nimport accounts.models\n",
    "passkeys/models.py": "import accounts.models\n",
    "accounts/models.py": "import core.sql\nimport ops.services\n",
    "billing/tests/test_renewal.py": "import orders.tests.factories\nimport portal.celery\n",
    "billing/conftest.py": "import orders.models\n",
}


def write_tree(base: Path, modules: dict[str, str]) -> None:
    """Every root package, the given modules, and (empty) every module they import."""
    imported = {name for source in modules.values() for name in re.findall(r"(?:from|import) ([\w.]+)", source)}
    files = {f"{package}/__init__.py": "" for package in root_packages()}
    files |= {name.replace(".", "/") + ".py": "" for name in imported} | modules
    for relative, source in files.items():
        path = base / relative
        for package in reversed(path.relative_to(base).parents[:-1]):
            (base / package).mkdir(exist_ok=True)
            (base / package / "__init__.py").touch()
        path.write_text(source)


def test_the_contract_keeps_the_allowed_shape(tmp_path):
    write_tree(tmp_path, ALLOWED)
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("importer, imported", [
    ("billing/services.py", "orders.models"),  # billing never imports orders: orders register paid hooks
    ("notifications/services.py", "billing.models"),  # notifications know no domain
    ("accounts/models.py", "notifications.services"),
    ("accounts/views.py", "passkeys.services"),
    ("passkeys/models.py", "notifications.models"),
    ("core/sql.py", "accounts.models"),  # the bottom imports no app
    ("core/sql.py", "portal.settings"),
    ("ops/services.py", "core.sql"),  # the two bottom packages are siblings
    ("orders/services.py", "tickets.models"),  # tickets/orders are siblings ...
    ("tickets/views.py", "orders.services"),  # ... and tickets' link to orders is the two named imports only
    ("portal/views.py", "api.serializers"),
    ("billing/apps.py", "portal.topbar"),  # no app imports the portal
])
def test_the_contract_breaks_on_a_wrong_way_import(tmp_path, importer, imported):
    # Inside a function, where a cycle is usually dodged, so this also shows such imports count.
    write_tree(tmp_path, ALLOWED | {importer: ALLOWED.get(importer, "") + f"\n\ndef f():\n    import {imported}\n"})
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout
    importer_module = importer.removesuffix(".py").replace("/", ".")
    assert f"{importer_module} -> {imported}" in result.stdout
