"""The CNCF distribution registry (Debian's `docker-registry`) for the tests: started on a free
port with a temporary config, anonymous or behind Basic auth (htpasswd); and a small token
server of our own that puts the registry token flow (`Bearer realm,service,scope`) in front of
it, as Docker Hub, GHCR and Quay do."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DISTRIBUTION = "/usr/bin/docker-registry"
USER, PASSWORD = "mirror", "mirror-secret"
# bcrypt of PASSWORD (distribution's htpasswd accepts bcrypt only).
PASSWORD_BCRYPT = "$2b$04$xaLDLovjUqN/Qd3WJdbg5OnQfmQsZTLjRlfBqNh06uFbnTeBV2e.y"


def available() -> str | None:
    """Why the distribution registry cannot run here, or None."""
    if not Path(DISTRIBUTION).exists() and shutil.which("docker-registry") is None:
        return "docker-registry (CNCF distribution) is not installed: apt install docker-registry"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def distribution(scratch: Path, *, basic: bool = False) -> Iterator[str]:
    """A running registry; yields its URL (`http://127.0.0.1:<port>`)."""
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = ""
    if basic:
        htpasswd = scratch / "htpasswd"
        htpasswd.write_text(f"{USER}:{PASSWORD_BCRYPT}\n")
        auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
    config = scratch / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {scratch / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    server = subprocess.Popen(
        [DISTRIBUTION, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


class TokenFront:
    """A registry front that only takes `Authorization: Bearer <token>`, and the realm that
    issues those tokens for Basic credentials; every other request is passed to `backend`."""

    def __init__(self, backend: str) -> None:
        self.backend = urlsplit(backend).netloc
        self.tokens: dict[str, list[str]] = {}  # token → scopes it was issued for
        self.issued = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                # A request body this front does not pass on is read off the connection first,
                # and a HEAD answer has no body: either would be taken for the next message on a
                # kept-alive connection.
                unread = int(self.headers.get("Content-Length") or 0)
                while unread > 0:
                    piece = self.rfile.read(min(unread, 1 << 20))
                    if not piece:
                        break
                    unread -= len(piece)
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _token(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {basic}":
                    self._answer(401, b'{"details":"bad credentials"}', {})
                    return
                token = secrets.token_hex(16)
                front.tokens[token] = query.get("scope", [])
                front.issued += 1
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self._answer(200, body, {"Content-Type": "application/json"})

            def _proxy(self) -> None:
                if self.path.startswith("/token"):
                    self._token()
                    return
                auth = self.headers.get("Authorization", "")
                if auth.removeprefix("Bearer ") not in front.tokens:
                    host = self.headers["Host"]
                    challenge = f'Bearer realm="http://{host}/token",service="test-registry"'
                    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}'
                    self._answer(401, body, {"WWW-Authenticate": challenge})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                upstream = http.client.HTTPConnection(front.backend, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
                upstream.putrequest(self.command, self.path, skip_host=True)
                for k, v in headers.items():
                    upstream.putheader(k, v)
                upstream.endheaders()
                left = length
                while left > 0:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        break
                    upstream.send(piece)
                    left -= len(piece)
                response = upstream.getresponse()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(k, v)
                if response.getheader("Content-Length") is None:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if self.command != "HEAD":
                    while piece := response.read(1 << 20):
                        self.wfile.write(piece)
                upstream.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenFront:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
