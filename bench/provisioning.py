"""Provisioning on the real hypervisor: create-job throughput, and how long a customer waits from the
payment webhook to a running VM.

    make bench-provisioning               # or:
    python scripts/devenv.py -- .venv/bin/python bench/provisioning.py [--jobs 20] [--webhooks 10]
        [--workers 1,2] [--web-workers N] [--database bench_provisioning] [--keep] [--profile DIR]

A scratch database (`--database`: migrated, the demo catalogue; dropped afterwards unless --keep), a
throwaway redis-server as the broker, and the machine's libvirt (qemu:///system): a storage pool named
after the database with one blank 16 MiB qcow2 template, the `default` network, and the demo plan VPS
Start moved to the libvirt module at 64 MiB / 1 vCPU / 1 GiB. Nothing boots (the VMs run their BIOS on
a blank overlay), as in the provisioning tests. Every domain and volume is named `<database>-order-<id>`
and is removed, with the pool, at the end, also on failure.

1. Throughput: `--jobs` orders paid from the balance through `order_place` (the paid hook queues the
   create job and publishes its Celery task at commit); then `celery -A portal worker --concurrency C`
   for each C of `--workers` drains the queue. Jobs/s over first claim to last finish; per-job time
   from claim to finish; then every domain must be running in libvirt.
2. Latency: gunicorn (production settings, 2 × cores + 1 sync workers as deploy/gunicorn.conf.py) and a
   Celery worker (concurrency 2, the Procfile's default).
   `--webhooks` customers each with an unpaid order invoice and a sandbox payment attempt; the
   provider's signed `payment.succeeded` webhook is POSTed over HTTP, first one at a time (each after
   the previous VM runs), then all at once. Warm-up orders, as many as gunicorn workers and paid at
   once, run first and are not counted.

Times, all from this host's clock: webhook sent and answered (here), job claimed (a trigger on the
scratch database records the claiming UPDATE's clock_timestamp()), domain started (libvirt lifecycle
event, received here), order active (the job's finished_at). Each round and phase also reports how
busy the host's CPUs were and the CPU seconds per job by command name (/proc), so QEMU, libvirtd,
the worker, PostgreSQL and anyone else's work show separately. `--profile DIR` records each
throughput round's worker with py-spy (`--idle`, raw collapsed stacks; `.venv/bin/pip install py-spy`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadkit  # noqa: E402

URI = "qemu:///system"
PLAN = "vps-start"
OS_IMAGE = "Debian 12"
MACHINE = {"memory_mib": 64, "vcpus": 1, "disk_gib": 1}
TEMPLATE_MIB = 16
LATENCY_WORKERS = 2  # Celery concurrency behind the webhooks: the Procfile's CELERY_CONCURRENCY default
LOADS: list[float] = []  # 1-minute load average, sampled while waiting


class Hypervisor:
    """The bench's storage pool and template, start times of its domains from libvirt's lifecycle
    events, and clean-up of everything named after the scratch database."""

    def __init__(self, prefix: str):
        import libvirt

        self.libvirt, self.prefix, self.started = libvirt, prefix, {}
        libvirt.registerErrorHandler(lambda _ctx, _error: None, None)  # "not found" lookups are expected
        libvirt.virEventRegisterDefaultImpl()  # before the connection, so it delivers events
        self.conn = libvirt.open(URI)
        threading.Thread(target=self._loop, daemon=True).start()
        self.callback = self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None)

    def _loop(self) -> None:
        while True:
            self.libvirt.virEventRunDefaultImpl()

    def _event(self, _conn, dom, event, _detail, _opaque) -> None:
        order = self.order_of(dom.name())
        if event == self.libvirt.VIR_DOMAIN_EVENT_STARTED and order is not None:
            self.started.setdefault(order, time.time())

    def order_of(self, name: str) -> int | None:
        head = f"{self.prefix}-order-"
        return int(name[len(head):]) if name.startswith(head) and name[len(head):].isdigit() else None

    @property
    def template(self) -> str:
        return f"{self.prefix}-template.qcow2"

    def pool_create(self) -> str:
        try:
            pool = self.conn.storagePoolLookupByName(self.prefix)
        except self.libvirt.libvirtError:
            pool = self.conn.storagePoolDefineXML(f"<pool type='dir'><name>{self.prefix}</name><target>"
                                                  f"<path>/var/lib/libvirt/images/{self.prefix}</path></target></pool>")
            pool.build(0)
        if not pool.isActive():
            pool.create()
        pool.refresh(0)
        if self.template not in pool.listVolumes():
            pool.createXML(f"<volume><name>{self.template}</name><capacity unit='MiB'>{TEMPLATE_MIB}</capacity>"
                           f"<target><format type='qcow2'/></target></volume>", 0)
        network = self.conn.networkLookupByName("default")
        if not network.isActive():
            network.create()
        return self.prefix

    def check_running(self, order_ids) -> tuple[list[int], str]:
        """(orders whose domain is not running, the domain type of the last one: kvm or qemu)."""
        import xml.etree.ElementTree as ET

        missing, kind = [], "?"
        for order_id in order_ids:
            try:
                dom = self.conn.lookupByName(f"{self.prefix}-order-{order_id}")
            except self.libvirt.libvirtError:
                missing.append(order_id)
                continue
            if dom.state()[0] != self.libvirt.VIR_DOMAIN_RUNNING:
                missing.append(order_id)
            kind = ET.fromstring(dom.XMLDesc(0)).get("type")
        return missing, kind

    def clear(self) -> int:
        """Destroy and undefine the bench's domains and delete their volumes; returns how many domains."""
        domains = [d for d in self.conn.listAllDomains(0) if d.name().startswith(f"{self.prefix}-")]
        for dom in domains:
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(self.libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        try:
            pool = self.conn.storagePoolLookupByName(self.prefix)
        except self.libvirt.libvirtError:
            return len(domains)
        pool.refresh(0)
        for volume in pool.listAllVolumes(0):
            if volume.name().startswith(f"{self.prefix}-order-"):
                volume.delete(0)
        return len(domains)

    def remove(self) -> list[str]:
        """Everything: domains, volumes, the template, the pool and its directory. Returns what is left."""
        self.clear()
        try:
            pool = self.conn.storagePoolLookupByName(self.prefix)
        except self.libvirt.libvirtError:
            pool = None
        if pool is not None:
            if pool.isActive():
                pool.refresh(0)
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
                pool.destroy()
            pool.delete(0)
            pool.undefine()
        left = [d.name() for d in self.conn.listAllDomains(0) if d.name().startswith(f"{self.prefix}-")]
        left += [p.name() for p in self.conn.listAllStoragePools(0) if p.name() == self.prefix]
        self.conn.domainEventDeregisterAny(self.callback)
        self.conn.close()
        return left


# --- seeding -----------------------------------------------------------------------------------------

CLAIMS_SQL = """
CREATE TABLE bench_job_claims (job_id bigint NOT NULL, claimed_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION bench_job_claimed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_job_claims (job_id) VALUES (NEW.id); RETURN NULL; END $$;
CREATE TRIGGER bench_job_claimed AFTER UPDATE OF attempts ON {table} FOR EACH ROW
    WHEN (NEW.attempts > OLD.attempts) EXECUTE FUNCTION bench_job_claimed();
"""


def seed(pool: str, template: str, *, addresses: int) -> None:
    """The demo catalogue; VPS Start on the libvirt module, on one node with the bench's pool; enough
    addresses; the claim-time trigger (bench only: `job_run` keeps no claim time once a job is done)."""
    from django.db import connection

    from orders.models import HypervisorNode, IpAddress, IpPool, OsImage, OsTemplate, Plan, ProvisioningJob

    loadkit.seed_base()
    node = HypervisorNode.objects.create(name="bench", uri=URI, cpu_capacity=100_000, ram_capacity_mib=10_000_000,
                                         disk_capacity_gib=100_000, storage_pool=pool, network="default")
    OsTemplate.objects.create(node=node, os_image=OsImage.objects.get(name=OS_IMAGE), volume=template)
    plan = Plan.objects.get(code=PLAN)
    Plan.objects.filter(pk=plan.pk).update(module="libvirt", module_settings=MACHINE)
    ip_pool = IpPool.objects.get(pk=plan.ip_pool_id)
    IpAddress.objects.bulk_create(IpAddress(pool=ip_pool, address=f"10.78.{n // 250}.{n % 250 + 1}") for n in range(addresses))
    with connection.cursor() as cursor:
        cursor.execute(CLAIMS_SQL.format(table=ProvisioningJob._meta.db_table))


def orders_place(count: int, *, prefix: str, funded: bool) -> list:
    """`count` new customers ordering VPS Start through `order_place`: paid from a funded balance (its
    create job queued at commit), or left with an unpaid invoice and an open sandbox payment attempt."""
    from billing.gateways.services import payment_start
    from billing.models import Invoice
    from billing.services.payments import payment_record
    from orders.models import Plan
    from orders.services import placing

    plan = Plan.objects.get(code=PLAN)
    placed = []
    for n, customer in enumerate(loadkit.customers_create(count, prefix=prefix)):
        key = f"bench:{prefix}{n}"
        if funded:
            payment_record(idempotency_key=key, customer=customer, amount=Decimal("100.00"), currency="EUR",
                           method="bank_transfer")
        result = placing.order_place(customer=customer, actor=None, plan=plan, period_months=1, idempotency_key=key,
                                     options={"hostname": f"{prefix}{n}.bench.example", "os_image": OS_IMAGE})
        if result.paid != funded:
            raise RuntimeError(f"order {result.order.pk}: paid={result.paid}, expected {funded}")
        if not funded:
            invoice = Invoice.objects.get(pk=result.order.invoice_id)
            # The attempt rides on the order to the webhook that pays it.
            result.order.attempt = payment_start(customer=customer, invoice=invoice, gateway_code="sandbox",
                                                 return_url_for=lambda _a: ("/", "/")).attempt
        placed.append(result.order)
    return placed


# --- measuring -----------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest rank: an observed value (with 10 samples, p95 is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 95), max(values)


def wait_jobs_done(order_ids: list[int], *, timeout: float) -> dict[int, tuple[int, float]]:
    """Wait until every order's create job is done; {order id: (job id, finished at)}. Fails at once
    on a job error (no beat runs here to retry it)."""
    from orders.models import ProvisioningJob

    deadline = time.monotonic() + timeout
    while True:
        rows = list(ProvisioningJob.objects.filter(order_id__in=order_ids, action=ProvisioningJob.Action.CREATE)
                    .values_list("order_id", "pk", "state", "finished_at", "last_error"))
        errors = [f"order {order}: {error}" for order, _pk, _state, _at, error in rows if error]
        if errors:
            raise RuntimeError("create job failed: " + "; ".join(errors[:3]))
        done = {order: (pk, at.timestamp()) for order, pk, state, at, _e in rows if state == ProvisioningJob.State.DONE}
        if len(done) == len(order_ids):
            return done
        LOADS.append(os.getloadavg()[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(done)} of {len(order_ids)} create jobs done after {timeout:.0f} s")
        time.sleep(0.1)


def claim_times() -> dict[int, float]:
    """First claim of each job (epoch seconds)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT job_id, EXTRACT(EPOCH FROM min(claimed_at)) FROM bench_job_claims GROUP BY job_id")
        return {job: float(at) for job, at in cursor.fetchall()}


def throughput_round(url: str, env: dict, hv: Hypervisor, *, workers: int, jobs: int, logs: Path,
                     profile: Path | None) -> dict:
    orders = orders_place(jobs, prefix=f"jobs{workers}_", funded=True)
    ids = [o.pk for o in orders]
    loadkit.log(f"{workers} worker process(es): {jobs} paid orders, their create tasks queued; starting the worker")
    with loadkit.celery_worker(url, concurrency=workers, extra_env=env, log_path=logs / f"worker-{workers}.log") as worker:
        spy = py_spy(worker.pid, profile / f"worker-{workers}.txt") if profile else None
        deadline = time.monotonic() + 120
        while not claim_times():  # the host's CPU is counted from the first claim (not the worker's start-up)
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker claimed no job (see {logs})")
            time.sleep(0.05)
        cpu = HostCpu()
        done = wait_jobs_done(ids, timeout=60 + 15 * jobs)
        busy, by_command = cpu.stop(per=jobs)
    if spy is not None:
        spy.wait(60)
    claimed = claim_times()
    durations = [finished - claimed[job] for job, finished in done.values()]
    wall = max(f for _j, f in done.values()) - min(claimed[j] for j, _f in done.values())
    not_running, kind = hv.check_running(ids)
    result = {"workers": workers, "jobs": jobs, "wall": wall, "per_second": jobs / wall, "job": spread(durations),
              "not_running": not_running, "domain_type": kind, "busy": busy, "cpu": by_command}
    loadkit.log(f"  {jobs} VMs in {wall:.1f} s = {result['per_second']:.2f} jobs/s; per job p50/p95/max "
                f"{'/'.join(f'{s:.2f}' for s in result['job'])} s; running in libvirt: {jobs - len(not_running)}/{jobs} ({kind})")
    loadkit.log(f"  host CPUs {busy:.0%} busy; CPU-s per job by command: {result['cpu']}")
    hv.clear()
    return result


class HostCpu:
    """Where the host's CPU went from now to stop(): the share of all CPUs busy, and CPU seconds per
    unit of work by command name (QEMU, libvirtd, the worker, PostgreSQL, and anyone else's)."""

    def __init__(self):
        self.before, self.busy_before, self.since = cpu_by_command(), host_busy_seconds(), time.time()

    def stop(self, *, per: int) -> tuple[float, str]:
        used = {name: seconds - self.before.get(name, 0) for name, seconds in cpu_by_command().items()}
        busy = (host_busy_seconds() - self.busy_before) / ((time.time() - self.since) * os.cpu_count())
        top = sorted(((seconds / per, name) for name, seconds in used.items() if seconds > 0), reverse=True)[:5]
        return busy, ", ".join(f"{name} {seconds:.2f}" for seconds, name in top)


def host_busy_seconds() -> float:
    """CPU time the whole host has spent busy, all CPUs (/proc/stat: everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_by_command() -> dict[str, float]:
    """CPU seconds used so far by every process on the host, per command name. This bench's own
    processes are marked (its Celery workers, gunicorn, redis-server) and count their reaped children
    too (genisoimage under the worker); an unmarked "python", "celery" or "gunicorn" is someone else's.
    (Only ours count children: init reaping someone's orphans would add their whole lives.)"""
    procs = loadkit.processes()
    ours = {os.getpid()}
    while more := {pid for pid, (_name, parent, _cpu) in procs.items() if parent in ours} - ours:
        ours |= more
    totals: dict[str, float] = {}
    for pid, (name, _parent, (user, system, children_user, children_system)) in procs.items():
        seconds = user + system + (children_user + children_system if pid in ours else 0)
        name = "this bench" if pid == os.getpid() else f"{name} (bench)" if pid in ours else name
        totals[name] = totals.get(name, 0) + seconds
    return totals


def py_spy(pid: int, output: Path) -> subprocess.Popen:
    """py-spy on the worker and its pool processes until the worker exits."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--subprocesses", "--idle", "--format", "raw",
                             "--rate", "100", "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def webhook_post(base: str, attempt) -> tuple[float, float, int]:
    """The sandbox provider's signed payment.succeeded for `attempt`, POSTed as the provider does;
    returns (sent, answered, HTTP status)."""
    from django.urls import reverse

    from billing.gateways import sandbox_provider

    body = json.dumps({"id": f"evt_bench_{attempt.pk}", "type": "payment.succeeded", "created": int(time.time()),
                       "data": {"reference": str(attempt.reference), "transaction": f"txn_bench_{attempt.pk}",
                                "amount": str(attempt.amount), "currency": attempt.currency, "card": None}},
                      separators=(",", ":"), sort_keys=True)
    request = urllib.request.Request(base + reverse("gateways:webhook", kwargs={"gateway_code": "sandbox"}),
                                     data=body.encode(), headers={"Content-Type": "application/json",
                                                                  sandbox_provider.SIGNATURE_HEADER: sandbox_provider.sign(body)})
    sent = time.time()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = response.read().decode()
        status = response.status
    if answer != "processed":
        raise RuntimeError(f"webhook for payment attempt {attempt.pk}: {status} {answer}")
    return sent, time.time(), status


def latency(base: str, hv: Hypervisor, orders: list, *, burst: bool) -> list[dict]:
    """POST each order's webhook (one at a time, each after the previous VM runs; or all at once) and
    time each stage."""
    posted: dict[int, tuple[float, float, int]] = {}
    if burst:
        with ThreadPoolExecutor(max_workers=len(orders)) as pool:
            for order, times in zip(orders, pool.map(lambda o: webhook_post(base, o.attempt), orders)):
                posted[order.pk] = times
        done = wait_jobs_done([o.pk for o in orders], timeout=60 + 15 * len(orders))
    else:
        done = {}
        for order in orders:
            posted[order.pk] = webhook_post(base, order.attempt)
            done.update(wait_jobs_done([order.pk], timeout=120))
    claimed = claim_times()
    rows = []
    for order in orders:
        sent, answered, _status = posted[order.pk]
        job, finished = done[order.pk]
        running = hv.started.get(order.pk)
        if running is None:
            raise RuntimeError(f"no start event from libvirt for order {order.pk}")
        rows.append({"response": answered - sent, "to_claim": claimed[job] - sent, "claim_to_running": running - claimed[job],
                     "to_running": running - sent, "running_to_active": finished - running})
    return rows


def latency_phases(url: str, env: dict, hv: Hypervisor, *, count: int, web_workers: int,
                   logs: Path) -> tuple[dict, dict]:
    """gunicorn + a Celery worker; warm-up orders paid at once (a first request per web worker is
    slower), then `count` webhooks one at a time, then `count` at once. Returns ({phase: per-order
    times}, {phase: (share of CPUs busy, CPU-s per order by command)})."""
    warm, one_by_one, at_once = (orders_place(n, prefix=p, funded=False)
                                 for n, p in ((web_workers, "warm"), (count, "seq"), (count, "burst")))
    phases, cpus = {}, {}
    with loadkit.celery_worker(url, concurrency=LATENCY_WORKERS, extra_env=env, log_path=logs / "worker-web.log"), \
            loadkit.gunicorn(url, workers=web_workers, extra_env=env, log_path=logs / "gunicorn.log") as base:
        loadkit.log(f"webhooks: {web_workers} warm-up orders at once (one per gunicorn worker, more or less), "
                    f"then {count} one at a time, then {count} at once")
        latency(base, hv, warm, burst=True)
        hv.clear()
        for name, orders, burst in (("one at a time", one_by_one, False), ("all at once", at_once, True)):
            cpu = HostCpu()
            phases[name] = latency(base, hv, orders, burst=burst)
            cpus[name] = cpu.stop(per=len(orders))
            not_running, _kind = hv.check_running([o.pk for o in orders])
            if not_running:
                raise RuntimeError(f"orders {not_running}: domain not running")
            total = spread([r["to_running"] for r in phases[name]])
            loadkit.log(f"  {name}: webhook → VM running p50/p95/max {'/'.join(f'{s:.2f}' for s in total)} s; "
                        f"host CPUs {cpus[name][0]:.0%} busy; CPU-s per order by command: {cpus[name][1]}")
            hv.clear()
    return phases, cpus


# --- main ------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="orders per throughput round (default 20)")
    parser.add_argument("--workers", default="1,2", help="worker processes per throughput round (default 1,2)")
    parser.add_argument("--webhooks", type=int, default=10, help="orders paid by webhook, per phase (default 10)")
    parser.add_argument("--web-workers", type=int, default=2 * (os.cpu_count() or 1) + 1,
                        help="gunicorn workers (default 2 × cores + 1, deploy/gunicorn.conf.py's default)")
    parser.add_argument("--database", default="bench_provisioning", help="scratch database and libvirt name prefix")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (the VMs are always removed)")
    parser.add_argument("--profile", type=Path, help="directory for py-spy profiles of the throughput rounds' workers")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    url = loadkit.scratch_database_url(args.database)
    prefix = args.database.replace("_", "-")
    logs = Path(tempfile.mkdtemp(prefix="bench-provisioning-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    uptime_start = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = datetime.now(timezone.utc)
    hv = Hypervisor(prefix)
    signal.signal(signal.SIGTERM, terminated)  # `kill` or `timeout` still clean up (finally)
    try:
        if hv.clear():
            loadkit.log(f"removed leftover {prefix}-* domains of an earlier run")
        loadkit.database_recreate(url)
        with loadkit.redis_server() as redis_url:
            # Shared by this process (it publishes the tasks of orders it places), gunicorn and the workers.
            os.environ.update({"REDIS_URL": redis_url, "PROVISIONING_LIBVIRT_PREFIX": prefix,
                               "SANDBOX_WEBHOOK_SECRET": secrets.token_urlsafe(32)})
            env = {"PAYMENT_SANDBOX_ENABLED": "1"}
            loadkit.django_setup(url)
            addresses = len(worker_counts) * args.jobs + 2 * args.webhooks + args.web_workers
            seed(hv.pool_create(), hv.template, addresses=addresses)
            rounds = [throughput_round(url, env, hv, workers=w, jobs=args.jobs, logs=logs, profile=args.profile)
                      for w in worker_counts]
            phases, cpus = latency_phases(url, env, hv, count=args.webhooks, web_workers=args.web_workers, logs=logs)
        report(args, url, rounds, phases, cpus, started=started, uptimes=(uptime_start, subprocess.run(
            ["uptime"], capture_output=True, text=True).stdout.strip()))
        return 1 if any(r["not_running"] for r in rounds) else 0
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        left = hv.remove()
        if not args.keep:
            loadkit.database_drop(url)
        loadkit.log(f"logs: {logs}; libvirt: " + (f"LEFT {', '.join(left)}" if left else f"nothing named {prefix}-* left"))


def terminated(_signum, _frame) -> None:
    loadkit.log("SIGTERM: stopping and cleaning up")
    sys.exit(143)


def report(args, url: str, rounds: list[dict], phases: dict[str, list[dict]], cpus: dict[str, tuple[float, str]], *,
           started, uptimes) -> None:
    import libvirt

    info = loadkit.machine()
    conn = libvirt.open(URI)
    versions = f"libvirt {_version(conn.getLibVersion())}, QEMU {_version(conn.getVersion())}"
    conn.close()
    kind = {"kvm": "KVM", "qemu": "TCG"}.get(rounds[0]["domain_type"] if rounds else "", "?")
    print(f"\nbench/provisioning.py — {started:%Y-%m-%d %H:%M} UTC; {info['nproc']} CPUs ({info['cpu']}); {kind}; "
          f"{versions}; PostgreSQL {loadkit.server_version(url)}; VMs {MACHINE['memory_mib']} MiB, {MACHINE['vcpus']} vCPU, "
          f"qcow2 overlay on a blank {TEMPLATE_MIB} MiB template")
    print(f"load average (1 min) while measuring: {min(LOADS):.2f}–{max(LOADS):.2f}, mean {sum(LOADS) / len(LOADS):.2f}")
    print(f"uptime before: {uptimes[0]}\nuptime after:  {uptimes[1]}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"\nCreate-job throughput ({args.jobs} paid orders queued, then the worker started)")
    print(f"{'workers':>7} {'jobs':>5} {'wall s':>7} {'jobs/s':>7} {'job p50 s':>10} {'p95 s':>6} {'max s':>6} "
          f"{'running':>8} {'CPUs busy':>10}  CPU-s per job by command")
    for r in rounds:
        p50, p95, top = r["job"]
        print(f"{r['workers']:>7} {r['jobs']:>5} {r['wall']:>7.1f} {r['per_second']:>7.2f} {p50:>10.2f} {p95:>6.2f} {top:>6.2f} "
              f"{r['jobs'] - len(r['not_running']):>4}/{r['jobs']:<3} {r['busy']:>10.0%}  {r['cpu']}")
    print(f"\nPayment webhook → VM running (gunicorn {args.web_workers} sync workers, Celery concurrency {LATENCY_WORKERS}; "
          f"{args.webhooks} orders per phase; seconds)")
    stages = [("webhook response", "response"), ("webhook → job claimed", "to_claim"),
              ("job claimed → domain running", "claim_to_running"), ("webhook → domain running", "to_running"),
              ("domain running → order active", "running_to_active")]
    for name, rows in phases.items():
        print(f"  {name}:{'p50':>{38 - len(name)}} {'p95':>6} {'max':>6}   (host CPUs {cpus[name][0]:.0%} busy; "
              f"CPU-s per order: {cpus[name][1]})")
        for label, key in stages:
            p50, p95, top = spread([r[key] for r in rows])
            print(f"    {label:<30}{p50:>6.2f} {p95:>6.2f} {top:>6.2f}")


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


if __name__ == "__main__":
    sys.exit(main())
