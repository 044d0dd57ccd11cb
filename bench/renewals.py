"""Auto-renewal benchmark against the database's own limit (issue 11, docs/PERFORMANCE.md "Renewals").

    make bench-renewals                      # 20,000 orders
    make bench-renewals BENCH_ARGS="--orders 100000"

(= `.venv/bin/python scripts/devenv.py -- .venv/bin/python bench/renewals.py [--orders N]`.)

In a scratch database it creates and drops: seeds N due orders across N/5 customers (DE, 19% VAT,
balance enough for every round) and a history (N/10 orders, at most 5,000, of other customers, renewed
once before the rounds and not measured: see `seed`), then runs the real code path (`orders.services.renewal_batch.renewals_run`) in
1 and in 2 worker processes, one round each per `--repeat`, every round renewing every order for
its next month. In the same run, against the same server, it runs pgbench's TPC-B with 1 and 2
clients in another scratch database and prints renewals/s ÷ pgbench tps. After each round it checks
that every order was renewed exactly once, and at the end runs `audit_ledger`.

Per worker it reports renewals/s, peak RSS (VmHWM) and SQL statements per renewal (counted
with a connection execute wrapper: one per statement sent, `executemany` counts once).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import loadkit  # noqa: E402

ORDERS_PER_CUSTOMER = 5
PRICE = Decimal("10.00")
# Seeded orders start on the 1st: calendar months then never clamp, so every round is due exactly.
ANCHOR = datetime(2030, 1, 1, 0, 0, tzinfo=dt_timezone.utc)
MEASURED_PLAN = "vps-s"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings.base"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
    import django

    django.setup()


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin_execute(url: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(with_db(url, "postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


# --- seeding ---------------------------------------------------------------------------------------

def seed(*, orders: int, rounds: int) -> None:
    """The measured orders (monthly, due at ANCHOR) and a history: `history_orders(orders)` yearly orders of
    other customers, due a month earlier and renewed once through the same real path before the rounds,
    then ANALYZE. A provider's database always holds invoices; without them the first chunk's foreign-key
    checks against an empty, unanalysed invoice table get sequential-scan plans that the worker's backend
    keeps (this machine's PostgreSQL runs with autovacuum off), and every later check scans every invoice:
    quadratic, 11+ minutes for 100,000 renewals instead of about one."""
    from django.db import connection, transaction

    from billing.models import Currency, LedgerAccount, TaxRate
    from orders.models import Plan, ProductType
    from orders.services.renewal_batch import renewals_run

    with transaction.atomic():
        Currency.objects.create(code="EUR", rate=Decimal("1"), rate_source=Currency.RateSource.BASE,
                                rate_updated_at=ANCHOR)
        TaxRate.objects.create(country="DE", percent=Decimal("19"), label="VAT")
        product = ProductType.objects.create(code="vps", name="VPS")
        plan = Plan.objects.create(product_type=product, code=MEASURED_PLAN, name="VPS S", cpu_cores=2, ram_gb=4,
                                   disk_gb=80)
        yearly = Plan.objects.create(product_type=product, code="vps-history", name="VPS S (history)", cpu_cores=2,
                                     ram_gb=4, disk_gb=80)
        # Funding is a staff adjustment: clearing may only move with a payment (audit_ledger's "clearing").
        clearing = LedgerAccount.objects.create(code="adjustment:bench:EUR", kind=LedgerAccount.Kind.ADJUSTMENT,
                                                currency="EUR", balance=0)
        _seed_orders(plan=plan, orders=orders, period_months=1, anchor=ANCHOR, rounds=rounds, clearing=clearing)
        history = history_orders(orders)
        # Yearly, due a month before ANCHOR: renewed once here, next due after the (at most 10) rounds.
        _seed_orders(plan=yearly, orders=history, period_months=12, anchor=add_months(ANCHOR, -13), rounds=1,
                     clearing=clearing)
    log(f"Renewing the {history} history orders (not measured)")
    renewals_run(now=add_months(ANCHOR, -1) - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def history_orders(orders: int) -> int:
    return max(ORDERS_PER_CUSTOMER, min(5000, orders // 10))


def _seed_orders(*, plan, orders: int, period_months: int, anchor: datetime, rounds: int, clearing) -> None:
    """`orders` due orders across orders/5 customers, each funded for `rounds` renewals by its own balanced
    adjustment from `clearing` (its running balance goes on from what it is)."""
    from accounts.models import Customer, User
    from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
    from orders.models import Order

    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    funding = PRICE * Decimal("1.19") * ORDERS_PER_CUSTOMER * rounds + Decimal("1.00")
    start = add_months(anchor, -period_months)
    batch = 5000
    made = 0
    while made < customers:
        size = min(batch, customers - made)
        rows = Customer.objects.bulk_create(
            Customer(currency="EUR", site_currency="EUR", street="Hauptstr. 1", city="Berlin", postcode="10115",
                     country="DE") for _ in range(size))
        User.objects.bulk_create(
            User(username=f"bench{c.pk}", email=f"bench{c.pk}@example.com", password="!", customer=c,
                 role=User.Role.OWNER, email_verified=True, first_name="Bench", last_name=str(c.pk)) for c in rows)
        accounts = LedgerAccount.objects.bulk_create(
            LedgerAccount(code=f"customer:{c.pk}:EUR", kind=LedgerAccount.Kind.CUSTOMER, customer=c, currency="EUR",
                          balance=funding) for c in rows)
        # One funding transaction per customer, as top-ups would have posted them.
        topups = LedgerTransaction.objects.bulk_create(
            LedgerTransaction(idempotency_key=f"bench:funding:{a.pk}", kind=LedgerTransaction.Kind.ADJUSTMENT,
                              memo="Benchmark funding") for a in accounts)
        legs = []
        for account, topup in zip(accounts, topups):
            clearing.balance -= funding
            legs.append(LedgerEntry(transaction=topup, account=clearing, amount=-funding, currency="EUR",
                                    balance_after=clearing.balance))
            legs.append(LedgerEntry(transaction=topup, account=account, amount=funding, currency="EUR",
                                    balance_after=funding))
        LedgerEntry.objects.bulk_create(legs)
        Order.objects.bulk_create(
            Order(customer=c, plan=plan, period_months=period_months, price=PRICE, currency="EUR",
                  status=Order.Status.ACTIVE, provisioning=Order.Provisioning.DONE,
                  ip=f"10.{(c.pk >> 8) & 255}.{c.pk & 255}.{n + 1}", anchor_at=anchor, anchor_months=period_months,
                  period_started_at=anchor, activated_at=start, paid_at=start,
                  expires_at=add_months(anchor, period_months), current_period=1)
            for c in rows for n in range(ORDERS_PER_CUSTOMER))
        made += size
        log(f"  seeded {made * ORDERS_PER_CUSTOMER}/{customers * ORDERS_PER_CUSTOMER} {plan.name} orders")
    clearing.save(update_fields=["balance"])


def add_months(moment: datetime, months: int) -> datetime:
    from orders.pricing import add_months as orders_add_months

    return orders_add_months(moment, months)


def check_round(round_number: int, orders: int) -> None:
    """Every order renewed exactly once for this round's period, nothing left pending."""
    from orders.models import Order, OrderRenewal

    period = round_number + 1
    renewals = OrderRenewal.objects.filter(order__plan__code=MEASURED_PLAN, period=period)
    paid = renewals.filter(status=OrderRenewal.Status.PAID).count()
    total = renewals.count()
    current = Order.objects.filter(plan__code=MEASURED_PLAN, current_period=period,
                                   expires_at=add_months(ANCHOR, period)).count()
    if not paid == total == current == orders:
        raise SystemExit(f"round {round_number}: {paid} paid renewals, {total} rows, {current} orders in period "
                         f"{period}; expected {orders} each")


# --- worker ----------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM). Not getrusage's ru_maxrss: Linux keeps that
    across exec, so a worker would report the parent's size at fork time."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(now: str) -> None:
    """One renewal process: run the real job and print its figures as JSON on stdout."""
    from django.db import connection

    from orders.services.renewal_batch import renewals_run

    statements = 0
    timings: dict[str, list[float]] = {}  # statement shape -> [count, seconds], with --statement-times

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        if not os.environ.get("BENCH_STATEMENT_TIMES"):
            return execute(sql, params, many, context)
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = timings.setdefault(re.sub(r"\(.*", "", sql[:70]), [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - began

    connection.ensure_connection()
    if os.environ.get("BENCH_STATEMENT_TIMES"):
        plain_commit = connection._commit

        def timed_commit():
            began = time.perf_counter()
            try:
                return plain_commit()
            finally:
                entry = timings.setdefault("COMMIT (deferred triggers run here)", [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - began

        connection._commit = timed_commit
    rss_by_chunk: list[float] = []  # peak RSS after each chunk: flat memory means it stops growing

    def progress(_summary):
        rss_by_chunk.append(peak_rss_mb())

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    if connection.settings_dict["HOST"] not in ("", "localhost", "127.0.0.1", "::1"):
        backend = None  # on another host: its pid means nothing here
    backend_before, cpu_before = loadkit.process_cpu_seconds(backend) if backend else None, time.process_time()
    started = time.time()
    with connection.execute_wrapper(count):
        summary = renewals_run(now=datetime.fromisoformat(now), progress=progress)
    finished = time.time()
    cpu, backend_after = time.process_time() - cpu_before, loadkit.process_cpu_seconds(backend) if backend else None
    for shape, (calls, seconds) in sorted(timings.items(), key=lambda item: -item[1][1])[:15]:
        log(f"    {seconds:7.2f} s {calls:6d}x  {shape}")
    print(json.dumps({
        "renewed": summary.renewed, "unpaid": summary.unpaid, "errors": summary.errors, "retries": summary.retries,
        "statements": statements, "started": started, "finished": finished, "cpu_seconds": cpu,
        "backend_cpu_seconds": None if backend_before is None or backend_after is None else backend_after - backend_before,
        "max_rss_mb": peak_rss_mb(),
        "rss_after_first_chunk_mb": rss_by_chunk[0] if rss_by_chunk else None,
    }))


def run_round(*, workers: int, now: datetime, env: dict) -> dict:
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", now.isoformat()], env=env, stdout=subprocess.PIPE)
             for _ in range(workers)]
    results = []
    for proc in procs:
        out, _err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"renewal worker failed with exit code {proc.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    renewed = sum(r["renewed"] for r in results)
    backends = [r["backend_cpu_seconds"] for r in results]
    seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return {
        "workers": workers, "renewed": renewed, "seconds": seconds, "per_second": renewed / seconds,
        "unpaid": sum(r["unpaid"] for r in results), "errors": sum(r["errors"] for r in results),
        "retries": sum(r["retries"] for r in results),
        "statements_per_renewal": sum(r["statements"] for r in results) / max(renewed, 1),
        "max_rss_mb": [round(r["max_rss_mb"], 1) for r in results],
        "rss_after_first_chunk_mb": [round(r["rss_after_first_chunk_mb"] or 0, 1) for r in results],
        "split": [r["renewed"] for r in results],
        # CPU per renewal: the workers' Python and their PostgreSQL backends (PostgreSQL's background
        # processes, the WAL writer among them, are not counted)
        "worker_cpu_ms": 1000 * sum(r["cpu_seconds"] for r in results) / max(renewed, 1),
        "backend_cpu_ms": None if None in backends else 1000 * sum(backends) / max(renewed, 1),
    }


# --- pgbench ---------------------------------------------------------------------------------------

def pgbench(url: str, *, clients: int, seconds: int) -> float:
    parts = urlsplit(url)
    name = f"bench_pgbench_{os.getpid()}"
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    base = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]
    admin_execute(url, f'DROP DATABASE IF EXISTS "{name}"')
    admin_execute(url, f'CREATE DATABASE "{name}"')
    try:
        # Scale = clients, as pgbench's documentation advises for TPC-B (else it measures row contention).
        subprocess.run(["pgbench", *base, "-i", "-q", "-s", str(max(clients, 1)), name], env=env, check=True,
                       capture_output=True)
        out = subprocess.run(["pgbench", *base, "-c", str(clients), "-j", str(clients), "-T", str(seconds), name],
                             env=env, check=True, capture_output=True, text=True).stdout
    finally:
        admin_execute(url, f'DROP DATABASE IF EXISTS "{name}"')
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


# --- main ------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds per worker count (best and spread reported)")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--keep-db", action="store_true", help="leave the scratch database for inspection")
    parser.add_argument("--statement-times", action="store_true", help="print where each worker's SQL time goes")
    parser.add_argument("--worker", metavar="NOW", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        django_setup(os.environ["DATABASE_URL"])
        worker(args.worker)
        return

    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("DATABASE_URL is not set: run through scripts/devenv.py (make bench-renewals).")
    name = f"bench_renewals_{os.getpid()}"
    url = with_db(base_url, name)
    worker_counts = [int(w) for w in args.workers.split(",")]
    rounds = args.repeat * len(worker_counts)
    if rounds > 10:
        raise SystemExit("at most 10 rounds: the history orders fall due again in the 11th month")
    admin_execute(base_url, f'CREATE DATABASE "{name}"')
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    broker = urlunsplit(urlsplit(redis_url)._replace(path="/14"))  # not the demo's queue (db 0) nor the tests' (15)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "portal.settings.base",
           "BENCH_STATEMENT_TIMES": "1" if args.statement_times else "",
           "CELERY_BROKER_URL": broker,
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")}
    try:
        os.environ.update(env)
        django_setup(url)
        from django.core.management import call_command

        log(f"Scratch database {name}: migrating")
        call_command("migrate", verbosity=0)
        log(f"Seeding {args.orders} due orders across {max(1, args.orders // ORDERS_PER_CUSTOMER)} customers")
        seed(orders=args.orders, rounds=rounds)
        from django.db import connection

        connection.close()

        tps = {}
        for clients in sorted(set(worker_counts)):
            log(f"pgbench TPC-B, {clients} client(s), {args.pgbench_seconds} s")
            tps[clients] = pgbench(base_url, clients=clients, seconds=args.pgbench_seconds)
            log(f"  {tps[clients]:.0f} tps")

        results: dict[int, list[dict]] = {w: [] for w in worker_counts}
        round_number = 0
        for _repeat in range(args.repeat):
            for workers in worker_counts:
                round_number += 1
                now = add_months(ANCHOR, round_number) - timedelta(hours=1)
                log(f"Round {round_number}: {workers} worker(s) renewing {args.orders} orders")
                result = run_round(workers=workers, now=now, env=env)
                check_round(round_number, args.orders)
                connection.close()
                log(f"  {result['renewed']} renewed in {result['seconds']:.1f} s = {result['per_second']:.0f}/s, "
                    f"split {result['split']}, {result['statements_per_renewal']:.2f} statements/renewal, "
                    f"peak RSS {result['max_rss_mb']} MB (after the first chunk {result['rss_after_first_chunk_mb']}), "
                    f"retried chunks {result['retries']}, CPU per renewal: workers {result['worker_cpu_ms']:.3f} ms, "
                    f"their PostgreSQL backends {result['backend_cpu_ms'] or 0:.3f} ms")
                results[workers].append(result)

        log("audit_ledger")
        call_command("audit_ledger")
        connection.close()
        report(args.orders, results, tps)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            admin_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        try:
            import redis

            redis.Redis.from_url(broker).delete("celery")
        except Exception as error:  # noqa: BLE001 - cleanup only
            log(f"could not empty the benchmark's Celery queue: {error}")


def report(orders: int, results: dict[int, list[dict]], tps: dict[int, float]) -> None:
    print(f"\nRenewal benchmark: {orders} orders, {orders // ORDERS_PER_CUSTOMER} customers, "
          f"{datetime.now(dt_timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"{'workers':>7} | {'renewals/s best':>15} | {'spread':>13} | {'pgbench tps':>11} | {'ratio':>5} | "
          f"{'total s (best)':>14} | {'statements/renewal':>18} | {'CPU ms/renewal: app + db':>24} | peak RSS MB per process")
    for workers, rounds in results.items():
        best = max(rounds, key=lambda r: r["per_second"])
        low = min(r["per_second"] for r in rounds)
        ratio = best["per_second"] / tps[workers]
        rss = max(max(r["max_rss_mb"]) for r in rounds)
        db = "?" if best["backend_cpu_ms"] is None else f"{best['backend_cpu_ms']:.3f}"
        cpu = f"{best['worker_cpu_ms']:.3f} + {db}"
        print(f"{workers:>7} | {best['per_second']:>15.0f} | {low:>6.0f}–{best['per_second']:<6.0f} | "
              f"{tps[workers]:>11.0f} | {ratio:>5.2f} | {best['seconds']:>14.1f} | "
              f"{best['statements_per_renewal']:>18.2f} | {cpu:>24} | {rss}")
    print("Every round: every order renewed exactly once; audit_ledger passed.")
    print(f"CPU ms/renewal: the workers' own (app) and their PostgreSQL backends' (db), in the best round; the "
          f"machine's {os.cpu_count()} CPUs give {1000 * (os.cpu_count() or 1):.0f} ms of CPU per second to share")


if __name__ == "__main__":
    main()
