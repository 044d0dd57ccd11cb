"""Hostile values in every form field and query parameter never cause a 5xx (issue 16 #8).

The customer side is crawled as the demo owner (and the public pages anonymously) from the real
pages' links and forms, so new pages and fields are covered without editing this test.
"""
from datetime import datetime, timezone as dt_timezone
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from accounts.models import User

FROZEN = datetime(2026, 6, 15, 10, 0, tzinfo=dt_timezone.utc)
HOSTILE = ["NaN", "sNaN", "Infinity", "-Infinity", "1e999999", "\x00", "a\x00b", "x" * 10240]
SKIPPED_PREFIXES = ("/admin/", "/static/", "/media/", "/i18n/", "/jsi18n/", "/accounts/logout/")
COMMON_QUERY_PARAMETERS = ("q", "page", "status", "sort", "kind", "next")


class PageParser(HTMLParser):
    """Links, and forms with their method, action and field names."""

    def __init__(self):
        super().__init__()
        self.links: set[str] = set()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.add(attrs["href"])
        elif tag == "form":
            self.forms.append({"method": (attrs.get("method") or "get").lower(), "action": attrs.get("action") or "",
                               "fields": set()})
        elif tag in {"input", "select", "textarea", "button"} and attrs.get("name") and self.forms:
            self.forms[-1]["fields"].add(attrs["name"])


def local_path(base: str, href: str) -> str | None:
    parts = urlsplit(urljoin(base, href))
    if parts.scheme not in {"", "http"} or parts.netloc not in {"", "testserver"}:
        return None
    if not parts.path.startswith("/") or parts.path.startswith(SKIPPED_PREFIXES):
        return None
    return parts.path


def crawl(client: Client, start: list[str], limit: int) -> tuple[list[str], list[tuple[str, dict]]]:
    seen, queue, pages, forms = set(start), list(start), [], []
    while queue and len(pages) < limit:
        url = queue.pop(0)
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        pages.append(url)
        parser = PageParser()
        parser.feed(response.content.decode())
        for form in parser.forms:
            forms.append((local_path(url, form["action"]) or url, form))
        for href in sorted(parser.links):
            path = local_path(url, href)
            if path and path not in seen:
                seen.add(path)
                queue.append(path)
    return pages, forms


def fuzz(client: Client, pages: list[str], forms: list[tuple[str, dict]], login=None) -> list[str]:
    failures = []

    def check(method: str, url: str, data: dict, payload: str):
        if login:
            login()
        response = getattr(client, method)(url, data)
        if response.status_code >= 500:
            failures.append(f"{method.upper()} {url} {sorted(data)} = {payload[:12]!r}: {response.status_code}")

    get_fields = {name for _url, form in forms if form["method"] == "get" for name in form["fields"]}
    for url in pages:
        for payload in HOSTILE:
            check("get", url + "?" + urlencode({name: payload for name in {*get_fields, *COMMON_QUERY_PARAMETERS}}),
                  {}, payload)
    posted = set()
    for url, form in forms:
        fields = sorted(form["fields"] - {"csrfmiddlewaretoken"})
        if form["method"] != "post" or url.startswith(SKIPPED_PREFIXES) or (url, tuple(fields)) in posted:
            continue
        posted.add((url, tuple(fields)))
        for payload in HOSTILE:
            check("post", url, {name: payload for name in fields}, payload)
    return failures


@pytest.mark.django_db
def test_hostile_values_in_every_customer_form_and_query_parameter_cause_no_5xx():
    with time_machine.travel(FROZEN, tick=False):
        call_command("seed_demo", stdout=open("/dev/null", "w"))
        owner = User.objects.get(username="demo")
        client = Client(raise_request_exception=False)
        client.force_login(owner)
        pages, forms = crawl(client, ["/"], limit=80)
        assert len(pages) >= 25 and sum(form["method"] == "post" for _url, form in forms) >= 20
        failures = fuzz(client, pages, forms, login=lambda: client.force_login(owner))
    assert failures == [], "\n".join(failures)


@pytest.mark.django_db
def test_hostile_values_in_public_forms_cause_no_5xx(settings):
    settings.AXES_FAILURE_LIMIT = 1000  # the login form is posted many times on purpose
    settings.LOGIN_IP_FAILURE_LIMIT = 1000
    client = Client(raise_request_exception=False)
    pages, forms = crawl(client, ["/accounts/login/", "/accounts/register/", "/accounts/password/reset/"], limit=15)
    assert "/accounts/register/" in pages
    failures = fuzz(client, pages, forms)
    assert failures == [], "\n".join(failures)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/social/google/login/", "/accounts/social/facebook/login/",
                                  "/accounts/social/google/login/callback/", "/accounts/social/google/login/token/",
                                  "/accounts/social/facebook/login/token/"])
def test_unconfigured_social_providers_and_token_endpoints_are_404(client, path):
    client.raise_request_exception = False
    assert client.get(path).status_code == 404
    assert client.post(path, {"access_token": "x"}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/billing/invoices/", "/orders/", "/tickets/"])
def test_a_nul_byte_in_the_query_string_is_a_400(client, path):
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get(path, {"q": "a\x00b"}).status_code == 400
