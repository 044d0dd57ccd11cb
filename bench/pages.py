"""Customer page latency with a heavy account: gunicorn (production settings, 2 workers) driven by wrk.

    make bench-pages                      # or:
    python scripts/devenv.py -- .venv/bin/python bench/pages.py [--light 2000] [--duration 10] [--keep] [--reuse]

Seeds a scratch database `bench_pages` with one heavy customer (1,000 services, 5,000 invoices,
20,000 balance ledger entries, 300 tickets, 2,000 notifications) and `--light` small ones, serves the
portal with gunicorn on a free loopback port, logs in as the heavy customer through the login form,
and runs wrk (8 connections) against each page and a minimal authenticated view (/accounts/whoami).
Prints requests/s, p50/p95/p99 and the SQL query count of each page, then the targets:
p95 <= 50 ms, and each page's throughput >= 50% of the minimal view's.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadkit  # noqa: E402

PAGES = [
    ("minimal (whoami)", "/accounts/whoami"),
    ("dashboard", "/"),
    ("orders", "/orders/"),
    ("invoices", "/billing/invoices/"),
    ("balance", "/billing/"),
    ("expenses", "/billing/expenses/"),
    ("tickets", "/tickets/"),
    ("notifications", "/notifications/"),
]
HEAVY = {"services": 1000, "invoices": 5000, "ledger_entries": 20000, "tickets": 300, "notifications": 2000}
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
    loadkit.log(f"seeded 1 heavy + {light} light customers in {time.monotonic() - started:.0f} s")


def query_counts() -> dict[str, int]:
    """SQL statements per page for the heavy customer, counted in-process with the test client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="heavy0"))
    counts = {}
    for name, path in PAGES:
        client.get(path)  # warm caches (content types, rates) the way a running server has them
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")
        counts[name] = len(queries)
    return counts


def drive(wrk: str, base: str, cookie: str, path: str, *, duration: int, connections: int, script: Path) -> dict:
    command = [wrk, "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s", "-s", str(script),
               "-H", f"Cookie: {cookie}", base + path]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def check_page(base: str, cookie: str, path: str) -> None:
    import urllib.request

    opener = urllib.request.build_opener(loadkit.NoRedirect)
    response = opener.open(urllib.request.Request(base + path, headers={"Cookie": cookie}), timeout=120)
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", type=int, default=2000, help="number of light customers (default 2000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per page (default 10)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--reuse", action="store_true", help="reuse an already seeded bench_pages database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument("--only", default="", help="comma-separated page names to drive")
    args = parser.parse_args()
    wrk = ensure_wrk()
    url = loadkit.scratch_database_url("bench_pages")
    reuse = args.reuse and loadkit.database_exists(url)
    if not reuse:
        loadkit.database_recreate(url)
    loadkit.django_setup(url)
    try:
        if not reuse:
            seed(args.light)
        counts = query_counts()
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "report.lua"
            script.write_text(WRK_SCRIPT)
            with loadkit.gunicorn(url, workers=args.workers, log_path=Path(tmp) / "gunicorn.log") as base:
                cookie = loadkit.login(base, "heavy0")
                only = {n.strip() for n in args.only.split(",") if n.strip()}
                for name, path in PAGES:
                    if only and name not in only and name != PAGES[0][0]:
                        continue
                    check_page(base, cookie, path)
                    drive(wrk, base, cookie, path, duration=2, connections=args.connections, script=script)  # warm-up
                    results[name] = drive(wrk, base, cookie, path, duration=args.duration,
                                          connections=args.connections, script=script)
        report(results, counts, args, url)
        minimal = results[PAGES[0][0]]["rps"]
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
    minimal = results[PAGES[0][0]]["rps"]
    print(f"\nbench/pages.py — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}); "
          f"PostgreSQL {loadkit.server_version(url)}; gunicorn {args.workers} sync workers; wrk {args.connections} connections, "
          f"{args.duration} s per page; {args.light} light customers")
    print(f"{'page':<18}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'queries':>9}{'vs min':>8}  verdict")
    for name, r in results.items():
        ratio = r["rps"] / minimal
        ok = r["p95_us"] / 1000 <= P95_TARGET_MS and ratio >= THROUGHPUT_TARGET and not r["non_2xx"] and not r["socket_errors"]
        errors = f" ({r['non_2xx']} non-2xx, {r['socket_errors']} socket errors)" if r["non_2xx"] or r["socket_errors"] else ""
        print(f"{name:<18}{r['rps']:>8.0f}{r['p50_us'] / 1000:>8.1f}{r['p95_us'] / 1000:>8.1f}{r['p99_us'] / 1000:>8.1f}"
              f"{counts[name]:>9}{ratio:>8.0%}  {'ok' if ok else 'MISSED'}{errors}")
    print(f"targets: p95 <= {P95_TARGET_MS} ms; throughput >= {THROUGHPUT_TARGET:.0%} of the minimal view's")


if __name__ == "__main__":
    sys.exit(main())
