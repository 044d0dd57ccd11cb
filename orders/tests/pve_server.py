"""A Proxmox VE API stand-in for tests: a real HTTPS server on 127.0.0.1 (a free port, a throw-away CA)
that replays recorded responses (orders/tests/recorded/proxmox/*.json, in the shape of the PVE API:
`{"data": …}` envelopes, UPIDs, task status) for each method + path, checks the API token header like
PVE does, and records every call (method, path below /api2/json, parameters), so the module's
proxmoxer client really talks HTTP and TLS and a test asserts the exact calls made.

A recorded file holds `{"status": …, "reason": …, "body": …}`; `{name}` placeholders in it are filled
from the values the test gives (VMID, node, marks). A route replays its responses in order and then
repeats the last one (e.g. a task "running", then "stopped").

`vnc_console(ticket=, password=, port=)` makes GET …/vncwebsocket a real websocket (after the same
token check) when its `port` and `vncticket` match, behind which a VNC server speaks RFB 3.8 like
QEMU's: VNC authentication with the password, ServerInit naming the desktop `VNC_NAME`, and a 1×1
FramebufferUpdate for each full (non-incremental) update request. What the client sent after
ClientInit is in `vnc_received`.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import os
import ssl
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

RECORDED = Path(__file__).parent / "recorded" / "proxmox"
PREFIX = "/api2/json"
VNC_NAME = b"pve-test-vm"


def recorded(recording: str, **values) -> dict:
    """A recorded response with its `{placeholders}` filled in: a string that is just one placeholder
    takes the value itself (a VMID stays a number), others get it written into them."""
    def fill(node):
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            if node.startswith("{") and node.endswith("}") and node[1:-1] in values:
                return values[node[1:-1]]
            for key, value in values.items():
                node = node.replace("{" + key + "}", str(value))
        return node
    return fill(json.loads((RECORDED / f"{recording}.json").read_text()))


def _self_signed() -> tuple[str, str, str]:
    """(CA PEM, server certificate PEM, key PEM) for 127.0.0.1, made with `cryptography`. Valid from 2000
    to 2099 on purpose: OpenSSL checks against the real clock, while `now()` here may be a test's frozen
    or calendar-edge clock (CI runs the suite at 2028-02-29)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    valid_from = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    valid_until = datetime.datetime(2099, 12, 31, tzinfo=datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment (test CA)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(valid_from)
          .not_valid_after(valid_until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid_from).not_valid_after(valid_until)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


class RecordedPve:
    def __init__(self, *, token: str):
        self.token = token  # the Authorization header PVE would accept
        self.routes: dict[tuple[str, str], list[dict]] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.unexpected: list[tuple[str, str]] = []
        self.headers: list[dict] = []
        self.vnc: dict | None = None
        self.vnc_received = bytearray()
        self._lock = threading.Lock()
        self.ca_pem, cert_pem, key_pem = _self_signed()
        self._dir = tempfile.TemporaryDirectory(prefix="pve-")
        cert_file, key_file = Path(self._dir.name) / "cert.pem", Path(self._dir.name) / "key.pem"
        cert_file.write_text(cert_pem)
        key_file.write_text(key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> RecordedPve:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()

    def route(self, method: str, path: str, *responses: dict) -> None:
        """Answer `method path` (below /api2/json; `*` matches a path segment part) with `responses` in turn."""
        self.routes[(method, path)] = list(responses)

    def vnc_console(self, *, ticket: str, password: str, port: int) -> None:
        """Accept the VNC websocket for this vncproxy answer (its ticket and port) and log in with `password`."""
        self.vnc = {"ticket": ticket, "password": password, "port": str(port)}

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def _answer(self, method: str, path: str) -> dict | None:
        with self._lock:
            responses = self.routes.get((method, path))
            if responses is None:
                responses = next((queued for (m, pattern), queued in self.routes.items()
                                  if m == method and "*" in pattern and fnmatch.fnmatchcase(path, pattern)), None)
            if not responses:
                return None
            return responses.pop(0) if len(responses) > 1 else responses[0]

    def _handler(self):
        pve = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # quiet
                pass

            def _handle(self):
                url = urlsplit(self.path)
                path = unquote(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = dict(parse_qsl(url.query, keep_blank_values=True))
                params.update(parse_qsl(body, keep_blank_values=True))
                if self.headers.get("Authorization") != pve.token:
                    return self._send(recorded("unauthorized"))
                if not path.startswith(PREFIX):
                    return self._send({"status": 404, "reason": "Not Found", "body": {"data": None}})
                path = path[len(PREFIX):]
                with pve._lock:
                    pve.calls.append((self.command, path, params))
                if fnmatch.fnmatchcase(path, "/nodes/*/qemu/*/vncwebsocket") and pve.vnc is not None:
                    return self._vnc_websocket(params)
                answer = pve._answer(self.command, path)
                if answer is None:
                    with pve._lock:
                        pve.unexpected.append((self.command, path))
                    answer = {"status": 501, "reason": f"Method '{self.command} {path}' not implemented", "body": {"data": None}}
                return self._send(answer)

            def _vnc_websocket(self, params: dict):
                if (params.get("vncticket"), params.get("port")) != (pve.vnc["ticket"], pve.vnc["port"]):
                    return self._send({"status": 401, "reason": "permission denied - invalid vnc ticket", "body": {"data": None}})
                websocket = _ServerWebSocket()
                websocket.accept(self.connection, self.headers)
                self.close_connection = True
                try:
                    _serve_vnc(websocket, pve.vnc["password"], pve.vnc_received)
                finally:
                    if websocket.socket is not None:  # not already closed by the client's close
                        websocket.close()

            def _send(self, answer: dict):
                payload = json.dumps(answer.get("body", {"data": None})).encode()
                self.send_response(answer.get("status", 200), answer.get("reason"))
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler


def _server_websocket_class():
    from websockify.websocket import WebSocket

    class ServerWebSocket(WebSocket):
        def select_subprotocol(self, protocols):
            return "binary" if "binary" in [protocol.strip() for protocol in protocols] else ""

    return ServerWebSocket


_ServerWebSocket = _server_websocket_class()


def _serve_vnc(websocket, password: str, received: bytearray) -> None:
    """QEMU's VNC server as far as a console needs: RFB 3.8, VNC authentication, ServerInit."""
    from websockify.websocket import WebSocketWantReadError

    from orders.provisioning import ModuleError
    from orders.provisioning.vnc import exact_reader, vnc_auth_response

    def message() -> bytes:
        while True:
            try:
                return websocket.recvmsg() or b""  # None: closed
            except WebSocketWantReadError:
                continue

    read, _rest = exact_reader(message)

    try:
        websocket.sendmsg(b"RFB 003.008\n")
        if read(12) != b"RFB 003.008\n":
            return
        websocket.sendmsg(bytes([1, 2]))  # VNC authentication only
        if read(1) != b"\x02":
            return
        challenge = os.urandom(16)
        websocket.sendmsg(challenge)
        if read(16) != vnc_auth_response(password, challenge):
            reason = b"Authentication failed"
            websocket.sendmsg(struct.pack(">II", 1, len(reason)) + reason)
            return
        websocket.sendmsg(struct.pack(">I", 0))
        read(1)  # ClientInit (shared flag)
        pixel_format = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        websocket.sendmsg(struct.pack(">HH", 640, 480) + pixel_format + struct.pack(">I", len(VNC_NAME)) + VNC_NAME)
        sizes = {0: 20, 2: 4, 3: 10, 4: 8, 5: 6}  # SetPixelFormat, SetEncodings (+4 per encoding), requests, key, pointer
        while True:
            kind = read(1)
            body = read(sizes[kind[0]] - 1) if kind[0] in sizes else b""
            if kind[0] == 2:
                body += read(4 * struct.unpack(">xH", body[:3])[0])
            elif kind[0] == 6:  # ClientCutText
                body = read(7)
                body += read(struct.unpack(">3xI", body)[0])
            received.extend(kind + body)
            if kind[0] == 3 and body[0] == 0:  # a full update request: one black pixel, raw
                websocket.sendmsg(struct.pack(">BxHHHHHi", 0, 1, 0, 0, 1, 1, 0) + bytes(4))
    except ModuleError:  # the client went away
        return
