"""Project-level guarantees: migrations complete, production settings pass check --deploy."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def check_deploy(**environment):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "PAYMENT_SANDBOX_ENABLED", "SANDBOX_WEBHOOK_SECRET"}}
    env.update(DJANGO_SETTINGS_MODULE="portal.settings.production",
               SECRET_KEY="k7#p2!x9@v4$m1&q8*z3^w6(r0)t5_y-u2+i9=o4{a7}s1|d8;f3:g6<h0>j5?l2",
               ALLOWED_HOSTS="portal.example.com", **environment)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def production_setting(name: str, *, unset: set[str], **environment) -> str:
    """A setting as production settings print it in a fresh process, without the `unset` variables."""
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                             f"print(settings.{name})"], cwd=ROOT, capture_output=True, text=True,
                            env={**{k: v for k, v in os.environ.items() if k not in unset},
                                 "DJANGO_SETTINGS_MODULE": "portal.settings.production",
                                 "SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "portal.example.com", **environment})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_check_deploy_with_production_settings_is_clean():
    result = check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stderr


def test_production_has_the_sandbox_off_and_check_deploy_fails_when_it_is_on():
    with_default_secret = check_deploy(PAYMENT_SANDBOX_ENABLED="1")
    assert with_default_secret.returncode != 0
    assert "portal.E001" in with_default_secret.stderr and "portal.E002" in with_default_secret.stderr
    with_own_secret = check_deploy(PAYMENT_SANDBOX_ENABLED="1", SANDBOX_WEBHOOK_SECRET="x" * 40)
    assert "portal.E001" in with_own_secret.stderr and "portal.E002" not in with_own_secret.stderr
    assert production_setting("PAYMENT_SANDBOX_ENABLED", unset={"PAYMENT_SANDBOX_ENABLED"}) == "False"


def test_atomic_requests_off_and_health_checks_on(settings):
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is False
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@pytest.mark.parametrize(("environment", "prepared"), [
    ({}, "True"),
    ({"DB_DISABLE_SERVER_SIDE_CURSORS": "1"}, "False"),  # PgBouncer in transaction mode: PREPARE would not last
    ({"DB_DISABLE_SERVER_SIDE_CURSORS": "1", "DB_PREPARED_STATEMENTS": "1"}, "True"),
    ({"DB_PREPARED_STATEMENTS": "0"}, "False"),
])
def test_prepared_statements_are_off_by_default_behind_pgbouncer(environment, prepared):
    """deploy/portal.env.example runs through PgBouncer: it sets DB_DISABLE_SERVER_SIDE_CURSORS, which turns
    the compiled reads' PREPARE off unless asked for."""
    assert production_setting("DB_PREPARED_STATEMENTS", unset={"DB_DISABLE_SERVER_SIDE_CURSORS", "DB_PREPARED_STATEMENTS"},
                              **environment) == prepared
    example = (ROOT / "deploy" / "portal.env.example").read_text()
    assert "DB_DISABLE_SERVER_SIDE_CURSORS=1" in example and "DB_PREPARED_STATEMENTS=0" in example
