"""Vending, cached per scope: assume the vending role with a session policy naming only the granted
ECR actions and repository ARNs, then get-authorization-token with that session.

Expiry: ECR documents an authorization token as valid for 12 hours and as representing the IAM
credentials that requested it, and does not promise that it outlives the temporary credentials
behind it, so `expiresAt` is the earlier of ECR's `expiresAt` and the session's expiry. The
function's own credentials are a role session, so assuming the vending role is role chaining,
which AWS caps at one hour: `session_seconds` is at most 3600."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
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


# Credentials kept per vendor: the least recently used go first. Keys are valid scopes only
# (the request was validated and granted before it gets here), times callers.
CACHE_SIZE = 1024

CacheKey = tuple[Scope, str]


class TokenVendor:
    """One scoped credential per scope and caller, reused by that caller until it is
    `refresh_before` from expiry. Per caller, because the STS session carries the caller as its
    SourceIdentity: CloudTrail tells callers apart. A lock per key makes concurrent misses wait
    for one refresh instead of each calling AWS."""

    def __init__(
        self,
        role_arn: str,
        *,
        session_seconds: int = 3600,
        refresh_before: timedelta = timedelta(minutes=15),
        assume: Callable[..., Any] | None = None,
        gateway: Callable[..., Any] | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.role_arn = role_arn
        self.partition = role_partition(role_arn)
        self.session_seconds = session_seconds
        self.refresh_before = refresh_before
        self.cache_size = cache_size
        self._assume = assume
        self._gateway = gateway
        self._entries: OrderedDict[CacheKey, VendedCredential] = OrderedDict()
        self._locks: OrderedDict[CacheKey, threading.Lock] = OrderedDict()
        self._lock = threading.Lock()
        # AWS calls made, by operation: tests and the benchmark read them.
        self.calls: Counter[str] = Counter()

    def _fresh(self, key: CacheKey, now: datetime) -> VendedCredential | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and now < entry.expires_at - self.refresh_before:
            return entry
        return None

    def credential(
        self, scope: Scope, now: datetime | None = None, *, source_identity: str = ""
    ) -> Vended:
        now = now or utc_now()
        key = (scope, source_identity)
        entry = self._fresh(key, now)
        if entry is not None:
            return Vended(credential=entry, cached=True)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
            self._locks.move_to_end(key)
            while len(self._locks) > self.cache_size:
                self._locks.popitem(last=False)
        with lock:
            entry = self._fresh(key, now)  # another thread refreshed it while we waited
            if entry is not None:
                return Vended(credential=entry, cached=True)
            entry = self._refresh(scope, now, source_identity)
            with self._lock:
                self._entries[key] = entry
                while len(self._entries) > self.cache_size:
                    self._entries.popitem(last=False)
            return Vended(credential=entry, cached=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _refresh(self, scope: Scope, now: datetime, source_identity: str) -> VendedCredential:

        assume = self._assume or sts.assume_role
        self.calls["assume_role"] += 1
        session = assume(
            self.role_arn,
            _session_name(scope),
            session_policy(scope, scope.partition),
            self.session_seconds,
            source_identity or None,
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
            proxy_endpoint="https://"
            + (scope.host or f"{scope.account}.dkr.ecr.{scope.region}.amazonaws.com"),
            expires_at=expires_at,
            issued_at=now,
        )


def _session_name(scope: Scope) -> str:
    """CloudTrail shows this name on every call the credential makes: the grant, readable."""
    name = re.sub(r"[^\w+=,.@-]", "-", f"steward-{scope.grant}-{scope.access}")
    return name[:64]


_SOURCE_IDENTITY_CHARS = re.compile(r"[^\w+=,.@-]", re.ASCII)


@lru_cache(maxsize=1024)
def source_identity(caller_id: str) -> str:
    """The caller as STS's SourceIdentity (2-64 of `[\\w+=,.@-]`): readable, and unique by a hash
    of the whole id wherever characters had to be replaced or cut."""
    readable = _SOURCE_IDENTITY_CHARS.sub("-", caller_id)
    if readable == caller_id and 2 <= len(readable) <= 64:
        return readable
    digest = hashlib.sha256(caller_id.encode()).hexdigest()[:12]
    return f"{readable[:51]}.{digest}"


def role_partition(role_arn: str) -> str:
    return role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"


# Vendors kept: one per role and timing settings; the default role is per account, and a grant
# may cover any account, so this is bounded too.
MAX_VENDORS = 32

_VENDORS: OrderedDict[tuple[str, int, int], TokenVendor] = OrderedDict()


_VENDORS_LOCK = threading.Lock()


def role_arn_for(settings: TokenSettings, account: str, partition: str = "aws") -> str:
    return (
        settings.role_arn
        or get_settings().token_role_arn
        or f"arn:{partition}:iam::{account}:role/ecr-steward-token-vending"
    )


def vendor_for(settings: TokenSettings, account: str, partition: str = "aws") -> TokenVendor:
    """One vendor (one cache) per role and timing settings, for the warm container's life."""
    role_arn = role_arn_for(settings, account, partition)
    key = (role_arn, settings.session_seconds, settings.refresh_before_seconds)
    found = _VENDORS.get(key)
    if found is not None:
        return found  # the common case, without the lock (dict reads are atomic)
    with _VENDORS_LOCK:
        if key not in _VENDORS:
            _VENDORS[key] = TokenVendor(
                role_arn,
                session_seconds=settings.session_seconds,
                refresh_before=timedelta(seconds=settings.refresh_before_seconds),
            )
            while len(_VENDORS) > MAX_VENDORS:
                _VENDORS.popitem(last=False)
        _VENDORS.move_to_end(key)
        return _VENDORS[key]


def _forget_vendors() -> None:
    with _VENDORS_LOCK:
        _VENDORS.clear()


aws.on_reset(_forget_vendors)
