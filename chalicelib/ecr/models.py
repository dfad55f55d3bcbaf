"""What the ECR gateway returns: typed records of repositories, images and call outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

from chalicelib.oci.manifests import Manifest

TagMutability = Literal[
    "MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"
]


class RepositoryInfo(BaseModel):
    name: str
    arn: str
    registry_id: str
    uri: str
    tag_mutability: TagMutability = "MUTABLE"
    mutability_exclusions: list[str] = []
    scan_on_push: bool = False
    created_at: datetime | None = None
    # Governance: ECR fixes encryption at creation, so it is read to report drift only.
    encryption_type: str = "AES256"
    kms_key: str | None = None


class ImageDetail(BaseModel):
    """One image (one digest) in a repository, as describe-images reports it."""

    repository: str
    digest: str
    tags: list[str] = []
    pushed_at: datetime
    size: int | None = None
    media_type: str | None = None
    artifact_media_type: str | None = None
    subject_digest: str | None = None
    status: str = "ACTIVE"
    last_pulled_at: datetime | None = None


class ManifestsRead(BaseModel):
    """Manifests read by digest and by tag in one batch-get-image."""

    by_digest: dict[str, Manifest] = Field(default_factory=dict)
    by_tag: dict[str, Manifest] = Field(default_factory=dict)  # tag -> the manifest it names
    failures: list[dict[str, Any]] = Field(default_factory=list)


class PutOutcome(BaseModel):
    """What put-image did. `unchanged` is ECR's "already exists": success for an idempotent put."""

    status: Literal["created", "unchanged"]
    digest: str
    tag: str | None = None


class DeleteOutcome(BaseModel):
    deleted: list[dict[str, str]] = []
    failures: list[dict[str, Any]] = []


# get-lifecycle-policy-preview's page limit is 100.
LIFECYCLE_PREVIEW_PAGE = 100


class LifecyclePreview(BaseModel):
    """get-lifecycle-policy-preview's answer with every page gathered (`previewResults` as ECR
    returns them)."""

    repository: str
    status: str
    policy_text: str | None = None
    results: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}


class AuthorizationToken(BaseModel):
    """What get-authorization-token returns. The password is a SecretStr so that no repr or
    log line can show it."""

    username: str
    password: SecretStr
    proxy_endpoint: str
    expires_at: datetime


class Finding(BaseModel):
    """One vulnerability, from basic (`findings`) or enhanced (`enhancedFindings`) results."""

    id: str
    severity: str
    package: str | None = None
    package_version: str | None = None
    score: float | None = None
    # None when the scanner does not say (basic scanning never does).
    fix_available: bool | None = None
    uri: str | None = None
