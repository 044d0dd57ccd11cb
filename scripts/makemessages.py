"""Update Russian .po files: one per app (<app>/locale) plus the project's (locale/) for portal/ and templates/.

    python scripts/makemessages.py            # all
    python scripts/makemessages.py billing    # one app

Apps keep their templates in <app>/templates/<app>/ so each app's strings live in its own catalogue.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["accounts", "notifications", "billing", "orders", "tickets", "api", "passkeys"]
# Apps nested inside another app's folder keep their own catalogue.
NESTED = {"billing": ["gateways"], "notifications": ["telegram"]}
ALL_TARGETS = ["portal", *APPS, "billing/gateways", "notifications/telegram"]
DJANGO_ADMIN = str(Path(sys.executable).parent / "django-admin")
ENV = dict(os.environ, DJANGO_SETTINGS_MODULE="")


def run(cwd: Path, ignores: list[str]) -> None:
    (cwd / "locale").mkdir(exist_ok=True)
    args = [DJANGO_ADMIN, "makemessages", "-l", "ru", "--no-obsolete", "-i", ".venv/*", "-i", "*/tests/*"]
    for pattern in ignores:
        args += ["-i", pattern]
    subprocess.run(args, cwd=cwd, check=True, env={k: v for k, v in ENV.items() if v})


targets = sys.argv[1:] or ALL_TARGETS
for target in targets:
    if target == "portal":
        run(ROOT, [f"{app}/*" for app in APPS] + ["bench/*", "scripts/*", "staticfiles/*"])
    else:
        run(ROOT / target, [f"{nested}/*" for nested in NESTED.get(target, [])])
    print(f"updated {target}")
