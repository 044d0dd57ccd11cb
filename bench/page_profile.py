"""Per-page server cost in-process, for comparing before/after on a busy machine.

    python scripts/devenv.py -- .venv/bin/python bench/page_profile.py --database bench_pages [-n 100] [--profile 25]
        [--only balance,expenses]

Uses a database seeded by bench/pages.py (`make bench-pages BENCH_ARGS="--keep"`), production settings
with the bench's URLconf, and the test client logged in as the heavy customer. Each page is requested
3 times to warm up, then `-n` times; it prints the median wall time and the median CPU time of this
process per request (CPU time hardly moves when other processes load the machine, wall time does),
the SQL statements and the HTML size. `--profile K` adds cProfile's top K functions (by own time; set
PROFILE_SORT=cumulative for cumulative) per page (PROFILE_CALLERS=<pattern> adds who calls the matching functions); `--split` adds the CPU
spent in Jinja2 renders per template and in SQL. `--topbar-cache-ab` measures each page with the top
bar's cache off and on (TOPBAR_CACHE_SECONDS 0 / 300), alternately, four rounds each, and prints the
lowest median of each.

Comparing two checkouts (before/after): run this in each, alternately, a few rounds, on the same
database, and compare the lowest CPU medians.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadkit  # noqa: E402
import pages  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="bench_pages")
    parser.add_argument("-n", type=int, default=100, help="requests per page (default 100)")
    parser.add_argument("--only", default="", help="comma-separated page names (bench/pages.py's names)")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top K functions per page")
    parser.add_argument("--topbar-cache-ab", action="store_true", help="each page with the top-bar cache off and on")
    parser.add_argument("--split", action="store_true",
                        help="also print each page's CPU in Jinja2 renders (per template) and in SQL (ORM compile, execute, rows)")
    parser.add_argument("--plan-times", action="store_true",
                        help="also print PostgreSQL's planning and execution time of the page's reads (EXPLAIN ANALYZE, best of 5)")
    parser.add_argument("--plan-modes", action="store_true",
                        help="also print each prepared statement's planning + execution time with its generic plan "
                             "and with a custom plan (EXPLAIN ANALYZE EXECUTE, best of 5 each)")
    parser.add_argument("--sql-times", action="store_true",
                        help="also print each statement's median wall time (the round trip PostgreSQL's work is in)")
    args = parser.parse_args()
    url = loadkit.scratch_database_url(args.database)
    if not loadkit.database_exists(url):
        sys.exit(f"{args.database} does not exist: seed it with bench/pages.py --keep --database {args.database}")
    env = loadkit.production_env(url, {"DJANGO_SETTINGS_MODULE": "bench.portal_settings"})
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "SECURE_SSL_REDIRECT", "DATABASE_URL",
                                           "DB_CONN_MAX_AGE", "ALLOWED_HOSTS", "LOG_LEVEL", "CACHE_KEY_PREFIX")})
    sys.path.insert(0, str(loadkit.ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("collectstatic", interactive=False, verbosity=0)  # production settings: the manifest storage
    split = _split_counters() if args.split else None
    client = Client(HTTP_HOST="127.0.0.1", secure=True)
    client.force_login(pages._heavy_user())
    ids = pages.page_ids()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    if args.topbar_cache_ab:
        return topbar_cache_ab(client, ids, only, args.n)
    print(f"{'page':<22}{'wall ms':>9}{'CPU ms':>9}{'queries':>9}{'KB':>7}")
    for name, path, headers in pages.PAGES:
        if only and name not in only:
            continue
        path = path.format(**ids)
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        for _ in range(3):
            response = client.get(path, **meta)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
        with CaptureQueriesContext(connection) as queries:
            client.get(path, **meta)
        statements, captured = len(queries), list(queries.captured_queries)  # now: the next request's start clears the log
        walls, cpus = [], []
        profiler = cProfile.Profile() if args.profile else None
        for _ in range(args.n):
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            client.get(path, **meta)
            if profiler:
                profiler.disable()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        print(f"{name:<22}{statistics.median(walls) * 1000:>9.1f}{statistics.median(cpus) * 1000:>9.1f}"
              f"{statements:>9}{len(response.content) / 1024:>7.0f}", flush=True)
        if split is not None:  # a lazy queryset first read in a template counts in both
            split.clear()
            for _ in range(args.n):
                client.get(path, **meta)
            for part, seconds in split.most_common():
                print(f"    {seconds / args.n * 1000:6.2f} ms  {part}")
        if args.sql_times:
            _print_sql_times(client, path, meta, args.n, connection)
        if args.plan_times:
            _print_plan_times(captured, connection)
        if args.plan_modes:
            _print_plan_modes(captured, connection)
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "tottime"))
            stats.print_stats(args.profile)
            if os.environ.get("PROFILE_CALLERS"):  # who calls the functions matching this pattern
                stats.print_callers(os.environ["PROFILE_CALLERS"])
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()), flush=True)
    with connection.cursor() as cursor:  # what the prepared statements' plans hold in this connection's backend
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        statements = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name LIKE 'CachedPlan%'")
        print(f"PostgreSQL backend: {statements} prepared statements, cached plans {cursor.fetchone()[0] / 2**20:.1f} MB")
    return 0


def _print_sql_times(client, path: str, meta: dict, n: int, connection) -> None:
    """Each statement of the page (in order) with its median wall time over `n` requests."""
    from core.compiled import prepared_sql

    times: dict[int, list[float]] = {}
    texts: dict[int, str] = {}

    for _ in range(n):
        position = iter(range(1000))

        def timed(execute, sql, params, many, context):
            index = next(position)
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                times.setdefault(index, []).append(time.perf_counter() - start)
                texts.setdefault(index, " ".join(prepared_sql(sql).split())[:110])

        with connection.execute_wrapper(timed):
            client.get(path, **meta)
    for index in sorted(times):
        print(f"    {statistics.median(times[index]) * 1000:6.2f} ms  {texts[index]}")


def _explain_runs(cursor, sql: str, runs: int = 5) -> list[tuple[float, float]]:
    """(planning ms, execution ms) of `runs` EXPLAIN ANALYZE runs of `sql` (an EXECUTE: the prepared
    statement's plan as it runs, cached or planned now)."""
    import re

    times = []
    for _ in range(runs):
        cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) " + sql)
        text = "\n".join(row[0] for row in cursor.fetchall())
        times.append((float(re.search(r"Planning Time: ([\d.]+)", text).group(1)),
                      float(re.search(r"Execution Time: ([\d.]+)", text).group(1))))
    return times


def _print_plan_times(captured: list[dict], connection) -> None:
    """PostgreSQL's own time for the page's reads: planning and execution summed over its SELECTs, each the best
    of 5 EXPLAIN ANALYZE runs (the server's CPU a page costs besides the round trips)."""
    from core.compiled import prepared_sql

    planning = execution = 0.0
    with connection.cursor() as cursor:
        for query in captured:
            if prepared_sql(query["sql"]).lstrip().upper().startswith(("SELECT", "WITH", "(")):
                plans, runs = zip(*_explain_runs(cursor, query["sql"]))
                planning, execution = planning + min(plans), execution + min(runs)
    print(f"    PostgreSQL: planning {planning:.2f} ms, execution {execution:.2f} ms")


def _print_plan_modes(captured: list[dict], connection) -> None:
    """Each prepared statement of the page (DB_PREPARED_STATEMENTS) with PostgreSQL's planning + execution
    time under its generic plan (what the connection runs once it caches one) and under a plan for the
    call's values, each the best of 5: where a generic plan is worse for the heavy customer."""
    from core.compiled import prepared_sql

    def best(cursor, sql: str, mode: str) -> float:
        cursor.execute(f"SET plan_cache_mode = {mode}")
        times = _explain_runs(cursor, sql)
        cursor.execute("RESET plan_cache_mode")
        return min(planning + execution for planning, execution in times)

    with connection.cursor() as cursor:
        for query in captured:
            if query["sql"].startswith("EXECUTE "):
                generic, custom = best(cursor, query["sql"], "force_generic_plan"), best(cursor, query["sql"], "force_custom_plan")
                print(f"    generic {generic:5.2f} ms  custom {custom:5.2f} ms  {' '.join(prepared_sql(query['sql']).split())[:90]}")


def _split_counters():
    """CPU seconds spent in Jinja2 template renders (by name) and in the ORM's execute_sql, counted
    from now on."""
    import collections

    import jinja2.environment
    from django.db.models.sql import compiler

    counters = collections.Counter()

    def timed(label, method):
        def wrapper(self, *args, **kwargs):
            start = time.process_time()
            try:
                return method(self, *args, **kwargs)
            finally:
                counters[label(self)] += time.process_time() - start
        return wrapper

    jinja2.environment.Template.render = timed(lambda t: f"jinja {t.name}", jinja2.environment.Template.render)
    compiler.SQLCompiler.execute_sql = timed(lambda c: "sql", compiler.SQLCompiler.execute_sql)
    return counters


def _medians(client, path: str, meta: dict, n: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(n):
        wall, cpu = time.perf_counter(), time.process_time()
        client.get(path, **meta)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def topbar_cache_ab(client, ids: dict, only: set, n: int) -> int:
    from django.test import override_settings

    print(f"{'page':<22}{'CPU off':>9}{'CPU on':>9}{'wall off':>10}{'wall on':>9}")
    for name, path, headers in pages.PAGES:
        if only and name not in only:
            continue
        path = path.format(**ids)
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        runs = {0: [], 300: []}
        for _round in range(4):
            for seconds in runs:
                with override_settings(TOPBAR_CACHE_SECONDS=seconds):
                    for _ in range(3):
                        client.get(path, **meta)
                    runs[seconds].append(_medians(client, path, meta, n))
        off, on = runs[0], runs[300]
        print(f"{name:<22}{min(r[1] for r in off):>9.1f}{min(r[1] for r in on):>9.1f}"
              f"{min(r[0] for r in off):>10.1f}{min(r[0] for r in on):>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
