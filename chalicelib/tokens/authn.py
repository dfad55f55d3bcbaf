"""Who is calling: an IAM principal (API Gateway's SigV4 authorizer), an OIDC JWT verified against
its issuer's keys, or, locally, a static key.

An issuer's keys are parsed once and kept per issuer; a URL's keys are fetched again after an
hour, or for a key id they lack, but at most once a cooldown, and a failed fetch is logged,
counted and cooled down too: a stream of forged key ids costs no fetch each."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt

from chalicelib.kernel import aws
from chalicelib.kernel.errors import shown
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.settings import PROJECT_ROOT
from chalicelib.policy.tokens import OidcIssuer, TokenSettings
from chalicelib.tokens.grants import Caller, Unauthenticated

JWKS_LIFESPAN_SECONDS = 3600
JWKS_COOLDOWN_SECONDS = 60
JWKS_MAX_BYTES = 1 << 20
# A JWT bigger than this is no JWT an issuer we trust sends (GitHub's are ~1 KB).
MAX_TOKEN_CHARS = 8192


def caller_from_iam(context: Mapping[str, Any] | None) -> Caller:
    """The principal API Gateway's IAM authorizer verified (SigV4): requestContext.identity."""
    identity = (context or {}).get("identity") or {}
    arn = identity.get("userArn")
    if not arn:
        raise Unauthenticated("no IAM principal in the request: sign it with SigV4")
    return Caller(kind="iam", id=str(arn))


def caller_from_bearer(
    authorization: str | None, settings: TokenSettings, *, local: bool
) -> Caller:
    """An OIDC JWT, or (local mode only) a static key, from `Authorization: Bearer …`."""
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <token>", presented=False)
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("Authorization must be Bearer <token>", presented=False)
    if len(credential) > MAX_TOKEN_CHARS:
        raise Unauthenticated(f"the token is longer than {MAX_TOKEN_CHARS} characters")
    if credential.count(".") == 2:
        return verify_jwt(credential, settings.issuers)
    if not local:
        raise Unauthenticated("static keys are accepted only in local mode")
    digest = hashlib.sha256(credential.encode()).hexdigest()
    for key in settings.static_keys:
        if hmac.compare_digest(key.sha256, digest):
            return Caller(kind="static", id=f"static:{key.id}")
    raise Unauthenticated("unknown static key")


# Tokens verified already, by sha256: a CI job presents the same JWT for every pull of a run, and
# verifying costs more than the rest of the request. Bounded, and a hit still checks `exp`.
VERIFIED_CACHE_SIZE = 1024


class _Verified:
    __slots__ = ("caller", "expires", "issuers")

    def __init__(self, caller: Caller, expires: float, issuers: list[OidcIssuer]) -> None:
        self.caller = caller
        self.expires = expires
        # Held, not copied: a policy reload makes a new list, and the identity test misses.
        self.issuers = issuers


_VERIFIED: OrderedDict[bytes, _Verified] = OrderedDict()
_VERIFIED_LOCK = threading.Lock()


def verify_jwt(token: str, issuers: list[OidcIssuer]) -> Caller:
    """`_verify_jwt`, each token verified once per instance while it is valid."""
    key = hashlib.sha256(token.encode()).digest()
    now = time.time()
    with _VERIFIED_LOCK:
        hit = _VERIFIED.get(key)
        if hit is not None:
            _VERIFIED.move_to_end(key)
    if hit is not None and hit.issuers is issuers and now < hit.expires:
        return hit.caller
    caller = _verify_jwt(token, issuers)
    issuer = next(i for i in issuers if i.name == caller.issuer)
    expires = float(caller.claims["exp"]) + issuer.leeway_seconds
    with _VERIFIED_LOCK:
        _VERIFIED[key] = _Verified(caller, expires, issuers)
        while len(_VERIFIED) > VERIFIED_CACHE_SIZE:
            _VERIFIED.popitem(last=False)
    return caller


def _forget_verified() -> None:
    with _VERIFIED_LOCK:
        _VERIFIED.clear()


aws.on_reset(_forget_verified)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified: only to pick the issuer and its key. The one verifying
    decode is PyJWT's, which checks both again."""
    try:
        header_b64, payload_b64, _ = token.split(".")
        header = json.loads(_b64(header_b64))
        claims = json.loads(_b64(payload_b64))
    except (ValueError, binascii.Error) as error:
        raise Unauthenticated("malformed JWT: not base64url JSON") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthenticated("malformed JWT: header and claims must be JSON objects")
    return header, claims


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify_jwt(token: str, issuers: list[OidcIssuer]) -> Caller:
    """Signature (the issuer's JWKS), `iss`, `aud`, `exp`, `nbf` and a non-empty `sub`."""

    header, unverified = _peek(token)
    issuer = next((i for i in issuers if i.issuer == unverified.get("iss")), None)
    if issuer is None:
        raise Unauthenticated(f"JWT issuer {shown(unverified.get('iss'))} is not trusted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Unauthenticated("malformed JWT: kid must be a string")
    key = keys_of(issuer).key(kid)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=issuer.algorithms,
            audience=issuer.audience,
            issuer=issuer.issuer,
            leeway=issuer.leeway_seconds,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"JWT rejected: {shown(error, 120)}") from error
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        # The caller id is what the audit log and CloudTrail name: never empty.
        raise Unauthenticated("JWT rejected: its sub claim is empty")
    return Caller(kind="oidc", id=f"{issuer.name}:{subject}", issuer=issuer.name, claims=claims)


class JwksUnavailable(Exception):
    pass


class IssuerKeys:
    """One issuer's signing keys by key id, loaded once and refreshed as the module says."""

    def __init__(
        self,
        issuer: OidcIssuer,
        *,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        self.issuer = issuer
        self._clock = clock
        self._fetch = fetch or _fetch_jwks
        self._keys: dict[str | None, Any] | None = None
        self._loaded_at = 0.0
        self._attempted_at: float | None = None
        self._file_stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # tests read it

    def key(self, kid: str | None) -> Any:
        with self._lock:
            keys = self._current(kid)
        found = keys.get(kid) if kid is not None else next(iter(keys.values()), None)
        if found is None:
            raise Unauthenticated(f"JWT key {shown(kid)} not in the JWKS of {self.issuer.name}")
        return found

    def _current(self, kid: str | None) -> dict[str | None, Any]:
        issuer = self.issuer
        if issuer.jwks is not None:
            if self._keys is None:
                self._keys = _parse(issuer.jwks)
            return self._keys
        if issuer.jwks_file:
            path = _jwks_path(issuer.jwks_file)
            stat = path.stat()
            stamp = (stat.st_mtime, stat.st_size)
            if self._keys is None or stamp != self._file_stamp:
                self._keys = _parse(json.loads(path.read_text()))
                self._file_stamp = stamp
            return self._keys
        now = self._clock()
        stale = self._keys is None or now - self._loaded_at >= JWKS_LIFESPAN_SECONDS
        unknown = self._keys is not None and kid is not None and kid not in self._keys
        last = self._attempted_at
        cooling = last is not None and now - last < JWKS_COOLDOWN_SECONDS
        if (stale or unknown) and not cooling:
            self._refetch(now)
        if self._keys is None:
            raise JwksUnavailable(f"cannot fetch the JWKS of {issuer.name}; retrying after a pause")
        return self._keys

    def _refetch(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        uri = self.issuer.jwks_uri or ""
        try:
            self._keys = _parse(self._fetch(uri))
            self._loaded_at = now
        except (OSError, ValueError, jwt.PyJWTError) as error:
            # Stale keys, if any, keep serving; the next attempt waits for the cooldown.
            count("JwksFetchFailures")
            logger().warning(
                "JWKS fetch failed",
                extra={"issuer": self.issuer.name, "error": shown(error, 200)},
            )


def _fetch_jwks(uri: str) -> dict[str, Any]:
    request = urllib.request.Request(uri, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError(f"the JWKS is larger than {JWKS_MAX_BYTES} bytes")
    document: dict[str, Any] = json.loads(body)
    return document


def _parse(document: dict[str, Any]) -> dict[str | None, Any]:
    keys = jwt.PyJWKSet.from_dict(document).keys
    return {k.key_id: k.key for k in keys}


def _jwks_path(name: str) -> Path:
    file = Path(name)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    return file


_KEYSETS: dict[str, IssuerKeys] = {}
_KEYSETS_LOCK = threading.Lock()


def keys_of(issuer: OidcIssuer) -> IssuerKeys:
    """The process's keys of one issuer, keyed on its whole configuration: a policy that changes
    the issuer's key source starts afresh."""
    ident = issuer.model_dump_json()
    with _KEYSETS_LOCK:
        found = _KEYSETS.get(ident)
        if found is None:
            if len(_KEYSETS) >= 64:  # policies come and go in a warm container
                _KEYSETS.pop(next(iter(_KEYSETS)))
            found = _KEYSETS[ident] = IssuerKeys(issuer)
        return found
