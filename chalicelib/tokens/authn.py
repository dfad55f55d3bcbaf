"""Who is calling: an IAM principal (API Gateway's SigV4 authorizer), an OIDC JWT verified against
its issuer's keys, or, locally, a static key."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from chalicelib.kernel.settings import PROJECT_ROOT
from chalicelib.policy.tokens import OidcIssuer, TokenSettings
from chalicelib.tokens.grants import Caller, Unauthenticated


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
        raise Unauthenticated("missing Authorization: Bearer <token>")
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("Authorization must be Bearer <token>")
    if credential.count(".") == 2:
        return verify_jwt(credential, settings.issuers)
    if not local:
        raise Unauthenticated("static keys are accepted only in local mode")
    digest = hashlib.sha256(credential.encode()).hexdigest()
    for key in settings.static_keys:
        if hmac.compare_digest(key.sha256, digest):
            return Caller(kind="static", id=f"static:{key.id}")
    raise Unauthenticated("unknown static key")


def verify_jwt(token: str, issuers: list[OidcIssuer]) -> Caller:
    """Signature (the issuer's JWKS), `iss`, `aud`, `exp` and `nbf`, with PyJWT."""

    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"malformed JWT: {error}") from error
    issuer = next((i for i in issuers if i.issuer == unverified.get("iss")), None)
    if issuer is None:
        raise Unauthenticated(f"JWT issuer {unverified.get('iss')!r} is not trusted")
    key = _signing_key(issuer, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=issuer.algorithms,
            audience=issuer.audience,
            issuer=issuer.issuer,
            leeway=issuer.leeway_seconds,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"JWT rejected: {error}") from error
    subject = claims.get("sub", "")
    return Caller(kind="oidc", id=f"{issuer.name}:{subject}", issuer=issuer.name, claims=claims)


class JwksUnavailable(Exception):
    pass


_JWKS_CLIENTS: dict[str, Any] = {}


_JWKS_LOCK = threading.Lock()


def _signing_key(issuer: OidcIssuer, kid: str | None) -> Any:

    if issuer.jwks_uri:
        with _JWKS_LOCK:
            client = _JWKS_CLIENTS.get(issuer.jwks_uri)
            if client is None:
                # Keys are cached for the warm container's life; an unknown kid refetches.
                client = jwt.PyJWKClient(issuer.jwks_uri, cache_keys=True, lifespan=3600, timeout=5)
                _JWKS_CLIENTS[issuer.jwks_uri] = client
        try:
            return client.get_signing_key(kid).key if kid else client.get_signing_keys()[0].key
        except jwt.PyJWKClientConnectionError as error:
            raise JwksUnavailable(f"cannot fetch the JWKS of {issuer.name}: {error}") from error
        except jwt.PyJWKClientError as error:
            raise Unauthenticated(f"JWT key {kid!r} not in the JWKS of {issuer.name}") from error
    document = issuer.jwks if issuer.jwks is not None else _read_jwks(issuer.jwks_file or "")
    keys = jwt.PyJWKSet.from_dict(document).keys
    for candidate in keys:
        if kid is None or candidate.key_id == kid:
            return candidate.key
    raise Unauthenticated(f"JWT key {kid!r} not in the JWKS of {issuer.name}")


def _read_jwks(path: str) -> dict[str, Any]:

    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    document: dict[str, Any] = json.loads(file.read_text())
    return document
