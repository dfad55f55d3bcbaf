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

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any, TextIO


class TokenApiError(Exception):
    """The API refused or failed; `status` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, message: str, check: str | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.check = check


class UnsafeUrl(ValueError):
    pass


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(url: str) -> str:
    """The API URL if it is HTTPS (or plain HTTP to this machine); a bearer token must never
    cross the network in clear."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _loopback(parts.hostname):
        return url
    raise UnsafeUrl(
        f"the token API URL must be https:// (http:// only to loopback), not {url[:100]!r}"
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _CredentialSafeRedirects(urllib.request.HTTPRedirectHandler):
    """urllib copies every header, `Authorization` included, onto a redirect: to another host
    (or scheme, or port) it goes without it, and never from HTTPS to plain HTTP off loopback."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        try:
            check_api_url(newurl)
        except UnsafeUrl:
            raise urllib.error.HTTPError(
                newurl, code, "refused a redirect to a non-HTTPS URL", headers, fp
            ) from None
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
                new.unredirected_hdrs.pop(name, None)
        return new


_OPENER = urllib.request.build_opener(_CredentialSafeRedirects())


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
        with _OPENER.open(request, timeout=10) as response:
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
    try:
        check_api_url(api_url)
    except UnsafeUrl as error:
        raise TokenApiError(0, str(error)) from None
    query = {"registry": registry, "access": access, "format": output}
    if repository:
        query["repository"] = repository
    url = f"{api_url.rstrip('/')}/v1/token?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {bearer}"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
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
    write_private(_state_file(), json.dumps(servers, indent=2, sort_keys=True))


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


class ConfigUnreadable(Exception):
    pass


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only from the first byte:
    mkstemp creates the file 0600 under an unpredictable name in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def merge_docker_config(path: Path, fragment: dict[str, Any]) -> None:
    """Add the `auths` fragment to docker's config.json, keeping everything else in it. A
    config that cannot be read is left alone (ConfigUnreadable): replacing it would drop its
    credsStore, credHelpers and every other key."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = "{}"
    except OSError as error:
        raise ConfigUnreadable(f"cannot read {path}: {error.strerror or error}") from None
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise ConfigUnreadable(
            f"{path} is not valid JSON ({error}); fix or move it, it was not changed"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("auths", {}), dict):
        raise ConfigUnreadable(f"{path} is not a docker config object; it was not changed")
    config.setdefault("auths", {}).update(fragment["auths"])
    write_private(path, json.dumps(config, indent=2))


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
