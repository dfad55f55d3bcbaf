"""`GET /v1/token` and `/v1/token/iam`: authenticate -> decide -> vend -> audit (a structured log
line and a metric, never the token)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from chalicelib.ecr.access import Scope
from chalicelib.ecr.errors import RegistryError, Throttled
from chalicelib.kernel.observability import count, flushes_metrics, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy import PolicyError, current_policy
from chalicelib.tokens import sts
from chalicelib.tokens.authn import JwksUnavailable, caller_from_bearer, caller_from_iam
from chalicelib.tokens.grants import BadRequest, Unauthenticated, decide, parse_request
from chalicelib.tokens.vend import VendedCredential, utc_now, vendor_for


def _error(status: int, error: str, message: str, **extra: Any) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ecr-steward"'
    if status in (429, 503):
        headers["Retry-After"] = "5"
    return {
        "status_code": status,
        "headers": headers,
        "body": {"error": error, "message": message, **extra},
    }


@flushes_metrics
def token_response(
    request: Any, *, via: Literal["bearer", "iam"], now: datetime | None = None
) -> dict[str, Any]:
    """The whole of `GET /v1/token` (and `/v1/token/iam`) for a Chalice request: the keyword
    arguments of a Chalice Response. Every outcome is logged, never the credential."""

    return _token_response(
        request.query_params or {},
        request.headers,
        request.context,
        via=via,
        now=now or utc_now(),
    )


def _token_response(
    query: Mapping[str, str],
    headers: Mapping[str, str],
    context: Mapping[str, Any] | None,
    *,
    via: Literal["bearer", "iam"],
    now: datetime,
) -> dict[str, Any]:

    log = logger()
    try:
        request = parse_request(query, get_settings().region)
    except BadRequest as error:
        return _error(400, "bad_request", str(error))
    try:
        settings = current_policy().policy.tokens
    except PolicyError as error:
        return _error(503, "policy_invalid", f"the service's policy is invalid: {error.source}")
    try:
        if via == "iam":
            caller = caller_from_iam(context)
        else:
            caller = caller_from_bearer(
                headers.get("authorization"), settings, local=not get_settings().deployed
            )
    except Unauthenticated as error:
        log.warning("token refused", extra={"status": 401, "reason": str(error)})
        count("TokensUnauthenticated")
        return _error(401, "unauthenticated", str(error))
    except JwksUnavailable as error:
        return _error(503, "unavailable", str(error))

    decision = decide(caller, request, settings.grants)
    if not decision.granted or decision.scope is None:
        log.warning(
            "token refused",
            extra={
                "status": 403,
                "caller": caller.id,
                "check": decision.check,
                "reason": decision.reason,
            },
        )
        count("TokensForbidden")
        return _error(403, "forbidden", decision.reason, check=decision.check)

    scope = decision.scope
    vendor = vendor_for(settings, request.account)
    try:
        vended = vendor.credential(scope, now)
    except (sts.StsError, RegistryError) as error:
        throttled = isinstance(error, sts.StsThrottled | Throttled)
        log.error(
            "token vending failed",
            extra={"caller": caller.id, "grant": scope.grant, "code": error.code},
        )
        if throttled:
            count("TokensThrottled")
            return _error(429, "throttled", f"AWS is throttling credential requests ({error.code})")
        count("TokensUnavailable")
        if error.transient:
            return _error(503, "unavailable", f"AWS is unavailable ({error.code})")
        return _error(503, "unavailable", f"AWS refused the vending role ({error.code})")

    credential = vended.credential
    log.info(
        "token vended",
        extra={
            "caller": caller.id,
            "grant": scope.grant,
            "scope": scope.model_dump(mode="json"),
            "expires_at": credential.expires_at.isoformat(),
            "cached": vended.cached,
        },
    )
    count("TokensVended")
    count("TokenCacheHits" if vended.cached else "TokenCacheMisses")
    return {
        "status_code": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": render(credential, scope, request.format),
    }


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
