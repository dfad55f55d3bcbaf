"""Issue 12, findings 4 and 5: what `docker-credential-steward` and `steward login` send and
write. Local HTTP servers stand in for the token API and for a host it redirects to."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from steward_tools import credhelper
from steward_tools.credhelper import (
    ConfigUnreadable,
    TokenApiError,
    check_api_url,
    credential_helper,
    fetch_token,
    merge_docker_config,
)

BODY = {"username": "AWS", "password": "secret", "proxyEndpoint": "https://h", "expiresAt": "x"}


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    redirect_to: str | None = None

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        body = json.dumps(BODY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def redirecting() -> Iterator[tuple[str, list[dict[str, str]], list[dict[str, str]]]]:
    """An API on one port that redirects to another origin (another port of 127.0.0.1)."""

    class Target(_Recorder):
        seen: list[dict[str, str]] = []

    target = serve(Target)

    class Api(_Recorder):
        seen: list[dict[str, str]] = []
        redirect_to = f"http://localhost:{target.server_port}"

    api = serve(Api)
    yield f"http://127.0.0.1:{api.server_port}", Api.seen, Target.seen
    for server in (api, target):
        server.shutdown()
        server.server_close()


def test_the_bearer_token_never_follows_a_redirect_to_another_host(redirecting) -> None:
    api_url, at_api, at_target = redirecting
    body = fetch_token(api_url, "123456789012", bearer="the-callers-jwt")
    assert body["password"] == "secret"
    assert at_api[0]["Authorization"] == "Bearer the-callers-jwt"
    assert len(at_target) == 1
    assert "Authorization" not in at_target[0]


def test_plain_http_is_refused_except_to_loopback(tmp_path: Path) -> None:
    for url in ("http://api.example.com", "http://10.0.0.1:8000", "ftp://x", "api.example.com"):
        with pytest.raises(TokenApiError, match="https://"):
            fetch_token(url, "123456789012", bearer="t")
    for url in ("https://api.example.com/api", "http://127.0.0.1:8000", "http://[::1]:8000"):
        assert check_api_url(url) == url

    out = StringIO()
    env = {"STEWARD_API_URL": "http://api.example.com", "STEWARD_TOKEN": "t"}
    env["XDG_STATE_HOME"] = str(tmp_path)
    status = credential_helper(["get"], StringIO("https://h"), out, env)
    assert status == 1
    assert "https://" in out.getvalue()


def test_docker_config_is_private_from_the_first_byte(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credsStore": "desktop", "auths": {"other": {}}}))
    modes: list[int] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        modes.append(stat.S_IMODE(os.fstat(descriptor).st_mode))  # before any rename
        real_fsync(descriptor)

    monkeypatch.setattr(credhelper.os, "fsync", fsync)
    previous = os.umask(0o022)
    try:
        merge_docker_config(config, {"auths": {"h": {"auth": "c2VjcmV0"}}})
    finally:
        os.umask(previous)
    assert modes == [0o600]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    written = json.loads(config.read_text())
    assert written["credsStore"] == "desktop"
    assert set(written["auths"]) == {"other", "h"}
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.json"]  # no temp left


def test_an_unparseable_docker_config_is_refused_not_replaced(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    original = '{"credsStore": "desktop", "auths": {'  # truncated by an editor
    config.write_text(original)
    with pytest.raises(ConfigUnreadable, match="not valid JSON"):
        merge_docker_config(config, {"auths": {"h": {"auth": "c2VjcmV0"}}})
    assert config.read_text() == original
    config.write_text("[1, 2]")
    with pytest.raises(ConfigUnreadable, match="not a docker config"):
        merge_docker_config(config, {"auths": {"h": {"auth": "c2VjcmV0"}}})
