"""Shared fixtures: the domain basics every app's tests use (currencies, a customer and its owner, a
funded balance, ticket departments), Playwright in Debian's Chromium, screenshots of failing browser
tests. An app's conftest overrides one only where its tests need it otherwise (e.g. accounts' owner in
each language)."""
import os
from itertools import count
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls made by tests are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent / "test-artifacts"

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def _reset_active_language():
    """A request in Russian leaves its language active in this thread; start every test in English."""
    from django.utils import translation

    translation.activate("en")
    yield
    translation.activate("en")


@pytest.fixture(autouse=True)
def _broker_not_paused():
    """A test that made a publish fail pauses publishing in this process (core.enqueue);
    the next test starts with the broker tried again."""
    from core import enqueue

    enqueue._broker_skip_until = 0.0
    yield
    enqueue._broker_skip_until = 0.0


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in Redis and outlive a test: every test starts with none."""
    import redis

    from core import ratelimit

    try:
        ratelimit.clear_all()
    except redis.RedisError:
        pass


@pytest.fixture(scope="session", autouse=True)
def _drain_test_broker_queue():
    """Nothing consumes the test broker's queue; drop what the session published."""
    yield
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1).delete("celery")
    except redis.RedisError:
        pass


@pytest.fixture
def currencies(db):
    """The currencies and exchange rates billing prices in."""
    from billing.tests.factories import make_currencies

    return make_currencies()


@pytest.fixture
def owner(db):
    """The owner of a new customer account."""
    from accounts.tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def customer(owner):
    return owner.customer


@pytest.fixture
def fund(currencies):
    """`fund(customer, amount, currency=None)`: credit a customer's balance through a recorded payment
    (the real top-up path), in the account currency unless told."""
    from decimal import Decimal

    from billing.services.payments import payment_record

    keys = count()

    def do_fund(customer, amount, currency=None):
        return payment_record(
            idempotency_key=f"test-fund:{customer.pk}:{next(keys)}", customer=customer, amount=Decimal(amount),
            currency=currency or customer.currency, method="bank_transfer",
        )

    return do_fund


@pytest.fixture
def departments(db):
    """Tickets' default departments. Transactional tests (here or in other apps) flush the tables, data
    migrations included, so this puts them back (tickets' migration function, idempotent)."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("tickets.migrations.0002_default_departments_and_ticket_numbers")
    migration.create_departments(apps, None)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(request, browser, live_server):
    context = browser.new_context(viewport=DESKTOP, base_url=live_server.url, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def screenshot(page):
    """Save a named screenshot into test-artifacts/ (reviewed by a human, not compared)."""

    def take(name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def login(page):
    """Log `user` in through the real login form."""

    def do_login(username: str, password: str) -> None:
        page.goto("/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("form [type=submit]")
        page.wait_for_load_state("networkidle")

    return do_login


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
