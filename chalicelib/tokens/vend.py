"""Vending, cached per scope: assume the vending role with a session policy naming only the granted
ECR actions and repository ARNs, then get-authorization-token with that session.

Expiry: ECR documents an authorization token as valid for 12 hours and as representing the IAM
credentials that requested it, and does not promise that it outlives the temporary credentials
behind it, so `expiresAt` is the earlier of ECR's `expiresAt` and the session's expiry. The
function's own credentials are a role session, so assuming the vending role is role chaining,
which AWS caps at one hour: `session_seconds` is at most 3600."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, SecretStr

from chalicelib.ecr.access import Scope, session_policy
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel import aws
from chalicelib.kernel.clock import as_utc
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.tokens import TokenSettings
from chalicelib.tokens import sts


class VendedCredential(BaseModel):
    username: str
    password: SecretStr
    proxy_endpoint: str
    expires_at: datetime
    issued_at: datetime


class Vended(BaseModel):
    credential: VendedCredential
    cached: bool


def utc_now() -> datetime:
    return datetime.now(UTC)


class TokenVendor:
    """One scoped credential per scope, shared by every caller of that scope until it is
    `refresh_before` from expiry. A lock per scope makes concurrent misses wait for one
    refresh instead of each calling AWS."""

    def __init__(
        self,
        role_arn: str,
        *,
        session_seconds: int = 3600,
        refresh_before: timedelta = timedelta(minutes=15),
        assume: Callable[..., Any] | None = None,
        gateway: Callable[..., Any] | None = None,
    ) -> None:
        self.role_arn = role_arn
        self.session_seconds = session_seconds
        self.refresh_before = refresh_before
        self._assume = assume
        self._gateway = gateway
        self._entries: dict[Scope, VendedCredential] = {}
        self._locks: dict[Scope, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # AWS calls made, by operation: tests and the benchmark read them.
        self.calls: Counter[str] = Counter()

    def _fresh(self, scope: Scope, now: datetime) -> VendedCredential | None:
        entry = self._entries.get(scope)
        if entry is not None and now < entry.expires_at - self.refresh_before:
            return entry
        return None

    def credential(self, scope: Scope, now: datetime | None = None) -> Vended:
        now = now or utc_now()
        entry = self._fresh(scope, now)
        if entry is not None:
            return Vended(credential=entry, cached=True)
        with self._locks_lock:
            lock = self._locks.setdefault(scope, threading.Lock())
        with lock:
            entry = self._fresh(scope, now)  # another thread refreshed it while we waited
            if entry is not None:
                return Vended(credential=entry, cached=True)
            entry = self._refresh(scope, now)
            self._entries[scope] = entry
            return Vended(credential=entry, cached=False)

    def _refresh(self, scope: Scope, now: datetime) -> VendedCredential:

        assume = self._assume or sts.assume_role
        partition = self.role_arn.split(":")[1] if self.role_arn.count(":") >= 5 else "aws"
        self.calls["assume_role"] += 1
        session = assume(
            self.role_arn,
            _session_name(scope),
            session_policy(scope, partition),
            self.session_seconds,
        )
        make_gateway = self._gateway or Registry.with_credentials
        gateway = make_gateway(
            scope.region,
            session.access_key_id,
            session.secret_access_key.get_secret_value(),
            session.session_token.get_secret_value(),
        )
        self.calls["get_authorization_token"] += 1
        token = gateway.authorization_token()
        expires_at = min(as_utc(token.expires_at), as_utc(session.expires_at))
        return VendedCredential(
            username=token.username,
            password=token.password,
            # The host docker logs in to is the requested registry's, whoever's token it is.
            proxy_endpoint=f"https://{scope.account}.dkr.ecr.{scope.region}.amazonaws.com",
            expires_at=expires_at,
            issued_at=now,
        )


def _session_name(scope: Scope) -> str:
    """CloudTrail shows this name on every call the credential makes: the grant, readable."""
    name = re.sub(r"[^\w+=,.@-]", "-", f"steward-{scope.grant}-{scope.access}")
    return name[:64]


_VENDORS: dict[tuple[str, int, int], TokenVendor] = {}


_VENDORS_LOCK = threading.Lock()


def vendor_for(settings: TokenSettings, account: str) -> TokenVendor:
    """One vendor (one cache) per role and timing settings, for the warm container's life."""
    role_arn = (
        settings.role_arn
        or get_settings().token_role_arn
        or f"arn:aws:iam::{account}:role/ecr-steward-token-vending"
    )
    key = (role_arn, settings.session_seconds, settings.refresh_before_seconds)
    with _VENDORS_LOCK:
        if key not in _VENDORS:
            _VENDORS[key] = TokenVendor(
                role_arn,
                session_seconds=settings.session_seconds,
                refresh_before=timedelta(seconds=settings.refresh_before_seconds),
            )
        return _VENDORS[key]


def _forget_vendors() -> None:
    with _VENDORS_LOCK:
        _VENDORS.clear()


aws.on_reset(_forget_vendors)
