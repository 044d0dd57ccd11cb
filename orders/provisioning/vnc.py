"""The start of RFB 3.8 (the VNC protocol, RFC 6143 §7.1–7.2), for a console whose VNC server the
console process logs into itself (Proxmox VE: the password exists only once the browser connects).

`rfb_login` is the client side towards the VM's VNC server (VNC authentication with the password);
`rfb_greet` is the server side towards the browser, offering security type None: the browser's
websocket is already authorised by its one-time console token. After both, the two streams are
joined byte for byte (ClientInit, ServerInit and everything after them pass through unchanged);
`websocket_console` does this for a VNC server reached as a websocket.
"""
from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

from .base import ModuleError

VERSION = b"RFB 003.008\n"
NONE, VNC_AUTH = 1, 2

Read = Callable[[int], bytes]  # exactly n bytes, or ModuleError
Write = Callable[[bytes], None]


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """DES-encrypt the 16-byte challenge with the password (8 bytes, zero-padded) as the key, each key
    byte's bits reversed as VNC does (RFC 6143 §7.2.2). Triple DES with the key three times is DES."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = bytes(int(f"{byte:08b}"[::-1], 2) for byte in password.encode("latin-1", "replace")[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def _reason(read: Read) -> str:
    (length,) = struct.unpack(">I", read(4))
    return read(min(length, 1024)).decode("latin-1")


def rfb_login(read: Read, write: Write, password: str) -> None:
    """Log into a VNC server as an RFB 3.8 client (VNC authentication, or none if that is all it offers)."""
    version = read(12)
    if not version.startswith(b"RFB 003.") or version < VERSION:
        raise ModuleError(f"The VNC server speaks {version[:12]!r}, not RFB 3.8.")
    write(VERSION)
    (count,) = read(1)
    if count == 0:
        raise ModuleError(f"The VNC server refused the connection: {_reason(read)}")
    offered = read(count)
    chosen = VNC_AUTH if VNC_AUTH in offered else NONE if NONE in offered else None
    if chosen is None:
        raise ModuleError(f"The VNC server offers no supported security type ({list(offered)}).")
    write(bytes([chosen]))
    if chosen == VNC_AUTH:
        write(vnc_auth_response(password, read(16)))
    (result,) = struct.unpack(">I", read(4))
    if result != 0:
        raise ModuleError(f"The VNC server refused the password: {_reason(read)}")


def rfb_greet(read: Read, write: Write) -> None:
    """Be the VNC server towards the browser up to SecurityResult: RFB 3.8, security type None."""
    write(VERSION)
    if read(12) != VERSION:
        raise ModuleError("The browser does not speak RFB 3.8.")
    write(bytes([1, NONE]))
    if read(1) != bytes([NONE]):
        raise ModuleError("The browser chose a security type that was not offered.")
    write(struct.pack(">I", 0))


def exact_reader(receive: Callable[[], bytes]) -> tuple[Read, Callable[[], bytes]]:
    """`read(n)` over a source of chunks (websocket messages, socket reads) that RFB does not align
    with, and `rest()`: what was received beyond the last read."""
    buffer = bytearray()

    def read(n: int) -> bytes:
        while len(buffer) < n:
            chunk = receive()
            if not chunk:
                raise ModuleError("The connection closed during the VNC handshake.")
            buffer.extend(chunk)
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def rest() -> bytes:
        data = bytes(buffer)
        buffer.clear()
        return data

    return read, rest


def websocket_console(connection, password: str, *, timeout: float) -> socket.socket:
    """Log into the VNC server behind an open `websockets` client connection, then return a socket for
    the console process: it speaks RFB to the browser from the start (`rfb_greet`) and then carries the
    VNC stream both ways, in two daemon threads, until either side closes."""
    from websockets.exceptions import ConnectionClosed

    def message() -> bytes:
        while not (data := connection.recv(timeout=timeout)):  # an empty message is not the end
            pass
        return data.encode() if isinstance(data, str) else data

    read, rest = exact_reader(message)
    try:
        rfb_login(read, connection.send, password)
    except (ConnectionClosed, TimeoutError, OSError) as error:
        connection.close()
        raise ModuleError(f"The VNC websocket failed during login: {type(error).__name__}.") from None
    except ModuleError:
        connection.close()
        raise
    relay_side, ours = socket.socketpair()

    def browser_to_server():
        try:
            while data := ours.recv(65536):
                connection.send(data)
        except (ConnectionClosed, OSError):
            pass
        finally:
            connection.close()

    def server_to_browser():
        try:
            greet_read, greet_rest = exact_reader(lambda: ours.recv(4096))
            rfb_greet(greet_read, ours.sendall)
            if early := greet_rest():  # a browser that did not wait for SecurityResult
                connection.send(early)
            threading.Thread(target=browser_to_server, daemon=True).start()
            ours.sendall(rest())
            for data in connection:
                ours.sendall(data.encode() if isinstance(data, str) else data)
        except (ModuleError, ConnectionClosed, OSError):
            pass
        finally:
            connection.close()
            # Wakes browser_to_server; the console process sees the target close and ends the browser's websocket.
            with contextlib.suppress(OSError):
                ours.shutdown(socket.SHUT_RDWR)
            ours.close()

    threading.Thread(target=server_to_browser, daemon=True).start()
    return relay_side
