"""Loopback helpers for tests that start real servers (SMTP, S3, PowerDNS, the console process, ...)."""
import socket
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, what: str = "the server", seconds: float = 10) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`; RuntimeError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}")
