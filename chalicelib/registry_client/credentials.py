"""Where a registry's credentials come from, for an upstream that is not ECR: a Secrets Manager
secret (deployed functions; JSON `{"username", "password"}`, re-read every few minutes so a
rotation is picked up), or docker's `config.json` and its credential helpers (the CLI)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from pathlib import Path

from chalicelib.kernel.aws import client as aws_client
from chalicelib.registry_client.auth import CredentialSource, anonymous

SECRET_REUSE_SECONDS = 300
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def from_secret(secret_id: str) -> CredentialSource:
    lock = threading.Lock()
    cached: list[tuple[float, tuple[str, str]]] = []

    def source() -> tuple[str, str]:
        with lock:
            if cached and time.monotonic() - cached[0][0] < SECRET_REUSE_SECONDS:
                return cached[0][1]
            value = aws_client("secretsmanager").get_secret_value(SecretId=secret_id)
            document = json.loads(value["SecretString"])
            pair = (str(document["username"]), str(document["password"]))
            cached[:] = [(time.monotonic(), pair)]
            return pair

    return source


def _config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _keys(registry: str) -> list[str]:
    host = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    keys = [host, f"https://{host}", f"http://{host}"]
    return keys + list(_HUB_KEYS) if host in _HUB_KEYS else keys


def from_docker_config(registry: str, config: Path | None = None) -> CredentialSource:
    """`auths` entries (base64 `user:password`), `credHelpers` and `credsStore` helpers
    (`docker-credential-<name> get`), as docker and skopeo read them; anonymous if none."""
    path = config or _config_path()
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return anonymous
    for key in _keys(registry):
        helper = (document.get("credHelpers") or {}).get(key)
        if helper:
            return _helper(helper, key)
        entry = (document.get("auths") or {}).get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            pair = (user, password)
            return lambda: pair
    store = document.get("credsStore")
    return _helper(store, _keys(registry)[0]) if store else anonymous


def _helper(name: str, server: str) -> CredentialSource:
    def source() -> tuple[str, str] | None:
        done = subprocess.run(
            [f"docker-credential-{name}", "get"],
            input=server,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            return None
        found = json.loads(done.stdout)
        return str(found["Username"]), str(found["Secret"])

    return source
