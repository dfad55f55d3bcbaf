"""What every HTTP route of the API shares: one error shape, RFC 6750 challenges, rate limits
per instance, per source address and per caller, and authentication, which comes before any
other check so that an unauthenticated caller learns nothing about the API's rules."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from chalicelib.kernel import aws
from chalicelib.kernel.errors import shown
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.ratelimit import KeyedBuckets, TokenBucket, retry_after
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.tokens import RateLimits, TokenSettings
from chalicelib.tokens.authn import JwksUnavailable, caller_from_bearer, caller_from_iam
from chalicelib.tokens.grants import Caller, Unauthenticated

Via = Literal["bearer", "iam"]

REALM = 'Bearer realm="ecr-steward"'
# RFC 6750 section 3.1: the error code each status carries in its challenge.
RFC6750_CODES = {400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope"}


def error_response(
    status: int,
    error: str,
    message: str,
    *,
    presented: bool = True,
    retry_seconds: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The keyword arguments of a Chalice Response: `{"error", "message", …}` on every route.
    `message` must hold no more caller input than `shown` lets through."""
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status in RFC6750_CODES:
        # A request without credentials gets the bare challenge (RFC 6750 section 3.1).
        code = RFC6750_CODES[status]
        headers["WWW-Authenticate"] = (
            REALM if status == 401 and not presented else f'{REALM}, error="{code}"'
        )
    if status in (429, 503):
        headers["Retry-After"] = retry_after(retry_seconds if retry_seconds is not None else 5)
    return {
        "status_code": status,
        "headers": headers,
        "body": {"error": error, "message": message, **extra},
    }


class Limits:
    """The buckets of one `rate_limits` setting, for the warm instance's life."""

    def __init__(self, settings: RateLimits) -> None:
        self.everyone = TokenBucket(settings.global_per_second, settings.global_burst)
        self.addresses = KeyedBuckets(settings.per_address_per_second, settings.per_address_burst)
        self.callers = KeyedBuckets(settings.per_caller_per_second, settings.per_caller_burst)


# The limits in force and the setting they were built from (one policy at a time).
_LIMITS: list[tuple[RateLimits, Limits]] = []
_LIMITS_LOCK = threading.Lock()


def limits_for(settings: RateLimits) -> Limits:
    current = _LIMITS[0] if _LIMITS else None
    if current is not None and current[0] is settings:
        return current[1]  # the common case, without hashing the model
    with _LIMITS_LOCK:
        if _LIMITS and _LIMITS[0][0] == settings:
            # A policy reload with the same limits keeps the buckets' state.
            _LIMITS[0] = (settings, _LIMITS[0][1])
        else:
            _LIMITS[:] = [(settings, Limits(settings))]
        return _LIMITS[0][1]


def _forget_limits() -> None:
    with _LIMITS_LOCK:
        _LIMITS.clear()


aws.on_reset(_forget_limits)  # tests start each with full buckets


def source_address(context: Mapping[str, Any] | None) -> str:
    identity = (context or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def _throttled(wait: float, who: str, route: str) -> dict[str, Any]:
    count("RequestsThrottled")
    logger().warning("request throttled", extra={"route": route, "limit": who})
    return error_response(
        429, "throttled", f"too many requests ({who}): retry later", retry_seconds=wait
    )


def authenticate(
    headers: Mapping[str, str],
    context: Mapping[str, Any] | None,
    settings: TokenSettings,
    *,
    via: Via,
    route: str,
) -> Caller | dict[str, Any]:
    """The caller, or the error response to send: 429 past a rate limit, 401 (counted per source
    address, whose failures are rate limited too), 503 when an issuer's keys are unavailable."""
    limits = limits_for(settings.rate_limits)
    wait = limits.everyone.try_acquire()
    if wait:
        return _throttled(wait, "service", route)
    address = source_address(context)
    # Only failed authentications spend an address's budget: callers behind one NAT are not
    # throttled together, and a stream of forged tokens is.
    wait = limits.addresses.try_acquire(address, take=False)
    if wait:
        return _throttled(wait, "address", route)
    try:
        if via == "iam":
            caller = caller_from_iam(context)
        else:
            caller = caller_from_bearer(
                headers.get("authorization"), settings, local=not get_settings().deployed
            )
    except Unauthenticated as error:
        limits.addresses.try_acquire(address)
        logger().warning(
            "request unauthenticated",
            extra={"route": route, "status": 401, "reason": shown(error, 200)},
        )
        count("RequestsUnauthenticated")
        return error_response(401, "unauthenticated", str(error), presented=error.presented)
    except JwksUnavailable as error:
        return error_response(503, "unavailable", str(error), retry_seconds=60)
    wait = limits.callers.try_acquire(caller.id)
    if wait:
        return _throttled(wait, "caller", route)
    return caller
