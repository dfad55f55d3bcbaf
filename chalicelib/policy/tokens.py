"""The `tokens:` section of the policy: trusted OIDC issuers, static keys (local) and grants."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.ecr.access import SESSION_POLICY_LIMIT, Access, Scope, session_policy


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


class RateLimits(BaseModel):
    """Requests each warm function instance answers before 429 (`Retry-After`). API Gateway's
    stage throttling and usage plan (the deployed template) bound the whole API; these bound one
    caller, one source address and the instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # hashable: the buckets key on it

    per_caller_per_second: float = Field(default=5, gt=0, description="Per authenticated caller.")
    per_caller_burst: int = Field(default=20, ge=1)
    per_address_per_second: float = Field(
        default=10, gt=0, description="Per source address, counted before authentication."
    )
    per_address_burst: int = Field(default=40, ge=1)
    global_per_second: float = Field(default=200, gt=0, description="Every request together.")
    global_burst: int = Field(default=400, ge=1)


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
    rate_limits: RateLimits = Field(default_factory=RateLimits)

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
