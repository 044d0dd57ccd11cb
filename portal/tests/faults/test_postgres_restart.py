"""PostgreSQL restarted under traffic (a throwaway server of our own, never the shared one): requests
during the restart fail cleanly, no money is half-written (every payment is whole, audit_ledger
passes), and the same gunicorn serves again as soon as the database is back - persistent connections
are health-checked, so a dead one is replaced instead of failing every later request."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path

import pytest
from django.db import connection

from .conftest import ROOT, Browser, app_env, database_url, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow_fault]

EVENTS = 60
SEED = """
import json, django
django.setup()
from decimal import Decimal
from accounts.tests.factories import UserFactory
from billing.gateways.models import PaymentAttempt
from billing.gateways.tests.conftest import sandbox_event, signed_headers
from billing.gateways.tests.factories import GatewayConfigFactory
from billing.models import Invoice
from billing.services.invoices import LineInput, invoice_issue
from billing.tests.factories import make_currencies
make_currencies()
GatewayConfigFactory(code="sandbox")
user = UserFactory(username="pgfault")
events = []
for n in range(%d):
    invoice = invoice_issue(customer=user.customer, kind=Invoice.Kind.ADVANCE,
                            lines=[LineInput(description="Top-up", quantity=1, unit_price=Decimal("5.00"))])
    attempt = PaymentAttempt.objects.create(customer=user.customer, invoice=invoice, gateway="sandbox",
                                            amount=invoice.total, currency=invoice.currency, status="pending")
    events.append(sandbox_event(attempt, transaction=f"txn_pg_{n}", event_id=f"evt_pg_{n}").decode())
print(json.dumps({"username": user.username, "events": events}))
""" % EVENTS
CHECK = """
import django
django.setup()
from billing.models import Invoice, LedgerTransaction, Payment
from django.core.management import call_command
payments = list(Payment.objects.all())
assert len(payments) == %d, len(payments)
assert len({p.idempotency_key for p in payments}) == len(payments)
for payment in payments:  # each payment is whole: its ledger transaction and its paid invoice
    assert LedgerTransaction.objects.filter(payment=payment).exists(), payment.pk
    assert payment.invoice.status == Invoice.Status.PAID, payment.invoice_id
call_command("audit_ledger")
print("OK")
""" % EVENTS


def postgres_bin() -> Path:
    for pattern in ("/usr/lib/postgresql/*/bin",):
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def server_user() -> str | None:
    """PostgreSQL refuses to run as root: then run it as the system's postgres user (or pgserver's)."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "-s", "/bin/false", "pgserver"], check=True)
    return "pgserver"


class ThrowawayPostgres:
    def __init__(self):
        self.bin = postgres_bin()
        self.user = server_user()
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))  # not under pytest's root-only tmp dir
        if self.user:
            shutil.chown(self.root, self.user)
        self.data = self.root / "pgdata"
        self.port = free_port()

    def run(self, *command: str, **kwargs) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, cwd=self.root, **kwargs)

    def ctl(self, *args: str) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                 "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "-w", "-t", "60", *args)

    def start(self) -> None:
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.ctl("start")
        self.run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            prefix = ["runuser", "-u", self.user, "--"] if self.user else []
            subprocess.run([*prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "stop", "-m", "immediate"],
                           cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/faults"


def run_django(code: str, env: dict) -> str:
    """Run `code` with Django set up against the throwaway database; returns its stdout."""
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


@pytest.fixture
def throwaway_postgres(django_db_setup):
    server = ThrowawayPostgres()
    try:
        server.start()
        # The schema the test run just migrated, triggers and constraints included.
        dump = subprocess.run([str(server.bin / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges",
                               database_url(connection.settings_dict)], check=True, capture_output=True, text=True).stdout
        assert "CREATE TABLE public.billing_ledgerentry" in dump
        subprocess.run([str(server.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", server.url], input=dump, text=True,
                       check=True, stdout=subprocess.DEVNULL)
        yield server
    finally:
        server.remove()


def test_requests_during_a_restart_fail_cleanly_and_the_app_recovers(throwaway_postgres, throwaway_redis, processes):
    env = app_env(database=throwaway_postgres.url, redis=throwaway_redis.url)
    seeded = json.loads(run_django(SEED, env).splitlines()[-1])
    base = processes.gunicorn("web", env, workers=2)
    from billing.gateways.tests.conftest import signed_headers

    pages, webhooks = [], {}
    stop = threading.Event()

    def customer_traffic():
        browser = Browser(base)
        browser.login(seeded["username"], "Correct-Horse-42")
        while not stop.is_set():
            for path in ("/billing/", "/orders/", "/billing/invoices/"):
                try:
                    status = browser.get(path, timeout=10)[0]
                except (urllib.error.URLError, OSError):
                    status = "connection error"
                pages.append((time.monotonic(), status))

    def deliver(body: str):
        headers = {"Content-Type": "application/json", **signed_headers(body.encode())}
        try:
            return Browser(base).request("POST", "/pay/webhooks/sandbox/", body=body.encode(), headers=headers, timeout=10)[:2]
        except (urllib.error.URLError, OSError) as error:
            return "connection error", str(error)

    def provider_traffic():
        for body in seeded["events"]:
            webhooks[body] = deliver(body)
            time.sleep(0.05)

    threads = [threading.Thread(target=customer_traffic), threading.Thread(target=provider_traffic)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    restart_started = time.monotonic()
    throwaway_postgres.ctl("restart", "-m", "fast")
    restarted = time.monotonic()
    wait_for(lambda: any(t > restarted and s == 200 for t, s in pages), 15, "pages to answer again")
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(60)

    during = [s for t, s in pages if restart_started <= t <= restarted]
    after = [s for t, s in pages if t > restarted + 1]
    assert all(s in (200, 500, 503, "connection error") for s in during), during  # clean failures, never a wrong page
    assert after and all(s == 200 for s in after), after  # recovered without restarting gunicorn
    failed = [body for body, (status, _text) in webhooks.items() if status != 200]
    for body in failed:  # the provider retries what was not acknowledged, as real ones do
        assert deliver(body)[0] == 200
    assert run_django(CHECK, env).endswith("OK")
