"""Registry authentication: what a `WWW-Authenticate` challenge asks for, and the answer.

Anonymous, HTTP Basic (ECR: user `AWS`, the get-authorization-token password) and the registry
token flow (`Bearer realm=...,service=...,scope=...`, as Docker Hub, GHCR and Quay use): the
client asks the realm for a token for the scopes it needs, with its Basic credentials if it has
any, and sends it as `Authorization: Bearer`. Tokens are cached per scope until shortly before
they expire.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# (username, password), or None for anonymous; called each time credentials are needed, so a
# provider can refresh them (ECR passwords last 12 hours).
CredentialSource = Callable[[], "tuple[str, str] | None"]

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
TOKEN_REUSE_MARGIN_SECONDS = 30
DEFAULT_TOKEN_SECONDS = 60


def anonymous() -> tuple[str, str] | None:
    return None


def basic(username: str, password: str) -> CredentialSource:
    def source() -> tuple[str, str]:
        return username, password

    return source


def basic_header(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str | None) -> Challenge | None:
    """`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"` → Challenge."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


@dataclass
class CachedToken:
    header: str
    expires_at: float

    def fresh(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) < self.expires_at - TOKEN_REUSE_MARGIN_SECONDS


def token_lifetime(document: dict[str, object]) -> float:
    expires_in = document.get("expires_in")
    seconds = float(expires_in) if isinstance(expires_in, int | float) else DEFAULT_TOKEN_SECONDS
    return time.monotonic() + max(seconds, TOKEN_REUSE_MARGIN_SECONDS + 1)
