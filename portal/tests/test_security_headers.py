"""Content-Security-Policy and Permissions-Policy on every page, and templates that need no inline script."""
import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts.tests.factories import UserFactory

ROOT = Path(settings.BASE_DIR)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def template_files():
    for path in ROOT.rglob("*.html"):
        parts = set(path.relative_to(ROOT).parts)
        if "templates" in parts and not parts & {".venv", "node_modules", "staticfiles", "test-artifacts"}:
            yield path


def test_no_template_has_inline_script_or_event_handler_attributes():
    offenders = []
    for path in template_files():
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER, JAVASCRIPT_URL):
            offenders += [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for match in pattern.finditer(text)]
    assert offenders == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/settings/profile/", "/accounts/login/", "/admin/login/", "/healthz"])
def test_every_response_carries_a_strict_csp_and_a_permissions_policy(client, path):
    client.force_login(UserFactory())
    response = client.get(path, follow=True)
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]
    page = response.content.decode()
    assert not INLINE_SCRIPT.search(page) and not EVENT_HANDLER.search(page)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_run_under_the_policy_without_violations(page, login, departments):
    from django.core.management import call_command

    from accounts.management.commands.seed_demo import DEMO

    call_command("seed_demo", stdout=open("/dev/null", "w"))
    violations = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text
            else None)
    login(*DEMO)
    for path in ("/", "/accounts/settings/profile/", "/billing/", "/notifications/", "/orders/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    page.click("input[data-select-all=orders]")  # behaviour that was an inline onclick, now static/js/portal.js
    boxes = page.locator("input[name=orders]")
    assert boxes.count() >= 1 and all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    assert violations == []


@pytest.mark.django_db
def test_an_oversized_upload_is_refused_from_its_length_before_the_body_is_read(client, settings):
    settings.UPLOAD_MAX_REQUEST_BYTES = 64 * 1024
    client.raise_request_exception = False
    client.force_login(UserFactory())
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = SimpleUploadedFile("big.txt", b"x" * (200 * 1024), content_type="text/plain")
    response = client.post("/tickets/new/", {"subject": "s", "body": "b", "attachments": big})
    assert response.status_code == 400


def test_local_settings_keep_no_persistent_database_connections():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DB_CONN_MAX_AGE"}
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings.local"
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                             "print(settings.DATABASES['default']['CONN_MAX_AGE'])"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.stdout.strip() == "0", result.stderr
