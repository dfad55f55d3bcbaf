"""What every registry operation needs: the caller, the ECR backend its Host names, and checks
of the repository name and digests as ECR makes them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from moto.ecr.models import ecr_backends

from .auth import Principal, authorize
from .errors import DIGEST_INVALID, NAME_INVALID, RegistryError, name_unknown
from .http import Request

if TYPE_CHECKING:
    from ..ecr import EmbeddedECRBackend

# ECR's repositoryName constraint (API model: 2..256 characters, lower case).
_REPOSITORY_RE = re.compile(
    r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
)
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass
class Call:
    """One authenticated /v2 operation on one repository."""

    request: Request
    principal: Principal
    name: str

    def __post_init__(self) -> None:
        if not 2 <= len(self.name) <= 256 or not _REPOSITORY_RE.match(self.name):
            raise RegistryError(
                400,
                NAME_INVALID,
                "invalid repository name",
                {"name": self.name, "pattern": _REPOSITORY_RE.pattern},
            )

    @property
    def account(self) -> str:
        return self.request.account

    @property
    def region(self) -> str:
        return self.request.region

    def allow(self, *actions: str, repository: str | None = None) -> None:
        authorize(self.principal, self.request, actions, repository or self.name)

    def backend(self) -> EmbeddedECRBackend:

        try:
            return cast("EmbeddedECRBackend", ecr_backends[self.account][self.region])
        except KeyError:
            raise RegistryError(
                400, NAME_INVALID, f"unknown region {self.region!r}", {"region": self.region}
            ) from None

    def repository(self, name: str | None = None) -> Any:
        """The moto repository (caller holds the backend's lock for read-modify-write)."""
        repo = self.backend().repositories.get(name or self.name)
        if repo is None:
            raise name_unknown(name or self.name, self.account)
        return repo


def check_digest(digest: str) -> str:
    """A digest the registry can store (sha256); 400 DIGEST_INVALID otherwise."""
    if not SHA256_RE.match(digest):
        if DIGEST_RE.match(digest) and not digest.startswith("sha256:"):
            raise RegistryError(
                400, DIGEST_INVALID, "only sha256 digests are supported", {"digest": digest}
            )
        raise RegistryError(400, DIGEST_INVALID, "invalid digest", {"digest": digest})
    return digest
