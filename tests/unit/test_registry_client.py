"""The registry client against a small fake registry on loopback: the bearer challenge answered
with a token fetched once per scope, 429 retried after `Retry-After`, tag pages followed, and
Authorization never sent to a redirect's other host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.registry_client.auth import basic
from chalicelib.registry_client.blobs import open_blob
from chalicelib.registry_client.tags import iter_tags
from chalicelib.registry_client.transport import Endpoint, RegistryClient, stream_chunks


class Fake:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.tokens = 0
        self.throttled = False


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    state = Fake()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            state.seen.append((self.path, auth))
            host = self.headers["Host"]
            if self.path.startswith("/token"):
                assert auth and auth.startswith("Basic ")
                state.tokens += 1
                self.answer(200, json.dumps({"token": "t1", "expires_in": 300}).encode())
            elif self.path.startswith("/elsewhere"):
                self.answer(200, b"blob-bytes")
            elif auth != "Bearer t1":
                challenge = f'Bearer realm="http://{host}/token",service="fake"'
                self.answer(401, b"{}", WWW_Authenticate=challenge)
            elif self.path.startswith("/v2/app/tags/list") and not state.throttled:
                state.throttled = True
                self.answer(429, b"{}", Retry_After="0")
            elif self.path == "/v2/app/tags/list?n=1000":
                body = json.dumps({"tags": ["a", "b"]}).encode()
                self.answer(200, body, Link='</v2/app/tags/list?n=2&last=b>; rel="next"')
            elif self.path == "/v2/app/tags/list?n=2&last=b":
                self.answer(200, json.dumps({"tags": ["c"]}).encode())
            elif self.path.startswith("/v2/app/blobs/"):
                other = f"http://localhost:{port}/elsewhere"
                self.answer(307, Location=other)
            else:
                self.answer(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bearer_flow_backoff_and_paging(fake) -> None:
    state, url = fake
    slept: list[float] = []
    paced: list[str] = []
    throttled: list[str] = []
    client = RegistryClient(
        Endpoint(url=url, credentials=basic("u", "p")),
        sleep=slept.append,
        pace=paced.append,
        throttled=throttled.append,
    )

    assert list(iter_tags(client, "app")) == ["a", "b", "c"]
    assert list(iter_tags(client, "app")) == ["a", "b", "c"]

    assert state.tokens == 1  # one token for the scope, reused
    assert slept == [0.0]  # the 429's Retry-After
    assert throttled == ["list_images"]  # reported under the API operation it stands for
    # Every request sent waits for its token, the retried one again.
    assert paced == ["list_images"] * (len(state.seen) - state.tokens)


def test_authorization_stays_with_the_registry_on_redirect(fake) -> None:
    state, url = fake
    client = RegistryClient(Endpoint(url=url, credentials=basic("u", "p")))

    response = open_blob(client, "app", "sha256:" + "0" * 64)

    assert b"".join(stream_chunks(response, 4)) == b"blob-bytes"
    [(_, auth)] = [s for s in state.seen if s[0] == "/elsewhere"]
    assert auth is None
