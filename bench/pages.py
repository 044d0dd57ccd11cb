"""Customer page latency with a heavy account: gunicorn (production settings, 2 × cores + 1 workers as deploy/gunicorn.conf.py) driven by wrk.

    make bench-pages                      # or:
    python scripts/devenv.py -- .venv/bin/python bench/pages.py [--light 2000] [--duration 10] [--keep] [--reuse]
        [--only balance,expenses] [--database bench_pages] [--profile DIR]

Seeds a scratch database (`--database`, default `bench_pages`) with one heavy customer (1,000 services,
5,000 invoices, 20,000 balance ledger entries, 300 tickets, one thread of 40 messages, 2,000
notifications) and `--light` small ones, serves the portal with gunicorn on a free loopback port, logs
in as the heavy customer through the login form, and runs wrk (8 connections) against every customer
page, the minimal authenticated view (/accounts/whoami) and the bare layout (/bench/layout: base.html
around an empty page, served only by the bench's URLconf, bench/urls.py). Prints requests/s,
p50/p95/p99, the SQL query count and the throughput against the minimal view of each page, then the
targets: p95 <= 50 ms, and each page's throughput >= 50% of the minimal view's. Each page's CPU per request
is split into gunicorn's processes (app), PostgreSQL's (db) and the rest (wrk, Redis, ...), read from
/proc before and after its run: what bounds its throughput on a machine whose CPUs are all busy.

`--profile DIR` records each page's wrk run with py-spy (all gunicorn workers, `--idle`) into
DIR/<page>.txt as collapsed stacks (py-spy must be installed: `.venv/bin/pip install py-spy`; it is
a tool, not a requirement).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadkit  # noqa: E402

HTMX = {"HX-Request": "true"}
# (name, path — formatted with the heavy customer's ids from page_ids() —, extra request headers)
PAGES = [
    ("minimal (whoami)", "/accounts/whoami", {}),
    ("layout only", "/bench/layout", {}),
    ("dashboard", "/", {}),
    ("orders", "/orders/", {}),
    ("order detail", "/orders/{order}/", {}),
    ("server state", "/orders/{order}/server/state/", HTMX),
    ("server usage", "/orders/{order}/server/usage/", HTMX),
    ("reverse DNS", "/orders/{order}/server/reverse-dns/", {}),
    ("invoices", "/billing/invoices/", {}),
    ("invoice detail", "/billing/invoices/{invoice}/", {}),
    ("balance", "/billing/", {}),
    ("balance (deep page)", "/billing/?page=500&before={deep_entry}", {}),  # offset pages, then keyset
    ("payments", "/billing/payments/", {}),
    ("expenses", "/billing/expenses/", {}),
    ("expenses (deep page)", "/billing/expenses/?page=150&before={deep_charge}", {}),
    ("documents", "/billing/documents/", {}),
    ("tickets", "/tickets/", {}),
    ("ticket thread", "/tickets/{ticket}/", {}),
    ("notifications", "/notifications/", {}),
    ("notification prefs", "/notifications/subscriptions/", {}),
    ("settings: profile", "/accounts/settings/profile/", {}),
    ("settings: prefs", "/accounts/settings/preferences/", {}),
    ("settings: email", "/accounts/settings/email-routing/", {}),
    ("settings: security", "/accounts/settings/security/", {}),
    ("settings: password", "/accounts/password/change/", {}),
    ("settings: activity", "/accounts/settings/activity/", {}),
    ("settings: privacy", "/accounts/settings/privacy/", {}),
    ("settings: users", "/accounts/settings/users/", {}),
    ("settings: passkeys", "/passkeys/settings/", {}),
    ("settings: API keys", "/api/keys/", {}),
    ("settings: webhooks", "/api/webhooks/", {}),
]
MINIMAL = PAGES[0][0]
HEAVY = {"services": 1000, "invoices": 5000, "ledger_entries": 20000, "tickets": 300, "notifications": 2000}
THREAD_MESSAGES = 40  # one ticket of the heavy customer is a long thread
LIGHT = {"services": 2, "invoices": 5, "ledger_entries": 10, "tickets": 1, "notifications": 5}
P95_TARGET_MS = 50
THROUGHPUT_TARGET = 0.5

# wrk prints its own summary without p95; this reports what we need as one JSON line.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is not installed: `make bench-pages` installs Debian's wrk (or apt-get install wrk).")
    return path


def seed(light: int) -> None:
    started = time.monotonic()
    loadkit.seed_base()
    heavy = loadkit.customers_create(1, prefix="heavy")
    loadkit.customers_seed_history(heavy, **HEAVY)
    for start in range(0, light, 500):
        batch = loadkit.customers_create(min(500, light - start), prefix=f"light{start}_")
        loadkit.customers_seed_history(batch, **LIGHT)
    thread_seed(heavy[0])
    from billing.funding import funding_backfill

    funded = time.monotonic()
    rows = funding_backfill()  # the seed inserts legs directly; the funding the postings would have stored
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_balancefunding")
    loadkit.log(f"expense funding: {rows} rows replayed from the ledger in {time.monotonic() - funded:.1f} s")
    loadkit.log(f"seeded 1 heavy + {light} light customers in {time.monotonic() - started:.0f} s")


def vacuum() -> None:
    """VACUUM ANALYZE before measuring, as autovacuum has long done on a production server by the time a
    customer has this much history (this host runs PostgreSQL with autovacuum off): without it the
    visibility map is empty, every index-only scan reads the table too, and the planner's choices differ
    (the expenses page walked the funding table's transaction index instead of its own). Before
    2026-12-05 the bench measured without it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def thread_seed(customer) -> None:
    """The heavy customer's newest ticket becomes a long conversation (staff and customer replies)."""
    from accounts.models import User
    from tickets.models import Message, Ticket

    ticket = Ticket.objects.filter(customer=customer).order_by("-last_reply_at", "-pk").first()
    owner = User.objects.get(customer=customer, role=User.Role.OWNER)
    staff = User.objects.filter(is_staff=True).order_by("pk").first() or owner
    Message.objects.bulk_create(
        Message(ticket=ticket, author=staff if n % 2 else owner,
                body=f"Reply {n}: the PTR record for srv{n}.bench.example is being checked.\nThanks for waiting.")
        for n in range(THREAD_MESSAGES - 1))


def page_ids() -> dict[str, int]:
    """The heavy customer's objects the detail pages show (an active service, its newest unpaid
    invoice, the long ticket thread) and the keys where page 500 of the balance history and page 150
    of the expenses start (the same rows as `?page=` on offset pages)."""
    from billing.models import Invoice
    from orders.models import Order
    from tickets.models import Ticket

    from billing.models import LedgerEntry, LedgerTransaction

    customer = _heavy_user().customer
    entries = LedgerEntry.objects.filter(account__customer=customer).order_by("-pk").values_list("pk", flat=True)
    charges = (LedgerTransaction.objects.filter(kind="charge", entries__account__customer=customer).order_by("-pk")
               .values_list("pk", flat=True))
    return {
        "deep_entry": entries[500 * 20 - 20 - 1] + 1,  # the 500th page of 20: before the last entry of page 499
        "deep_charge": charges[150 * 20 - 20 - 1] + 1,
        "order": Order.objects.filter(customer=customer, status=Order.Status.ACTIVE).order_by("pk").values_list("pk", flat=True)[0],
        "invoice": Invoice.objects.filter(customer=customer, status=Invoice.Status.UNPAID).order_by("-pk").values_list("pk", flat=True)[0],
        "ticket": Ticket.objects.filter(customer=customer).order_by("-last_reply_at", "-pk").values_list("pk", flat=True)[0],
    }


def _heavy_user():
    from accounts.models import User

    return User.objects.select_related("customer").get(username="heavy0")


def query_counts(pages: list[tuple[str, str, dict]]) -> dict[str, int]:
    """SQL statements per page for the heavy customer, counted in-process with the test client in the
    steady state (the top bar from its cache; the apps' tests pin the uncached counts)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(_heavy_user())
    counts = {}
    with override_settings(ROOT_URLCONF="bench.urls"):
        for name, path, headers in pages:
            meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
            for _ in range(2):  # warm caches the way a running server has them (content types, rates, the top bar)
                client.get(path, **meta)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, **meta)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
            counts[name] = len(queries)
    return counts


def drive(wrk: str, base: str, cookie: str, path: str, *, duration: int, connections: int, script: Path,
          headers: dict | None = None, profile: Path | None = None, server_pid: int | None = None) -> dict:
    command = [wrk, "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s", "-s", str(script),
               "-H", f"Cookie: {cookie}", base + path]
    for key, value in (headers or {}).items():
        command[-1:-1] = ["-H", f"{key}: {value}"]
    spy = None
    if profile is not None:
        spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
                                "--pid", str(server_pid), "--subprocesses", "--idle", "--format", "raw",
                                "--duration", str(duration), "--rate", "200", "--output", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_before = loadkit.processes()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = loadkit.cpu_spent_by_role(cpu_before, loadkit.processes())
    if spy is not None:
        spy.wait(60)
    result = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu_ms"] = {role: 1000 * seconds / max(result["requests"], 1) for role, seconds in cpu.items()}  # per request
    return result


def check_page(base: str, cookie: str, path: str, headers: dict) -> None:
    import urllib.request

    opener = urllib.request.build_opener(loadkit.NoRedirect)
    response = opener.open(urllib.request.Request(base + path, headers={"Cookie": cookie, **headers}), timeout=120)
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", type=int, default=2000, help="number of light customers (default 2000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per page (default 10)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1,
                        help="gunicorn workers (default 2 × cores + 1, deploy/gunicorn.conf.py's default)")
    parser.add_argument("--reuse", action="store_true", help="reuse an already seeded bench_pages database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--only", default="", help="comma-separated page names to drive (the minimal view always runs)")
    parser.add_argument("--database", default="bench_pages", help="scratch database name (default bench_pages)")
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles of each page's run")
    args = parser.parse_args()
    wrk = ensure_wrk()
    url = loadkit.scratch_database_url(args.database)
    reuse = args.reuse and loadkit.database_exists(url)
    if not reuse:
        loadkit.database_recreate(url)
    loadkit.django_setup(url)
    try:
        if not reuse:
            seed(args.light)
        else:  # seeded by an older checkout: bring its schema up to this one's
            from django.core.management import call_command

            call_command("migrate", verbosity=0, interactive=False)
        vacuum()
        ids = page_ids()
        only = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = only - {name for name, _path, _headers in PAGES}
        if unknown:
            sys.exit(f"unknown page names: {', '.join(sorted(unknown))}")
        pages = [(name, path.format(**ids), headers) for name, path, headers in PAGES
                 if not only or name in only or name == MINIMAL]
        counts = query_counts(pages)
        results = {}
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "report.lua"
            script.write_text(WRK_SCRIPT)
            with loadkit.gunicorn(url, workers=args.workers, log_path=Path(tmp) / "gunicorn.log",
                                  extra_env={"DJANGO_SETTINGS_MODULE": "bench.portal_settings"}) as base:
                cookie = loadkit.login(base, "heavy0")
                for name, path, headers in pages:
                    check_page(base, cookie, path, headers)
                    drive(wrk, base, cookie, path, duration=2, connections=args.connections, script=script,
                          headers=headers)  # warm-up
                    profile = args.profile / (name.replace(" ", "_").replace(":", "").replace(",", "") + ".txt") if args.profile else None
                    results[name] = drive(wrk, base, cookie, path, duration=args.duration, connections=args.connections,
                                          script=script, headers=headers, profile=profile, server_pid=base.pid)
        report(results, counts, args, url)
        minimal = results[MINIMAL]["rps"]
        failed = [n for n, r in results.items() if r["p95_us"] / 1000 > P95_TARGET_MS or r["rps"] < THROUGHPUT_TARGET * minimal
                  or r["non_2xx"] or r["socket_errors"]]
        return 1 if failed else 0
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            loadkit.database_drop(url)


def report(results: dict, counts: dict, args, url: str) -> None:
    info = loadkit.machine()
    minimal = results[MINIMAL]["rps"]
    print(f"\nbench/pages.py — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}); "
          f"PostgreSQL {loadkit.server_version(url)}; gunicorn {args.workers} sync workers; wrk {args.connections} connections, "
          f"{args.duration} s per page; {args.light} light customers")
    print(f"{'page':<22}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'queries':>9}{'vs min':>8}"
          f"{'app':>7}{'db':>6}{'rest':>6}  verdict")
    for name, r in results.items():
        ratio = r["rps"] / minimal
        ok = r["p95_us"] / 1000 <= P95_TARGET_MS and ratio >= THROUGHPUT_TARGET and not r["non_2xx"] and not r["socket_errors"]
        errors = f" ({r['non_2xx']} non-2xx, {r['socket_errors']} socket errors)" if r["non_2xx"] or r["socket_errors"] else ""
        cpu = r["cpu_ms"]
        rest = sum(cpu.values()) - cpu["gunicorn"] - cpu["postgres"]
        print(f"{name:<22}{r['rps']:>8.0f}{r['p50_us'] / 1000:>8.1f}{r['p95_us'] / 1000:>8.1f}{r['p99_us'] / 1000:>8.1f}"
              f"{counts[name]:>9}{ratio:>8.0%}{cpu['gunicorn']:>7.2f}{cpu['postgres']:>6.2f}{rest:>6.2f}"
              f"  {'ok' if ok else 'MISSED'}{errors}")
    print(f"targets: p95 <= {P95_TARGET_MS} ms; throughput >= {THROUGHPUT_TARGET:.0%} of the minimal view's")
    print("app, db, rest: CPU ms per request of gunicorn's processes, PostgreSQL's, and everything else (wrk, Redis, "
          f"the kernel's share of other processes); the machine has {info['nproc']} CPUs' worth of it per second")


if __name__ == "__main__":
    sys.exit(main())
