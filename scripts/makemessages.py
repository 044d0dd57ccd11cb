"""Update Russian .po files: one per app (<app>/locale) plus the project's (locale/) for portal/ and templates/.

    python scripts/makemessages.py            # all
    python scripts/makemessages.py billing    # one app

Apps keep their templates in <app>/templates/<app>/ so each app's strings live in its own catalogue.
Jinja2 templates (<app>/jinja2/, jinja2/; core/jinja.py) are read by Jinja2's own extractor, which
knows `_("…%(id)s…", id=x)`, `ngettext` and `pgettext`: each gets a Python twin beside it for the run
(`name.jinja-messages.py`, one call per message on the message's line), which makemessages reads and
which is deleted afterwards.
"""
import os
import subprocess
import sys
from pathlib import Path

import jinja2

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


def jinja_templates() -> list[Path]:
    return sorted(p for p in ROOT.glob("**/jinja2/**/*.jinja.html") if ".venv" not in p.parts)


def jinja_twin(template: Path) -> str:
    """A Python file with the template's messages as gettext calls, each on the template's line."""
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    lines: dict[int, list[str]] = {}
    for lineno, func, message in env.extract_translations(template.read_text()):
        strings = [m for m in (message if isinstance(message, tuple) else (message,)) if m is not None]
        name = {"_": "gettext"}.get(func, func)
        if name in ("ngettext", "npgettext"):
            strings.append(0)
        lines.setdefault(lineno, []).append(f"{name}({', '.join(repr(s) for s in strings)})")
    return "\n".join("; ".join(lines.get(n, [])) for n in range(1, max(lines, default=0) + 1)) + "\n"


# Not `name.jinja.html.py`: makemessages writes and deletes that name for the template's own pass.
twins = {template: template.with_name(template.name.replace(".jinja.html", ".jinja-messages.py"))
         for template in jinja_templates()}
try:
    for template, twin in twins.items():
        twin.write_text(jinja_twin(template))
    targets = sys.argv[1:] or ALL_TARGETS
    for target in targets:
        if target == "portal":
            run(ROOT, [f"{app}/*" for app in APPS] + ["bench/*", "scripts/*", "staticfiles/*"])
        else:
            run(ROOT / target, [f"{nested}/*" for nested in NESTED.get(target, [])])
        print(f"updated {target}")
finally:
    for twin in twins.values():
        twin.unlink(missing_ok=True)
