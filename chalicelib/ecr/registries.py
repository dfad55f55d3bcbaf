"""One ECR gateway per registry: (account, region), as an assumed role when one is named.

Every gateway from here is paced by its registry's token buckets (`chalicelib.kernel.pacing`:
ECR's published TPS per account and region, shared by every function), whichever capability
uses it. A gateway acting as an assumed role is rebuilt well before the role's credentials
expire.
"""

from __future__ import annotations

import threading
import time

import boto3

from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws
from chalicelib.kernel.pacing import pacer_for

# Assumed-role credentials last an hour (ASSUMED_SESSION_SECONDS); rebuild at 45 minutes.
ASSUMED_REUSE_SECONDS = 2700
ROLE_SESSION_NAME = "ecr-steward"

_lock = threading.Lock()
_registries: dict[tuple[str, str, str | None], tuple[float, boto3.session.Session, Registry]] = {}


def registry(account: str | None, region: str, role_arn: str | None = None) -> Registry:
    """The gateway for (account, region), reused across invocations of a warm Lambda. Without an
    account (a scheduled event carries none) it is the caller's own registry."""
    key = (account or "", region, role_arn)
    now = time.monotonic()
    shared = aws.session()
    with _lock:
        cached = _registries.get(key)
        if cached is not None:
            built_at, built_from, gateway = cached
            fresh = role_arn is None or now - built_at < ASSUMED_REUSE_SECONDS
            if fresh and built_from is shared:
                return gateway
    session = aws.assumed_session(role_arn, ROLE_SESSION_NAME) if role_arn else shared
    gateway = Registry(
        region=region,
        registry_id=account or None,
        session=session,
        limiter=pacer_for(account or "", region),
    )
    with _lock:
        _registries[key] = (now, shared, gateway)
    return gateway


def _forget() -> None:
    with _lock:
        _registries.clear()


aws.on_reset(_forget)
