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


def test_check_deploy_with_production_settings_is_clean():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DJANGO_SETTINGS_MODULE="portal.settings.production",
               SECRET_KEY="k7#p2!x9@v4$m1&q8*z3^w6(r0)t5_y-u2+i9=o4{a7}s1|d8;f3:g6<h0>j5?l2",
               ALLOWED_HOSTS="portal.example.com")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stderr


def test_atomic_requests_off_and_health_checks_on(settings):
    assert settings.DATABASES["default"]["ATOMIC_REQUESTS"] is False
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
