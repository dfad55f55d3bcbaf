"""Credential vending's pure decision: which grant of the policy covers a caller's request, or
which check failed (caller, registry, repository, access).
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

from chalicelib.ecr.access import Access, Scope
from chalicelib.kernel.errors import shown
from chalicelib.policy.tokens import Grant
from chalicelib.tokens.hosts import InvalidRegistry, parse_registry

# ECR's repository name pattern, ASCII only; always fullmatch (`$` would let a newline through).
REPOSITORY_RE = re.compile(
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*", re.ASCII
)
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)


class Caller(BaseModel):
    kind: Literal["iam", "oidc", "static"]
    id: str
    issuer: str | None = None
    claims: dict[str, Any] = {}


class TokenRequest(BaseModel):
    account: str
    region: str
    partition: str = "aws"
    host: str = ""
    repository: str | None
    access: Access
    format: Literal["json", "docker-config", "login"] = "json"


class Decision(BaseModel):
    granted: bool
    grant: str | None = None
    scope: Scope | None = None
    check: Literal["caller", "registry", "repository", "access"] | None = None
    reason: str


class BadRequest(ValueError):
    pass


class Unauthenticated(Exception):
    """`presented`: whether the request carried a credential at all (RFC 6750 answers a missing
    one without an error code, a bad one with `invalid_token`)."""

    def __init__(self, message: str, *, presented: bool = True) -> None:
        super().__init__(message)
        self.presented = presented


def valid_repository(name: str) -> bool:
    return 2 <= len(name) <= 256 and REPOSITORY_RE.fullmatch(name) is not None


def parse_request(query: Mapping[str, str], default_region: str) -> TokenRequest:
    """Validate the query string; BadRequest names the parameter and shows a bounded, escaped
    excerpt of what was given. Valid requests are remembered (bounded): a CI fleet asks the
    same few questions over and over."""
    return _parse_request(
        query.get("registry") or "",
        query.get("repository") or None,
        query.get("access", "pull"),
        query.get("format", "json"),
        default_region,
    )


@lru_cache(maxsize=1024)
def _parse_request(
    registry: str, repository: str | None, access: str, output: str, default_region: str
) -> TokenRequest:
    registry = registry.strip()
    if not registry:
        raise BadRequest("registry is required: an account id or an ECR registry host")
    try:
        parsed = parse_registry(registry, default_region)
    except InvalidRegistry as error:
        raise BadRequest(f"registry {shown(registry)} {error}") from None
    if repository is not None and not valid_repository(repository):
        raise BadRequest(f"repository {shown(repository)} is not a valid ECR repository name")
    if access not in ("pull", "push"):
        raise BadRequest(f"access must be pull or push, not {shown(access)}")
    if output not in ("json", "docker-config", "login"):
        raise BadRequest(f"format must be json, docker-config or login, not {shown(output)}")
    return TokenRequest(
        account=parsed.account,
        region=parsed.region,
        partition=parsed.partition,
        host=parsed.host,
        repository=repository,
        access=access,
        format=output,
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


_DecisionKey = tuple[int, str, str, str, str, str | None, str]
_DECISIONS: OrderedDict[_DecisionKey, tuple[Caller, list[Grant], Decision]] = OrderedDict()
_DECISIONS_LOCK = threading.Lock()
DECISION_CACHE_SIZE = 1024


def decide(caller: Caller, request: TokenRequest, grants: list[Grant]) -> Decision:
    """`_decide`, remembered for the same caller object (the verified-token cache hands out one
    per token) and grants list (a policy reload makes a new one); both are held by the entry,
    so their ids cannot be reused while it lives."""
    key = (
        id(caller),
        request.account,
        request.region,
        request.host,
        request.partition,
        request.repository,
        request.access,
    )
    with _DECISIONS_LOCK:
        hit = _DECISIONS.get(key)
        if hit is not None and hit[0] is caller and hit[1] is grants:
            _DECISIONS.move_to_end(key)
            return hit[2]
    decision = _decide(caller, request, grants)
    with _DECISIONS_LOCK:
        _DECISIONS[key] = (caller, grants, decision)
        while len(_DECISIONS) > DECISION_CACHE_SIZE:
            _DECISIONS.popitem(last=False)
    return decision


def _decide(caller: Caller, request: TokenRequest, grants: list[Grant]) -> Decision:
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
        partition=request.partition,
        host=request.host,
    )
    return Decision(
        granted=True,
        grant=grant.name,
        scope=scope,
        reason=f"grant {grant.name} allows {scope.access} on {', '.join(scope.repositories)}",
    )


def _names(grants: list[Grant]) -> str:
    return ", ".join(g.name for g in grants)
