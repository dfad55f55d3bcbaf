"""Credential vending: `GET /v1/token` gives an authenticated caller an ECR login credential that
can do exactly what a grant in the policy allows, and nothing more.

authenticate (IAM principal from API Gateway, OIDC JWT, local static key) → decide (pure: which
grant, or which check failed) → vend (cached per scope: assume the vending role with a session
policy naming only the granted ECR actions and repository ARNs, then get-authorization-token with
that session) → audit (structured log line and metric, never the token).

Expiry: ECR documents an authorization token as valid for 12 hours and as representing the IAM
credentials that requested it, and does not promise that it outlives the temporary credentials
behind it, so `expiresAt` is the earlier of ECR's `expiresAt` and the session's expiry. The
Lambda function's own credentials are a role session, so assuming the vending role is role
chaining, which AWS caps at one hour: `session_seconds` is at most 3600.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Access = Literal["pull", "push"]

# ECR actions a docker client needs, by access. Push includes pull: a push reads layers too.
PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)
PUSH_ACTIONS = (
    *PULL_ACTIONS,
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)
# STS's limit on a packed session policy is 2,048 characters; the plain JSON is a fair proxy.
SESSION_POLICY_LIMIT = 2048
ACCOUNT_RE = re.compile(r"^\d{12}$")
REGISTRY_HOST_RE = re.compile(
    r"^(?:https?://)?(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)"
    r"\.amazonaws\.com(?:\.cn)?/?$"
)
REPOSITORY_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")


# --- the policy section ------------------------------------------------------------------------


class OidcIssuer(BaseModel):
    """An OIDC identity provider whose JWTs the API accepts (GitHub Actions, a Kubernetes
    cluster's service-account issuer, ...). Keys come from exactly one of `jwks_uri`,
    `jwks_file` or `jwks`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="How grants refer to this issuer.")
    issuer: str = Field(description="The exact `iss` claim.")
    audience: str | list[str] = Field(description="Accepted `aud` value(s).")
    jwks_uri: str | None = Field(default=None, description="URL of the issuer's JWKS.")
    jwks_file: str | None = Field(default=None, description="A local JWKS file (local mode).")
    jwks: dict[str, Any] | None = Field(default=None, description="Inline JWKS document.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    leeway_seconds: int = Field(default=60, ge=0, le=300, description="Clock skew allowed.")

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcIssuer:
        sources = [s for s in (self.jwks_uri, self.jwks_file, self.jwks) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of jwks_uri, jwks_file, jwks")
        return self

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # Symmetric algorithms with a public JWKS would let anyone who reads it sign tokens.
        bad = [a for a in value if a.lower() == "none" or a.upper().startswith("HS")]
        if bad or not value:
            raise ValueError(f"only asymmetric algorithms (RS*, PS*, ES*, EdDSA), not {bad}")
        return value


class StaticKey(BaseModel):
    """A fixed API key, honoured only in local mode (never inside Lambda)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the key.")


class OidcMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(description="The `name` of an entry in `tokens.issuers`.")
    claims: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Claim → glob (or list of globs, any may match); every claim must match.",
    )


class Grant(BaseModel):
    """Who (any of the identity selectors) may get what (registries, repositories, access)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    iam_principals: list[str] = Field(
        default_factory=list, description="Globs on the caller's IAM ARN (API Gateway's userArn)."
    )
    oidc: OidcMatch | None = None
    static_keys: list[str] = Field(default_factory=list, description="Static key ids (local).")
    registries: list[str] = Field(description="Account ids (globs) of the registries.")
    regions: list[str] = Field(default_factory=lambda: ["*"])
    repositories: list[str] = Field(description="Repository name globs, e.g. `team-a/*`.")
    access: Access = "pull"

    @model_validator(mode="after")
    def _someone(self) -> Grant:
        if not (self.iam_principals or self.oidc or self.static_keys):
            raise ValueError("a grant names at least one of iam_principals, oidc, static_keys")
        return self


class TokenSettings(BaseModel):
    """The `tokens:` section of the policy."""

    model_config = ConfigDict(extra="forbid")

    role_arn: str | None = Field(
        default=None,
        description="Role assumed for scoped credentials (default: $STEWARD_TOKEN_ROLE_ARN).",
    )
    session_seconds: int = Field(
        default=3600, ge=900, le=3600, description="Assumed session length (role chaining: ≤1h)."
    )
    refresh_before_seconds: int = Field(
        default=900,
        ge=60,
        le=1800,
        description="Refresh a cached credential this long before it expires.",
    )
    issuers: list[OidcIssuer] = Field(default_factory=list)
    static_keys: list[StaticKey] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> TokenSettings:
        issuers = {i.name for i in self.issuers}
        keys = {k.id for k in self.static_keys}
        names: set[str] = set()
        for grant in self.grants:
            if grant.name in names:
                raise ValueError(f"grant name {grant.name!r} is used twice")
            names.add(grant.name)
            if grant.oidc and grant.oidc.issuer not in issuers:
                raise ValueError(f"grant {grant.name!r}: no issuer named {grant.oidc.issuer!r}")
            missing = set(grant.static_keys) - keys
            if missing:
                raise ValueError(f"grant {grant.name!r}: no static key {sorted(missing)}")
            policy = session_policy(
                Scope(
                    grant=grant.name,
                    account="123456789012",
                    region="ap-southeast-2",
                    repositories=tuple(grant.repositories),
                    access=grant.access,
                )
            )
            if len(policy) > SESSION_POLICY_LIMIT:
                raise ValueError(
                    f"grant {grant.name!r}: its session policy ({len(policy)} characters) exceeds"
                    f" STS's {SESSION_POLICY_LIMIT}; use fewer, broader repository globs"
                )
        return self


# --- callers, requests, decisions (pure) -------------------------------------------------------


class Caller(BaseModel):
    kind: Literal["iam", "oidc", "static"]
    id: str
    issuer: str | None = None
    claims: dict[str, Any] = {}


class TokenRequest(BaseModel):
    account: str
    region: str
    repository: str | None
    access: Access
    format: Literal["json", "docker-config", "login"] = "json"


class Scope(BaseModel):
    """What a vended credential may do. Hashable: the cache is keyed on it."""

    model_config = ConfigDict(frozen=True)

    grant: str
    account: str
    region: str
    repositories: tuple[str, ...]
    access: Access


class Decision(BaseModel):
    granted: bool
    grant: str | None = None
    scope: Scope | None = None
    check: Literal["caller", "registry", "repository", "access"] | None = None
    reason: str


class BadRequest(ValueError):
    pass


class Unauthenticated(Exception):
    pass


def parse_request(query: Mapping[str, str], default_region: str) -> TokenRequest:
    """Validate the query string; BadRequest names the parameter."""
    registry = (query.get("registry") or "").strip()
    if not registry:
        raise BadRequest("registry is required: an account id or an ECR registry host")
    host = REGISTRY_HOST_RE.match(registry)
    if host:
        account, region = host["account"], host["region"]
    elif ACCOUNT_RE.match(registry):
        account, region = registry, default_region
    else:
        raise BadRequest(f"registry {registry!r} is neither a 12-digit account id nor an ECR host")
    repository = query.get("repository") or None
    if repository is not None and (len(repository) > 256 or not REPOSITORY_RE.match(repository)):
        raise BadRequest(f"repository {repository!r} is not a valid ECR repository name")
    access = query.get("access", "pull")
    if access not in ("pull", "push"):
        raise BadRequest(f"access must be pull or push, not {access!r}")
    output = query.get("format", "json")
    if output not in ("json", "docker-config", "login"):
        raise BadRequest(f"format must be json, docker-config or login, not {output!r}")
    return TokenRequest(
        account=account,
        region=region,
        repository=repository,
        access=access,  # type: ignore[arg-type]
        format=output,  # type: ignore[arg-type]
    )


def _glob(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def names_caller(grant: Grant, caller: Caller) -> bool:
    if caller.kind == "iam":
        return _glob(caller.id, grant.iam_principals)
    if caller.kind == "static":
        return caller.id.removeprefix("static:") in grant.static_keys
    if grant.oidc is None or grant.oidc.issuer != caller.issuer:
        return False
    for claim, wanted in grant.oidc.claims.items():
        if claim not in caller.claims:
            return False
        value = caller.claims[claim]
        values = value if isinstance(value, list) else [value]
        patterns = wanted if isinstance(wanted, list) else [wanted]
        if not any(_glob(_claim_text(v), patterns) for v in values):
            return False
    return True


def _claim_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool | int | float) else str(value)


def decide(caller: Caller, request: TokenRequest, grants: list[Grant]) -> Decision:
    """The first grant, in policy order, that allows the request; or the check that failed."""
    candidates = [g for g in grants if names_caller(g, caller)]
    if not candidates:
        return Decision(granted=False, check="caller", reason=f"no grant names {caller.id}")
    in_registry = [
        g
        for g in candidates
        if _glob(request.account, g.registries) and _glob(request.region, g.regions)
    ]
    if not in_registry:
        return Decision(
            granted=False,
            check="registry",
            reason=f"grants {_names(candidates)} do not cover registry "
            f"{request.account} in {request.region}",
        )
    in_repository = [
        g
        for g in in_registry
        if request.repository is None or _glob(request.repository, g.repositories)
    ]
    if not in_repository:
        return Decision(
            granted=False,
            check="repository",
            reason=f"grants {_names(in_registry)} do not cover repository {request.repository}",
        )
    allowed = [g for g in in_repository if request.access == "pull" or g.access == "push"]
    if not allowed:
        return Decision(
            granted=False,
            check="access",
            reason=f"grants {_names(in_repository)} allow pull only, not push",
        )
    grant = allowed[0]
    scope = Scope(
        grant=grant.name,
        account=request.account,
        region=request.region,
        repositories=tuple(grant.repositories),
        access=grant.access if request.access == "push" else "pull",
    )
    return Decision(
        granted=True,
        grant=grant.name,
        scope=scope,
        reason=f"grant {grant.name} allows {scope.access} on {', '.join(scope.repositories)}",
    )


def _names(grants: list[Grant]) -> str:
    return ", ".join(g.name for g in grants)


def session_policy(scope: Scope, partition: str = "aws") -> str:
    """The STS session policy: the scope's ECR actions on the scope's repository ARNs only,
    plus get-authorization-token (which ECR authorizes on `*` alone)."""
    actions = PUSH_ACTIONS if scope.access == "push" else PULL_ACTIONS
    resources = [
        f"arn:{partition}:ecr:{scope.region}:{scope.account}:repository/{pattern}"
        for pattern in scope.repositories
    ]
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Login",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {"Sid": "Scope", "Effect": "Allow", "Action": list(actions), "Resource": resources},
        ],
    }
    return json.dumps(document, separators=(",", ":"))


# --- authentication ----------------------------------------------------------------------------


def local_mode() -> bool:
    """True outside Lambda (the Lambda runtime always sets AWS_LAMBDA_FUNCTION_NAME)."""
    return "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


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
    import jwt

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
    import jwt

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
    from chalicelib.settings import PROJECT_ROOT

    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PROJECT_ROOT / file
    document: dict[str, Any] = json.loads(file.read_text())
    return document


# --- vending, cached per scope -----------------------------------------------------------------


class VendedCredential(BaseModel):
    username: str
    password: SecretStr
    proxy_endpoint: str
    expires_at: datetime
    issued_at: datetime


class Vended(BaseModel):
    credential: VendedCredential
    cached: bool


def _now() -> datetime:
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
        now = now or _now()
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
        from chalicelib import sts
        from chalicelib.registry import Registry

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
        expires_at = min(_aware(token.expires_at), _aware(session.expires_at))
        return VendedCredential(
            username=token.username,
            password=token.password,
            # The host docker logs in to is the requested registry's, whoever's token it is.
            proxy_endpoint=f"https://{scope.account}.dkr.ecr.{scope.region}.amazonaws.com",
            expires_at=expires_at,
            issued_at=now,
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
        or os.environ.get("STEWARD_TOKEN_ROLE_ARN")
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


def reset_vendors() -> None:
    with _VENDORS_LOCK:
        _VENDORS.clear()


# --- the HTTP door -----------------------------------------------------------------------------


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


def token_response(
    request: Any, *, via: Literal["bearer", "iam"], now: datetime | None = None
) -> dict[str, Any]:
    """The whole of `GET /v1/token` (and `/v1/token/iam`) for a Chalice request: the keyword
    arguments of a Chalice Response. Every outcome is logged, never the credential."""
    from chalicelib.observability import flush_metrics

    try:
        return _token_response(
            request.query_params or {},
            request.headers,
            request.context,
            via=via,
            now=now or _now(),
        )
    finally:
        flush_metrics()


def _token_response(
    query: Mapping[str, str],
    headers: Mapping[str, str],
    context: Mapping[str, Any] | None,
    *,
    via: Literal["bearer", "iam"],
    now: datetime,
) -> dict[str, Any]:
    from chalicelib import sts
    from chalicelib.observability import count, logger
    from chalicelib.policy import PolicyError, current_policy
    from chalicelib.registry import RegistryError, Throttled
    from chalicelib.settings import get_settings

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
            caller = caller_from_bearer(headers.get("authorization"), settings, local=local_mode())
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
