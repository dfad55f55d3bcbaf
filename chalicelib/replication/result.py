"""What one copy did, and the error that stops a copy whose bytes are not what they claim."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib.ecr.errors import RegistryError


class DigestMismatch(RegistryError):
    """A copied blob's bytes do not hash to the digest the manifest names: the copy stops."""


class CopyResult(BaseModel):
    rule: str
    source: str
    destination: str
    digest: str
    status: Literal["copied", "unchanged", "planned"]
    protocol: Literal["v2", "api"] = "api"
    repository_created: bool = False
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    bytes_planned: int = 0
    manifests_put: int = 0
    layer_restarts: int = 0
    plan: list[str] = Field(default_factory=list)
