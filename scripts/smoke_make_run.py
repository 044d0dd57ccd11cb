"""CI: prove the README's `make run` works as a newcomer meets it, from the same clean clone.

Starts `make run` in its own process group, waits for /healthz (database and broker ok), signs in
through the login form as the demo customer it printed and loads the dashboard (Client ID shown),
signs in to /admin/ as the printed staff user, then stops it with SIGINT (Ctrl-C) and checks that
no process it started is left. Any failure prints the tail of the run log and exits non-zero.

    python3 scripts/smoke_make_run.py [--timeout 600]
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8000"
LOG = ROOT / "test-artifacts" / "make-run.log"


class SmokeFailure(Exception):
    pass


def log(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


class Browser:
    """Just enough of a browser: cookies, CSRF tokens from forms, redirects followed."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str, str]:
        return self._open(urllib.request.Request(BASE + path))

    def post_form(self, path: str, fields: dict) -> tuple[int, str, str]:
        status, html, _url = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if status != 200 or token is None:
            raise SmokeFailure(f"GET {path}: {status}, no CSRF token in the form")
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        return self._open(urllib.request.Request(BASE + path, data=data, headers={"Referer": BASE + path}))

    def _open(self, request) -> tuple[int, str, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace"), response.geturl()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace"), error.geturl()


# The demo staff user's documented TOTP secret (portal/demo.py, README): /admin/ needs a second factor.
DEMO_ADMIN_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def totp_now(secret_b32: str) -> str:
    """RFC 6238 code (SHA-1, 30 s, 6 digits), as an authenticator app shows it."""
    import base64
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return str((struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000).zfill(6)


def printed_logins(text: str) -> tuple[tuple[str, str], tuple[str, str]]:
    customer = re.search(r"Customer login: (\S+) / (\S+)", text)
    staff = re.search(r"Staff admin: +\S+ +(\S+) / (\S+)", text)
    if not customer or not staff:
        raise SmokeFailure("make run did not print the demo logins")
    return customer.groups(), staff.groups()


def wait_healthy(process, deadline: float) -> dict:
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SmokeFailure(f"make run exited with {process.returncode} before /healthz answered")
        try:
            with urllib.request.urlopen(BASE + "/healthz", timeout=5) as response:
                body = json.load(response)
                if response.status == 200 and body.get("status") == "ok":
                    checks = body.get("checks", {})
                    if checks.get("database") == "ok" and checks.get("broker") == "ok":
                        return body
                last = f"{response.status} {body}"
        except (OSError, ValueError) as error:
            last = str(error)
        time.sleep(2)
    raise SmokeFailure(f"/healthz never answered 200 with database and broker ok (last: {last})")


def descendants(root_pid: int) -> set[int]:
    """Every live process below `root_pid` (from /proc), including ones that left its process group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def check_portal(process) -> None:
    customer, staff = printed_logins(LOG.read_text())
    browser = Browser()
    status, html, url = browser.post_form("/accounts/login/", {"username": customer[0], "password": customer[1]})
    if status != 200 or "/accounts/login/" in url:
        raise SmokeFailure(f"customer login failed: {status} at {url}")
    status, html, _ = browser.get("/")
    _, who, _ = browser.get("/accounts/whoami")
    client_id = str(json.loads(who).get("customer_id"))
    if status != 200 or "Client ID" not in html or client_id not in html:
        raise SmokeFailure(f"dashboard: {status}, Client ID {client_id} not shown")
    log(f"dashboard 200 for {customer[0]}, Client ID {client_id} shown")

    admin = Browser()
    status, html, url = admin.post_form("/admin/login/?next=/admin/", {"username": staff[0], "password": staff[1],
                                                                      "otp_token": totp_now(DEMO_ADMIN_TOTP_SECRET)})
    if status != 200 or not url.rstrip("/").endswith("/admin") or "Log out" not in html and "logout" not in html:
        raise SmokeFailure(f"staff admin login failed: {status} at {url}")
    log(f"/admin/ 200 for {staff[0]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=int, default=900, help="seconds to wait for /healthz (first run installs)")
    args = parser.parse_args()
    LOG.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with LOG.open("w") as out:
        process = subprocess.Popen(["make", "run"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    started: set[int] = set()
    try:
        wait_healthy(process, time.monotonic() + args.timeout)
        log("/healthz 200: database ok, broker ok")
        started = descendants(process.pid) | {process.pid}
        check_portal(process)
        time.sleep(3)  # let beat and the worker finish starting, so Ctrl-C meets them all running
        started |= descendants(process.pid)
    except SmokeFailure as failure:
        log(f"FAILED: {failure}")
        started |= descendants(process.pid) | {process.pid}
        stop(process, started)
        print_tail()
        return 1
    if not stop(process, started):
        print_tail()
        return 1
    log(f"stopped with SIGINT; none of its {len(started)} processes is left")
    remove_demo_machines()
    return 0


def remove_demo_machines() -> None:
    """`make run` leaves its demo VMs for the next start; a smoke test leaves nothing behind."""
    prefix = "hp-" + os.environ.get("PORTAL_DB_NAME", "portal").replace("_", "-") + "-"
    virsh = ["virsh", "-c", "qemu:///system"]
    try:
        names = subprocess.run([*virsh, "list", "--all", "--name"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    for name in (n.strip() for n in names.splitlines()):
        if name.startswith(prefix):
            subprocess.run([*virsh, "destroy", name], capture_output=True, timeout=60)
            subprocess.run([*virsh, "undefine", name, "--remove-all-storage"], capture_output=True, timeout=60)
            log(f"removed demo VM {name}")


def stop(process, started: set[int]) -> bool:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group. True if everything exited."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (process.poll() is None or any(alive(pid) for pid in started)):
        time.sleep(0.5)
    left = sorted(pid for pid in started if alive(pid))
    if process.poll() is None or left:
        for pid in left:
            try:
                log(f"left running: {pid} {Path(f'/proc/{pid}/cmdline').read_text().replace(chr(0), ' ')}")
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        log("FAILED: processes left after SIGINT")
        return False
    return True


def print_tail(lines: int = 80) -> None:
    text = LOG.read_text(errors="replace").splitlines() if LOG.exists() else []
    print(f"--- last {lines} lines of {LOG} ---")
    print("\n".join(text[-lines:]))


if __name__ == "__main__":
    sys.exit(main())
