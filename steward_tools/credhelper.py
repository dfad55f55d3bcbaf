"""The client side of the token API: `steward login` and `docker-credential-steward`.

Standard library only, so the credential helper starts quickly: docker runs it once per pull.
Never packaged into a function (the packager leaves it out with the CLI).

Configuration (environment):
- `STEWARD_API_URL`: the API's base URL (`https://….execute-api….amazonaws.com/api`).
- the caller's JWT: `STEWARD_TOKEN`, or a file named by `STEWARD_TOKEN_FILE` (a Kubernetes
  projected service-account token), or, inside GitHub Actions with `id-token: write`, fetched
  from the runner with audience `STEWARD_AUDIENCE` (default `ecr-steward`).
- `STEWARD_ACCESS`: `pull` (default) or `push`, what the credential helper asks for.
- `STEWARD_LOCAL_REGISTRY`: in local mode, the embedded registry's address (`127.0.0.1:5000`);
  a credential for it is the default account's (`STEWARD_LOCAL_ACCOUNT`, 123456789012), which
  the embedded registry accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO


class TokenApiError(Exception):
    """The API refused or failed; `status` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, message: str, check: str | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.check = check


def caller_token(environ: dict[str, str] | None = None) -> str:
    """The JWT (or local static key) this client presents."""
    env = os.environ if environ is None else environ
    if env.get("STEWARD_TOKEN"):
        return env["STEWARD_TOKEN"].strip()
    if env.get("STEWARD_TOKEN_FILE"):
        return Path(env["STEWARD_TOKEN_FILE"]).read_text().strip()
    request_url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if request_url and request_token:
        audience = urllib.parse.quote(env.get("STEWARD_AUDIENCE", "ecr-steward"))
        request = urllib.request.Request(
            f"{request_url}&audience={audience}",
            headers={"Authorization": f"Bearer {request_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["value"])
    raise TokenApiError(0, "no caller token: set STEWARD_TOKEN or STEWARD_TOKEN_FILE")


def fetch_token(
    api_url: str,
    registry: str,
    *,
    access: str = "pull",
    repository: str | None = None,
    output: str = "json",
    bearer: str,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """GET /v1/token; the parsed JSON body, or TokenApiError with the API's message."""
    query = {"registry": registry, "access": access, "format": output}
    if repository:
        query["repository"] = repository
    url = f"{api_url.rstrip('/')}/v1/token?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as error:
        try:
            detail = json.load(error)
        except ValueError:
            detail = {}
        raise TokenApiError(
            error.code, detail.get("message") or error.reason, detail.get("check")
        ) from None
    except (urllib.error.URLError, OSError) as error:
        raise TokenApiError(0, f"cannot reach {api_url}: {error}") from None


def registry_host(server_url: str) -> str:
    """`https://123….dkr.ecr.us-east-1.amazonaws.com/v2/` → the bare host."""
    text = server_url.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc
    return text.split("/")[0]


LOCAL_ACCOUNT = "123456789012"


def api_registry(server: str, environ: dict[str, str] | None = None) -> str:
    """What to ask the token API for: the server's host, or for the local embedded registry
    (which answers for the default account), that account."""
    env = os.environ if environ is None else environ
    host = registry_host(server)
    local = env.get("STEWARD_LOCAL_REGISTRY")
    if local and host == registry_host(local):
        return env.get("STEWARD_LOCAL_ACCOUNT") or LOCAL_ACCOUNT
    return host


def for_local_registry(body: dict[str, Any], local: str) -> dict[str, Any]:
    """A token API answer re-pointed at the local registry (plain HTTP on loopback)."""
    host = registry_host(local)
    out = dict(body)
    if "auths" in out:
        out["auths"] = {host: next(iter(out["auths"].values()))}
    if "proxyEndpoint" in out:
        out["proxyEndpoint"] = f"http://{host}"
        out["registry"] = host
    return out


# --- docker-credential-steward -----------------------------------------------------------------


def _state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecr-steward" / "credential-helper.json"


def _servers() -> dict[str, str]:
    try:
        servers: dict[str, str] = json.loads(_state_file().read_text())
        return servers
    except (OSError, ValueError):
        return {}


def _save_servers(servers: dict[str, str]) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(servers, indent=2, sort_keys=True))


def credential_helper(
    argv: list[str], stdin: TextIO, stdout: TextIO, environ: dict[str, str] | None = None
) -> int:
    """docker's credential-helper protocol. `get` asks the API for a fresh credential; the
    secret is never written to disk. `store` and `erase` only keep the list of servers that
    `list` reports (usernames only), because credentials come from the API, not from storage."""
    env = dict(os.environ if environ is None else environ)
    action = argv[0] if argv else ""
    if action == "get":
        server = stdin.read().strip()
        api_url = env.get("STEWARD_API_URL")
        if not api_url:
            stdout.write("STEWARD_API_URL is not set\n")
            return 1
        try:
            body = fetch_token(
                api_url,
                api_registry(server, env),
                access=env.get("STEWARD_ACCESS", "pull"),
                bearer=caller_token(env),
            )
        except TokenApiError as error:
            # docker shows the helper's stdout as the error.
            stdout.write(f"ecr-steward: {error}\n")
            return 1
        servers = _servers()
        servers[server] = body["username"]
        _save_servers(servers)
        json.dump(
            {"ServerURL": server, "Username": body["username"], "Secret": body["password"]}, stdout
        )
        return 0
    if action == "store":
        payload = json.loads(stdin.read() or "{}")
        servers = _servers()
        servers[payload.get("ServerURL", "")] = payload.get("Username", "AWS")
        _save_servers(servers)
        return 0
    if action == "erase":
        server = stdin.read().strip()
        servers = _servers()
        servers.pop(server, None)
        _save_servers(servers)
        return 0
    if action == "list":
        json.dump(_servers(), stdout)
        return 0
    stdout.write(f"unknown action {action!r}: expected get, store, erase or list\n")
    return 1


def docker_credential_main() -> None:
    """The `docker-credential-steward` console script."""
    sys.exit(credential_helper(sys.argv[1:], sys.stdin, sys.stdout))


# --- steward login -------------------------------------------------------------------------------


def merge_docker_config(path: Path, fragment: dict[str, Any]) -> None:
    """Add the `auths` fragment to docker's config.json, keeping everything else in it."""
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        config = {}
    config.setdefault("auths", {}).update(fragment["auths"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(config, indent=2))
    temporary.chmod(0o600)
    temporary.replace(path)


def docker_login(body: dict[str, Any], docker: str = "docker") -> int:
    """Pipe the password into `docker login --password-stdin`: it never reaches a command line."""

    result = subprocess.run(
        [
            docker,
            "login",
            "--username",
            body["username"],
            "--password-stdin",
            body["proxyEndpoint"],
        ],
        input=body["password"],
        text=True,
        check=False,
    )
    return result.returncode
