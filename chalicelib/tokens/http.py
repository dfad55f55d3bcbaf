"""`GET /v1/token` and `/v1/token/iam`: authenticate -> decide -> vend -> audit (a structured log
line and a metric, never the token)."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.ecr.access import Scope
from chalicelib.ecr.errors import RegistryError, Throttled
from chalicelib.kernel.errors import shown
from chalicelib.kernel.observability import count, flush_metrics, logger, metrics
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import PolicyError, current_policy
from chalicelib.tokens import sts
from chalicelib.tokens.api import Via, authenticate, error_response
from chalicelib.tokens.grants import BadRequest, decide, parse_request
from chalicelib.tokens.vend import VendedCredential, source_identity, utc_now, vendor_for


class _CacheHits:
    """Cache hits are most requests, and an EMF line for each cost a third of a cached request:
    they are added up here and counted (TokensVended) by the first request at least a second
    after the last count, or by any request that counts something else."""

    def __init__(self) -> None:
        self.pending = 0
        self.counted_at = time.monotonic()
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.pending += 1
            if time.monotonic() - self.counted_at < 1.0:
                return
        self.drain()

    def drain(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, 0
            self.counted_at = time.monotonic()
        if pending:
            count("TokensVended", pending)


_HITS = _CacheHits()


def token_response(request: Any, *, via: Via, now: datetime | None = None) -> dict[str, Any]:
    """The whole of `GET /v1/token` (and `/v1/token/iam`) for a Chalice request: the keyword
    arguments of a Chalice Response. Every outcome is logged, never the credential. Metrics
    are written as one EMF line when the request counted any (see `_CacheHits`)."""

    try:
        return _token_response(
            request.query_params or {},
            request.headers,
            request.context,
            via=via,
            now=now or utc_now(),
        )
    finally:
        if metrics().metric_set:
            _HITS.drain()
            flush_metrics()


def _token_response(
    query: Mapping[str, str],
    headers: Mapping[str, str],
    context: Mapping[str, Any] | None,
    *,
    via: Via,
    now: datetime,
) -> dict[str, Any]:

    log = logger()
    try:
        settings = current_policy().policy.tokens
    except PolicyError:
        return error_response(503, "policy_invalid", "the service's policy is invalid")
    caller = authenticate(headers, context, settings, via=via, route="token")
    if isinstance(caller, dict):
        return caller
    request_id = str((context or {}).get("requestId") or "")
    try:
        request = parse_request(query, get_settings().region)
    except BadRequest as error:
        return error_response(400, "bad_request", str(error))

    decision = decide(caller, request, settings.grants)
    if not decision.granted or decision.scope is None:
        log.warning(
            "token refused",
            extra={
                "status": 403,
                "caller": caller.id,
                "request_id": request_id,
                "check": decision.check,
                "reason": decision.reason[:300],
            },
        )
        count("TokensForbidden")
        return error_response(403, "forbidden", decision.reason, check=decision.check)

    scope = decision.scope
    vendor = vendor_for(settings, request.account, request.partition)
    if vendor.partition != scope.partition:
        count("TokensForbidden")
        return error_response(
            403,
            "forbidden",
            f"registry {request.host} is in partition {scope.partition}, the vending role in "
            f"{vendor.partition}",
            check="registry",
        )
    identity = source_identity(caller.id)
    try:
        vended = vendor.credential(scope, now, source_identity=identity)
    except (sts.StsError, RegistryError) as error:
        throttled = isinstance(error, sts.StsThrottled | Throttled)
        log.error(
            "token vending failed",
            extra={"caller": caller.id, "grant": scope.grant, "code": shown(error.code)},
        )
        if throttled:
            count("TokensThrottled")
            return error_response(
                429, "throttled", f"AWS is throttling credential requests ({error.code})"
            )
        count("TokensUnavailable")
        if error.transient:
            return error_response(503, "unavailable", f"AWS is unavailable ({error.code})")
        return error_response(503, "unavailable", f"AWS refused the vending role ({error.code})")

    credential = vended.credential
    # The audit record: who (caller, as CloudTrail's SourceIdentity names them) got what scope.
    if log.log_level <= logging.INFO:  # its fields cost a tenth of a cached request to build
        log.info(
            "token vended",
            extra={
                "caller": caller.id,
                "caller_kind": caller.kind,
                "source_identity": identity,
                "request_id": request_id,
                "grant": scope.grant,
                "scope": scope.model_dump(mode="json"),
                "expires_at": credential.expires_at.isoformat(),
                "cached": vended.cached,
            },
        )
    if vended.cached:
        _HITS.add()
    else:
        count("TokensVended")
        count("TokenCacheMisses")
    return {
        "status_code": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": _rendered(credential, scope, request.format),
    }


_RENDERED: OrderedDict[tuple[int, Scope, str], tuple[VendedCredential, dict[str, Any]]] = (
    OrderedDict()
)
_RENDERED_LOCK = threading.Lock()


def _rendered(credential: VendedCredential, scope: Scope, output: str) -> dict[str, Any]:
    """`render`, once per credential (held by the entry, so its id is not reused) and format:
    a cached credential's answer does not change until the credential does."""
    key = (id(credential), scope, output)
    with _RENDERED_LOCK:
        hit = _RENDERED.get(key)
    if hit is not None and hit[0] is credential:
        return hit[1]
    body = render(credential, scope, output)
    with _RENDERED_LOCK:
        _RENDERED[key] = (credential, body)
        while len(_RENDERED) > 1024:
            _RENDERED.popitem(last=False)
    return body


def render(credential: VendedCredential, scope: Scope, output: str) -> dict[str, Any]:
    """The response body in the requested format."""
    password = credential.password.get_secret_value()
    expires = credential.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    host = credential.proxy_endpoint.removeprefix("https://")
    if output == "docker-config":
        auth = base64.b64encode(f"{credential.username}:{password}".encode()).decode()
        return {"auths": {host: {"auth": auth}}, "expiresAt": expires}
    body: dict[str, Any] = {
        "username": credential.username,
        "password": password,
        "proxyEndpoint": credential.proxy_endpoint,
        "expiresAt": expires,
        "registry": host,
        "scope": {
            "grant": scope.grant,
            "registry": scope.account,
            "region": scope.region,
            "repositories": list(scope.repositories),
            "access": scope.access,
        },
    }
    if output == "login":
        # The password goes to docker on stdin, never on a command line.
        body["command"] = (
            f"docker login --username {credential.username} --password-stdin "
            f"{credential.proxy_endpoint}"
        )
    return body
