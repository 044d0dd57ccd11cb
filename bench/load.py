"""Load with money: simulated customers log in, top up through the sandbox gateway, order and renew.

    make bench-load                       # or:
    python scripts/devenv.py -- .venv/bin/python bench/load.py [--users 100] [--duration 120] [--keep]

A scratch database `bench_load` (demo catalogue, sandbox gateway, `--users` customers), gunicorn with
production settings (2 workers x 8 threads), a Celery worker on a throwaway redis-server, all on
loopback. Each simulated customer is a thread with its own session that repeats, with 0.5-2 s of
think time: look at the dashboard and balance; top up 40 EUR (top-up form -> invoice -> sandbox
hosted page with the 4242 card -> the provider's signed webhook credits the balance); order a VPS
paid from the balance; renew one of its services. Afterwards the worker drains the queue and the
checks run: zero 5xx, `audit_ledger` passes, every sandbox charge is credited exactly once (one
Payment per charge, every paid top-up invoice credited once), every order and renewal has its one
charge. Exit status 0 only when all checks pass.

(A hand-written driver instead of locust: the scenario needs the real form tokens and the provider
round trip, which are a dozen lines with urllib; locust would add gevent and flask to the project.)
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadkit  # noqa: E402


class Customer:
    """One simulated customer: a session cookie jar and the flows, each step timed."""

    def __init__(self, base: str, username: str, stats: "Stats", rng: random.Random):
        self.base, self.username, self.stats, self.rng = base, username, stats, rng
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(loadkit.NoRedirect)
        self.plans: list[int] = []

    def request(self, action: str, method: str, path: str, data: dict | None = None) -> tuple[int, str, str]:
        headers = {"Referer": self.base + "/"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.monotonic()
        try:
            response = self.opener.open(urllib.request.Request(self.base + path, data=body, method=method, headers=headers),
                                        timeout=60)
        except urllib.error.HTTPError as error:
            response = error
        except (urllib.error.URLError, OSError) as error:
            self.stats.record(action, "error", time.monotonic() - started)
            raise RuntimeError(f"{action}: {error}") from error
        text = response.read().decode(errors="replace")
        status = response.status if hasattr(response, "status") else response.code
        self.stats.record(action, status, time.monotonic() - started)
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return status, text, response.headers.get("Location", "")

    @staticmethod
    def hidden(html: str, name: str) -> str:
        return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)

    @staticmethod
    def first_choice(html: str, name: str) -> str:
        """The first offered value of a <select> or radio group called `name` ("" when absent)."""
        select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', html, re.S)
        found = re.search(r'<option value="([^"]+)"', select.group(1)) if select else \
            re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]+)"', html)
        return found.group(1) if found else ""

    def login(self) -> None:
        self.request("login page", "GET", "/accounts/login/")
        status, _text, _location = self.request("login", "POST", "/accounts/login/",
                                                {"username": self.username, "password": loadkit.PASSWORD})
        assert status == 302, f"login of {self.username}: {status}"

    def browse(self) -> None:
        self.request("dashboard", "GET", "/")
        self.request("balance", "GET", "/billing/")

    def top_up(self) -> None:
        _s, page, _l = self.request("balance", "GET", "/billing/")
        status, _t, location = self.request("top-up form", "POST", "/billing/topup/", {
            "amount": "40.00", "currency": "EUR", "request_key": self.hidden(page, "request_key")})
        invoice_path = urllib.parse.urlsplit(location).path
        invoice_id = re.search(r"/invoices/(\d+)/", invoice_path).group(1)
        status, _t, location = self.request("pay: choose sandbox", "POST", f"/pay/invoices/{invoice_id}/", {"gateway": "sandbox"})
        checkout = urllib.parse.urlsplit(location).path
        self.request("sandbox: card page", "GET", checkout)
        self.request("sandbox: pay with 4242", "POST", checkout, {"number": "4242 4242 4242 4242", "expiry": "12/30", "cvc": "123"})

    def order(self) -> None:
        if not self.plans:
            _s, page, _l = self.request("catalogue", "GET", "/orders/new/")
            self.plans = sorted({int(n) for n in re.findall(r'/orders/new/(\d+)/"', page)})[:3]
        plan = self.rng.choice(self.plans)
        _s, page, _l = self.request("order form", "GET", f"/orders/new/{plan}/")
        data = {"period_months": 1, "request_key": self.hidden(page, "request_key"), "hostname": "load.bench.example",
                "os_image": self.first_choice(page, "os_image"), "location": self.first_choice(page, "location")}
        self.request("order: review", "POST", f"/orders/new/{plan}/", data)
        self.request("order: confirm", "POST", f"/orders/new/{plan}/confirm/", data)

    def renew(self) -> None:
        _s, page, _l = self.request("orders", "GET", "/orders/")
        ids = sorted({int(n) for n in re.findall(r'href="/orders/(\d+)/"', page)})
        if not ids:
            return
        order_id = self.rng.choice(ids)
        status, page, _l = self.request("renew form", "GET", f"/orders/{order_id}/renew/")
        if status != 200 or 'name="period"' not in page:
            return
        self.request("renew", "POST", f"/orders/{order_id}/renew/", {"periods": 1, "period": self.hidden(page, "period")})

    def run(self, until: float) -> None:
        steps = [self.top_up, self.order, self.renew]
        logged_in = False
        while time.monotonic() < until:
            try:
                if not logged_in:
                    self.login()
                    logged_in = True
                self.browse()
                self.rng.choice(steps)()
            except Exception as error:  # noqa: BLE001 - a failed flow is counted, the customer carries on
                self.stats.flow_error(str(error))
            time.sleep(self.rng.uniform(0.5, 2.0))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_action: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict] = defaultdict(lambda: defaultdict(int))
        self.flow_errors: list[str] = []

    def record(self, action: str, status, seconds: float) -> None:
        with self.lock:
            self.by_action[action].append(seconds)
            self.statuses[action][status] += 1

    def flow_error(self, message: str) -> None:
        with self.lock:
            self.flow_errors.append(message)

    def server_errors(self) -> int:
        return sum(n for statuses in self.statuses.values() for status, n in statuses.items()
                   if isinstance(status, int) and status >= 500)

    def timeouts(self) -> int:
        """Requests the client gave up on (60 s) or whose connection dropped: capacity, not correctness."""
        return sum(statuses.get("error", 0) for statuses in self.statuses.values())


def seed(users: int) -> None:
    from orders.models import IpAddress, IpPool

    loadkit.seed_base()
    loadkit.customers_create(users, prefix="load")
    # Enough addresses that every VPS ordered during the run is provisioned (and so renewable).
    pool = IpPool.objects.get(name="AMS-1 public")
    IpAddress.objects.bulk_create(IpAddress(pool=pool, address=f"10.77.{n // 250}.{n % 250 + 1}") for n in range(5000))


def provider_retries(base: str) -> int:
    """The sandbox retries webhooks the portal did not acknowledge in time (its beat job does this in
    production); run those retries now rather than waiting for their back-off."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from billing.gateways import sandbox_provider

    settings.PORTAL_BASE_URL = base
    return sandbox_provider.webhooks_deliver_due(now=timezone.now() + timedelta(hours=2), limit=10_000)


def money_checks() -> list[str]:
    """What must hold after the run; returns the failures."""
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db.models import Count

    from billing.gateways.models import SandboxCharge, SandboxWebhookOutbox
    from billing.models import Invoice, LedgerTransaction, Payment
    from orders.models import Order, OrderRenewal

    failures = []
    try:
        call_command("audit_ledger", verbosity=0)
    except CommandError as error:
        failures.append(f"audit_ledger: {error}")
    charges = SandboxCharge.objects.filter(status="succeeded").count()
    payments = Payment.objects.filter(gateway="sandbox")
    if payments.count() != charges:
        failures.append(f"{charges} sandbox charges but {payments.count()} sandbox payments")
    if payments.values("external_id").annotate(n=Count("pk")).filter(n__gt=1).exists():
        failures.append("a sandbox charge was credited twice")
    undelivered = SandboxWebhookOutbox.objects.filter(delivered_at__isnull=True).count()
    if undelivered:
        failures.append(f"{undelivered} sandbox webhooks not delivered")
    doubly = LedgerTransaction.objects.filter(kind="topup").values("payment_id").annotate(n=Count("pk")).filter(n__gt=1)
    if doubly.exists():
        failures.append("a payment was credited to a balance more than once")
    paid_advance = Invoice.objects.filter(kind=Invoice.Kind.ADVANCE, status=Invoice.Status.PAID,
                                          customer__users__username__startswith="load").count()
    if paid_advance != charges:
        failures.append(f"{paid_advance} paid top-up invoices for {charges} sandbox charges")
    for renewal in OrderRenewal.objects.filter(status=OrderRenewal.Status.PAID).values("invoice_id"):
        if LedgerTransaction.objects.filter(kind="charge", invoice_id=renewal["invoice_id"]).count() != 1:
            failures.append(f"renewal invoice {renewal['invoice_id']} not charged exactly once")
    for order in Order.objects.exclude(invoice_id=None).filter(paid_at__isnull=False).values("invoice_id"):
        if LedgerTransaction.objects.filter(kind="charge", invoice_id=order["invoice_id"]).count() != 1:
            failures.append(f"order invoice {order['invoice_id']} not charged exactly once")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--duration", type=int, default=120, help="seconds of load (default 120)")
    parser.add_argument("--spawn-rate", type=float, default=2.0, help="customers arriving per second (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    args = parser.parse_args()
    url = loadkit.scratch_database_url("bench_load")
    loadkit.database_recreate(url)
    loadkit.django_setup(url)
    stats = Stats()
    try:
        seed(args.users)
        tmp = tempfile.mkdtemp(prefix="bench-load-")  # logs kept for a look at any error
        with loadkit.redis_server() as redis_url:
            port = loadkit.free_port()
            env = {"REDIS_URL": redis_url, "PORTAL_BASE_URL": f"http://127.0.0.1:{port}", "SANDBOX_PENDING_DELAY": "2"}
            with loadkit.celery_worker(url, extra_env=env, log_path=Path(tmp) / "worker.log"), \
                    loadkit.gunicorn(url, workers=2, threads=8, extra_env=env, port=port, log_path=Path(tmp) / "web.log") as base:
                started = time.monotonic()
                until = started + args.duration
                threads = [threading.Thread(target=Customer(base, f"load{n}", stats, random.Random(n)).run, args=(until,))
                           for n in range(args.users)]
                for thread in threads:
                    thread.start()
                    time.sleep(1 / args.spawn_rate)  # customers arrive over time, as with locust's spawn rate
                for thread in threads:
                    thread.join()
                elapsed = time.monotonic() - started
                retried = provider_retries(base)
                time.sleep(3)  # let the worker finish what the last requests queued
            log_tail = (Path(tmp) / "web.log").read_text().splitlines()
        failures = money_checks()
        if stats.server_errors():
            failures.append(f"{stats.server_errors()} server errors (5xx)")
        report(stats, args, url, elapsed, failures, [line for line in log_tail if line.startswith("5")][:10], retried)
        print(f"logs: {tmp}/web.log, {tmp}/worker.log")
        return 1 if failures else 0
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            loadkit.database_drop(url)


def report(stats: Stats, args, url: str, elapsed: float, failures: list[str], errors_in_log: list[str], retried: int) -> None:
    from billing.gateways.models import SandboxCharge
    from billing.models import Payment
    from orders.models import Order, OrderRenewal

    info = loadkit.machine()
    total = sum(len(v) for v in stats.by_action.values())
    print(f"\nbench/load.py — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}); "
          f"PostgreSQL {loadkit.server_version(url)}; gunicorn 2 workers x 8 threads + 1 Celery worker; "
          f"{args.users} customers arriving {args.spawn_rate:g}/s, {elapsed:.0f} s")
    print(f"{'action':<24}{'requests':>9}{'p50 ms':>8}{'p95 ms':>8}  statuses")
    for action, times in sorted(stats.by_action.items()):
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(stats.statuses[action].items(), key=str))
        print(f"{action:<24}{len(times):>9}{statistics.median(times) * 1000:>8.0f}{p95 * 1000:>8.0f}  {statuses}")
    print(f"total {total} requests, {total / elapsed:.1f} req/s; 5xx: {stats.server_errors()}; client timeouts or dropped "
          f"connections: {stats.timeouts()}; flows that did not complete: {len(stats.flow_errors)}; "
          f"webhooks the provider had to retry: {retried}")
    print(f"money: {SandboxCharge.objects.filter(status='succeeded').count()} sandbox charges, "
          f"{Payment.objects.filter(gateway='sandbox').count()} credited; "
          f"{Order.objects.filter(paid_at__isnull=False).count()} orders paid; "
          f"{OrderRenewal.objects.filter(status='paid').count()} renewals paid")
    for message in stats.flow_errors[:5]:
        print(f"  flow error: {message}")
    for line in errors_in_log:
        print(f"  gunicorn: {line}")
    print("checks: " + ("all passed (zero 5xx, audit_ledger ok, each sandbox payment credited once)" if not failures
                        else "FAILED: " + "; ".join(failures)))


if __name__ == "__main__":
    sys.exit(main())
