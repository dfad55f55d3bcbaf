"""An OIDC issuer for tests: its own RSA keys, a JWKS file, and signed JWTs shaped like GitHub
Actions' and Kubernetes service-account tokens."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "ecr-steward"


class Issuer:
    def __init__(self, issuer: str = GITHUB_ISSUER, kid: str | None = None) -> None:
        self.issuer = issuer
        self.kid = kid or uuid.uuid4().hex[:16]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [public]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(self, *, audience: str = AUDIENCE, lifetime: int = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})

    def github(self, repository: str, ref: str = "refs/heads/main", **claims: Any) -> str:
        """Claims as GitHub Actions' OIDC provider issues them."""
        return self.token(
            sub=f"repo:{repository}:ref:{ref}",
            repository=repository,
            repository_owner=repository.split("/")[0],
            ref=ref,
            event_name="push",
            **claims,
        )


def policy_yaml(
    jwks_file: Path, *, static_sha256: str = "", extra_grants: str = "", rate_limits: str = ""
) -> str:
    """A policy with a GitHub issuer, two grants of different scope, and a static key."""
    static = (
        f"""
  static_keys:
    - id: dev
      sha256: {static_sha256}"""
        if static_sha256
        else ""
    )
    dev_grant = (
        """
    - name: local-dev
      static_keys: [dev]
      registries: ["123456789012"]
      repositories: ["*"]
      access: push"""
        if static_sha256
        else ""
    )
    limits = f"\n  rate_limits: {rate_limits}" if rate_limits else ""
    return f"""
tokens:{limits}
  issuers:
    - name: github
      issuer: {GITHUB_ISSUER}
      audience: {AUDIENCE}
      jwks_file: {jwks_file}{static}
  grants:
    - name: ci-pull
      oidc:
        issuer: github
        claims: {{repository: "acme/*", ref: refs/heads/main}}
      registries: ["123456789012"]
      repositories: ["team-a/*"]
      access: pull
    - name: deployer-push
      oidc:
        issuer: github
        claims: {{repository: acme/deployer}}
      iam_principals: ["arn:aws:sts::123456789012:assumed-role/deployer/*"]
      registries: ["123456789012"]
      repositories: ["team-b/api", "team-b/worker"]
      access: push{dev_grant}{extra_grants}
"""
