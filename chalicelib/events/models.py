"""Typed models of the ECR and Inspector events that EventBridge delivers.

Shapes follow the AWS documentation (ECR user guide "Amazon ECR events and EventBridge",
"Enhanced scanning events", and the EventBridge event reference). Details carry fields we do not
use, and AWS adds fields over time, so detail models ignore unknown keys; placeholder values from
the documentation (short digests, ids ending in EXAMPLE) are valid input. An event the service does
not act on still parses: it becomes an `UnhandledEvent` and is acknowledged.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from chalicelib.kernel import aws
from chalicelib.kernel.errors import describe
from chalicelib.oci.names import REPOSITORY_NAME

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


# --- validated values: an impossible value is rejected at the door, naming its field ------------

# OCI's digest grammar (algorithm:encoded). Not tied to 64 hex digits: AWS's documented samples
# carry shorter placeholders (`...e5EXAMPLE`), and those must parse.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
# ECR's tag rule: up to 300 characters, Docker's alphabet.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,299}")
_ACCOUNT = re.compile(r"\d{12}")


def _digest(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise ValueError("not an image digest (algorithm:hex, e.g. sha256:...)")
    return value


def _tag(value: str) -> str:
    if not _TAG.fullmatch(value):
        problem = "an empty tag" if not value else "not an image tag ([A-Za-z0-9_][A-Za-z0-9_.-]*)"
        raise ValueError(problem if len(value) <= 300 else "a tag over ECR's 300 characters")
    return value


def repository_name_of(value: str) -> str:
    """A repository name from a name or an ARN (Inspector puts the ARN in `repository-name`)."""
    if value.startswith("arn:") and ":repository/" in value:
        return value.split(":repository/", 1)[1]
    return value


def _repository(value: str) -> str:
    name = repository_name_of(value)
    if not 2 <= len(name) <= 256 or not REPOSITORY_NAME.fullmatch(name):
        raise ValueError("not an ECR repository name")
    return name


def _account(value: str) -> str:
    if not _ACCOUNT.fullmatch(value):
        raise ValueError("not an AWS account id (12 digits)")
    return value


@lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region in botocore's partition data (the loader the clients share caches it)."""
    loader = aws.session()._session.get_component("data_loader")
    endpoints = loader.load_data("endpoints")
    return frozenset(r for p in endpoints.get("partitions", []) for r in p.get("regions", {}))


def _region(value: str) -> str:
    if value not in known_regions():
        raise ValueError("not an AWS region")
    return value


Digest = Annotated[str, AfterValidator(_digest)]
Tag = Annotated[str, AfterValidator(_tag)]
RepositoryName = Annotated[str, AfterValidator(_repository)]
AccountId = Annotated[str, AfterValidator(_account)]
Region = Annotated[str, AfterValidator(_region)]


class _Detail(BaseModel):
    # Built on first use: an invocation validates one kind of event, not all of them.
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True, defer_build=True)


class ImageActionDetail(_Detail):
    """`ECR Image Action`: PUSH, DELETE, UPDATE_STORAGE_CLASS (archive / restore)."""

    result: Literal["SUCCESS", "FAILED"] | str
    repository_name: RepositoryName = Field(alias="repository-name")
    image_digest: Digest | None = Field(default=None, alias="image-digest")
    action_type: str = Field(alias="action-type")
    # Absent when an image is pushed by digest.
    image_tag: Tag | None = Field(default=None, alias="image-tag")
    manifest_media_type: str | None = Field(default=None, alias="manifest-media-type")
    artifact_media_type: str | None = Field(default=None, alias="artifact-media-type")
    target_storage_class: str | None = Field(default=None, alias="target-storage-class")
    last_activated_at: str | None = Field(default=None, alias="last-activated-at")


class ArtifactActionDetail(ImageActionDetail):
    """`ECR Artifact Action`: the same fields, for non-image artifacts."""


class ReferrerActionDetail(ImageActionDetail):
    """`ECR Referrer Action`: a referrer (signature, SBOM, attestation) pushed or deleted."""


class ScanDetail(_Detail):
    """`ECR Image Scan` (basic) and `Inspector2 Scan` (enhanced) share this shape."""

    scan_status: str = Field(alias="scan-status")
    # Inspector puts the repository's ARN here: the name is taken from it.
    repository_name: RepositoryName = Field(alias="repository-name")
    image_digest: Digest = Field(alias="image-digest")
    image_tags: list[Tag] = Field(default_factory=list, alias="image-tags")
    # Only severities that occur are listed: a missing key means 0.
    finding_severity_counts: dict[str, int] = Field(
        default_factory=dict, alias="finding-severity-counts"
    )

    def count(self, severity: str) -> int:
        return self.finding_severity_counts.get(severity, 0)


class ReplicationActionDetail(_Detail):
    """`ECR Replication Action`; the envelope's region is the destination region."""

    result: str
    repository_name: RepositoryName = Field(alias="repository-name")
    image_digest: Digest = Field(alias="image-digest")
    action_type: str = Field(alias="action-type")
    source_account: AccountId | None = Field(default=None, alias="source-account")
    source_region: Region | None = Field(default=None, alias="source-region")
    image_tag: Tag | None = Field(default=None, alias="image-tag")


class PullThroughCacheDetail(_Detail):
    """`ECR Pull Through Cache Action`."""

    sync_status: str = Field(alias="sync-status")
    repository_name: RepositoryName | None = Field(default=None, alias="repository-name")
    ecr_repository_prefix: str | None = Field(default=None, alias="ecr-repository-prefix")
    upstream_registry_url: str | None = Field(default=None, alias="upstream-registry-url")
    image_tag: Tag | None = Field(default=None, alias="image-tag")
    image_digest: Digest | None = Field(default=None, alias="image-digest")


class ScanResourceChangeDetail(_Detail):
    """`ECR Scan Resource Change` (enhanced scanning configuration changes)."""

    action_type: str = Field(alias="action-type")
    resource_type: str | None = Field(default=None, alias="resource-type")
    scan_type: str | None = Field(default=None, alias="scan-type")
    repositories: list[dict[str, Any]] = Field(default_factory=list)


GATE_EVENT_SOURCE = "steward.gate"
GATE_EVENT_DETAIL_TYPE = "Steward Gate Decision"


class GateDecisionDetail(_Detail):
    """`steward.gate` / `Steward Gate Decision`: what the scan gate decided for one image.
    Written by `chalicelib.gate.records.publish_decision`; replication's `gate` trigger reads it."""

    repository_name: RepositoryName = Field(alias="repository-name")
    image_digest: Digest = Field(alias="image-digest")
    decision: Literal["pass", "fail", "pending"]
    reasons: list[str] = Field(default_factory=list)
    finding_severity_counts: dict[str, int] = Field(
        default_factory=dict, alias="finding-severity-counts"
    )
    failing_findings: list[dict[str, Any]] = Field(default_factory=list, alias="failing-findings")
    children: list[dict[str, Any]] = Field(default_factory=list)
    tags: list[dict[str, Any]] = Field(default_factory=list)
    policy_version: str | None = Field(default=None, alias="policy-version")
    decided_at: str | None = Field(default=None, alias="decided-at")


DetailT = TypeVar("DetailT", bound=BaseModel)


class Envelope(BaseModel, Generic[DetailT]):
    """The EventBridge envelope, exactly as EventBridge hands it to a Lambda target."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, defer_build=True)

    version: str
    id: str = Field(min_length=1, max_length=256)
    detail_type: str = Field(alias="detail-type", min_length=1)
    source: str = Field(min_length=1)
    account: AccountId
    # Kept as text: AWS's own documented sample says 2023-02-29, which is no calendar date.
    time: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
    region: Region
    resources: list[str] = Field(default_factory=list)
    detail: DetailT

    @property
    def occurred_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.time.replace("Z", "+00:00"))
        except ValueError:
            return None

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def repository_arn(self, repository: str) -> str:
        # ECR Image Action's `resources` is empty, so the ARN is built from the envelope.
        return f"arn:{self.partition}:ecr:{self.region}:{self.account}:repository/{repository}"


class UnhandledDetail(_Detail):
    """Any detail of an event the service does not act on: kept as it came."""


ImageActionEvent = Envelope[ImageActionDetail]
ArtifactActionEvent = Envelope[ArtifactActionDetail]
ReferrerActionEvent = Envelope[ReferrerActionDetail]
ScanEvent = Envelope[ScanDetail]
ReplicationActionEvent = Envelope[ReplicationActionDetail]
PullThroughCacheEvent = Envelope[PullThroughCacheDetail]
ScanResourceChangeEvent = Envelope[ScanResourceChangeDetail]
GateDecisionEvent = Envelope[GateDecisionDetail]
UnhandledEvent = Envelope[UnhandledDetail]

EventKind = Literal[
    "image-action",
    "artifact-action",
    "referrer-action",
    "image-scan",
    "inspector-scan",
    "replication-action",
    "pull-through-cache",
    "scan-resource-change",
    "gate-decision",
    "unhandled",
]

# (source, detail-type) → (kind, model). Everything else from these sources (Inspector2
# Finding, AWS API Call via CloudTrail, ...) is parsed as an UnhandledEvent.
_MODELS: dict[tuple[str, str], tuple[EventKind, type[Envelope[Any]]]] = {
    ("aws.ecr", "ECR Image Action"): ("image-action", ImageActionEvent),
    ("aws.ecr", "ECR Artifact Action"): ("artifact-action", ArtifactActionEvent),
    ("aws.ecr", "ECR Referrer Action"): ("referrer-action", ReferrerActionEvent),
    ("aws.ecr", "ECR Image Scan"): ("image-scan", ScanEvent),
    ("aws.inspector2", "Inspector2 Scan"): ("inspector-scan", ScanEvent),
    ("aws.ecr", "ECR Replication Action"): ("replication-action", ReplicationActionEvent),
    ("aws.ecr", "ECR Pull Through Cache Action"): ("pull-through-cache", PullThroughCacheEvent),
    ("aws.ecr", "ECR Scan Resource Change"): ("scan-resource-change", ScanResourceChangeEvent),
    # The scan gate's own decisions; replication's `gate` trigger acts on them.
    (GATE_EVENT_SOURCE, GATE_EVENT_DETAIL_TYPE): ("gate-decision", GateDecisionEvent),
}


class MalformedEvent(ValueError):
    """The payload is not an EventBridge event of a shape AWS documents. `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParsedEvent(BaseModel):
    kind: EventKind
    event: Envelope[Any]


def parse_event(raw: Any) -> ParsedEvent:
    """Validate an EventBridge payload into its typed model, or raise MalformedEvent."""
    if not isinstance(raw, dict):
        raise MalformedEvent(f"event is a {type(raw).__name__}, not a JSON object")
    for field in ("source", "detail-type"):
        # Checked before the lookup below: a list or an object there is not even hashable.
        value = raw.get(field)
        if not isinstance(value, str):
            what = "missing" if value is None else f"a {type(value).__name__}, not a string"
            raise MalformedEvent(f"{field}: {what}")
    key = (raw["source"], raw["detail-type"])
    kind, model = _MODELS.get(key, ("unhandled", UnhandledEvent))
    try:
        return ParsedEvent(kind=kind, event=model.model_validate(raw))
    except ValidationError as error:
        raise MalformedEvent(describe(error)) from error
