"""Replication: copy images across repositories, regions and accounts, moving only what is missing.

- Rules (the policy's `replication:` section) select source repositories by glob and tags by
  glob, regex or semver range, and name destinations: a repository-name template, a region, an
  account (reached through an assumed role).
- Work is one `CopyJob` per image and destination, fanned out through SQS (`on_copy_job`).
- `read_source` gathers what belongs to an image: the manifest's exact bytes, an index's children,
  cosign `sha256-<hex>.sig|.att|.sbom` sidecars and OCI `subject` referrers. `read_destination`
  asks the destination what it already has. `plan_copy` (pure) decides, with a reason, which blobs
  to copy and which manifests and tags to put. `apply_copy_plan` streams each missing blob from
  its download URL into upload-layer-part calls (one part in memory per layer, a bounded number of
  layers at once) and puts the exact manifest bytes, so the destination digest is the source's.
- A job is idempotent and resumable: a finished copy re-run copies no byte and makes no upload
  call; a copy that failed in the middle of a layer restarts that layer with a new upload.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from fnmatch import fnmatchcase
from functools import cache
from typing import IO, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from semver import Version

from chalicelib.events import Envelope
from chalicelib.imagegraph import cosign_subject
from chalicelib.images import Manifest
from chalicelib.registry import (
    ImageNotFound,
    InvalidLayer,
    Registry,
    RegistryError,
    RepositoryAlreadyExists,
    RepositoryNotFound,
    TagMutability,
)
from chalicelib.selection import matches_any

COSIGN_SUFFIXES = ("sig", "att", "sbom")
# Layers of one image copied at once. Each holds about one upload part (10 MiB) plus its
# base64 request body in memory, so this bounds a copy's memory whatever the layer sizes.
LAYER_CONCURRENCY = 3
# A layer whose stream or upload breaks is restarted from byte 0 with a new upload, this often.
LAYER_ATTEMPTS = 3
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_SEMVER_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<)\s*v?(.+)$")

Trigger = Literal["push", "backfill", "gate"]


# --- the policy section ---------------------------------------------------------------------


class RepositorySettings(BaseModel):
    """Settings of a destination repository the copy has to create."""

    model_config = ConfigDict(extra="forbid")

    tag_mutability: TagMutability = "MUTABLE"
    scan_on_push: bool = False
    tags: dict[str, str] = Field(default_factory=dict, description="Repository resource tags.")


class ReplicationDestination(BaseModel):
    """Where copies go: a repository (template) in a region of an account."""

    model_config = ConfigDict(extra="forbid")

    repository: str = Field(
        default="{repository}",
        description="Destination repository name: {repository} (source name), {name} (its last "
        "path segment), {rule}. E.g. `mirror/{repository}`.",
    )
    region: str | None = Field(default=None, description="Default: the source's region.")
    account: str | None = Field(
        default=None, pattern=r"^[0-9]{12}$", description="Default: the source's account."
    )
    role_arn: str | None = Field(
        default=None,
        description="Role assumed (STS) to write to another account. Default: "
        "arn:aws:iam::<account>:role/ecr-steward-replication when `account` is another account.",
    )
    create: RepositorySettings = Field(default_factory=RepositorySettings)

    @field_validator("repository")
    @classmethod
    def _template_renders(cls, value: str) -> str:
        rendered = render_repository(value, "team/app", "rule")
        if not re.fullmatch(
            r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*", rendered
        ):
            raise ValueError(f"{value!r} renders {rendered!r}, not a valid ECR repository name")
        return value

    def account_for(self, source_account: str) -> str:
        return self.account or source_account

    def role_for(self, source_account: str) -> str | None:
        account = self.account_for(source_account)
        if self.role_arn or account == source_account:
            return self.role_arn
        return f"arn:aws:iam::{account}:role/ecr-steward-replication"


class ReplicationRule(BaseModel):
    """One `replication:` rule: which images to copy, where to, and when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Names the rule in the CLI and records.")
    repositories: list[str] = Field(min_length=1, description="Source repository globs.")
    tags: str | None = Field(default=None, description="Glob on the tag, e.g. `release-*`.")
    tag_regex: str | None = Field(default=None, description="Regex on the whole tag.")
    tag_semver: str | None = Field(
        default=None, description="Semver range on version tags, e.g. `>=1.2.0,<2.0.0`."
    )
    triggers: list[Trigger] = Field(
        default_factory=lambda: list[Trigger](["push", "backfill"]),
        description="push: on each push; gate: when the scan gate passes the image; backfill: "
        "`steward replicate --rule NAME` copies what is already there.",
    )
    delete_sync: bool = Field(
        default=False,
        description="A delete at the source removes the copy, only where this rule made it.",
    )
    destinations: list[ReplicationDestination] = Field(min_length=1)

    @field_validator("tag_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regex: {error}") from None
        return value

    @field_validator("tag_semver")
    @classmethod
    def _range_parses(cls, value: str | None) -> str | None:
        if value is not None:
            _semver_clauses(value)
        return value

    @model_validator(mode="after")
    def _one_tag_filter(self) -> ReplicationRule:
        given = [f for f in ("tags", "tag_regex", "tag_semver") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"set one tag filter, not {' and '.join(given)}")
        if "push" in self.triggers and "gate" in self.triggers:
            raise ValueError("`push` and `gate` exclude each other: gate waits for the scan")
        return self

    @property
    def has_tag_filter(self) -> bool:
        return any(f is not None for f in (self.tags, self.tag_regex, self.tag_semver))

    def selects_repository(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)

    def selects_tag(self, tag: str) -> bool:
        """Whether a tag is one this rule copies (cosign sidecars follow their subject instead)."""
        if cosign_subject(tag):
            return False
        if self.tags is not None:
            return fnmatchcase(tag, self.tags)
        if self.tag_regex is not None:
            return re.fullmatch(self.tag_regex, tag) is not None
        if self.tag_semver is not None:
            return _semver_matches(self.tag_semver, tag)
        return True


def _semver_clauses(spec: str) -> list[tuple[str, Version]]:
    clauses = []
    for part in spec.split(","):
        found = _SEMVER_CLAUSE.match(part.strip())
        if not found:
            raise ValueError(
                f"{part.strip()!r}: expected an operator (>= > <= < == !=) and version"
            )
        try:
            clauses.append((found.group(1), Version.parse(found.group(2).strip())))
        except ValueError as error:
            raise ValueError(f"{part.strip()!r}: {error}") from None
    return clauses


def _semver_matches(spec: str, tag: str) -> bool:
    try:
        version = Version.parse(tag[1:] if tag.startswith("v") else tag)
    except ValueError:
        return False
    checks: dict[str, Callable[[int], bool]] = {
        ">=": lambda c: c >= 0,
        ">": lambda c: c > 0,
        "<=": lambda c: c <= 0,
        "<": lambda c: c < 0,
        "==": lambda c: c == 0,
        "!=": lambda c: c != 0,
    }
    return all(checks[op](version.compare(bound)) for op, bound in _semver_clauses(spec))


def _unique_names(rules: list[ReplicationRule]) -> list[ReplicationRule]:
    names = [rule.name for rule in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"rule names must be unique: {', '.join(duplicated)}")
    return rules


ReplicationRules = Annotated[list[ReplicationRule], AfterValidator(_unique_names)]


def render_repository(template: str, repository: str, rule: str) -> str:
    return template.format(repository=repository, name=repository.rsplit("/", 1)[-1], rule=rule)


# --- jobs ------------------------------------------------------------------------------------


class Target(BaseModel):
    """A destination repository in one registry."""

    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    repository: str
    role_arn: str | None = None
    create: RepositorySettings = Field(default_factory=RepositorySettings)

    def label(self) -> str:
        return f"{self.account}/{self.region}/{self.repository}"


class CopyJob(BaseModel):
    """One image to one destination: the unit of work on the queue. `delete` is delete sync."""

    kind: Literal["copy", "delete"] = "copy"
    rule: str
    trigger: str
    source_account: str
    source_region: str
    source_repository: str
    digest: str
    tags: list[str] = Field(default_factory=list)
    destination: Target

    def ledger_key(self, digest: str | None = None) -> str:
        from chalicelib.replication_aws import ledger_key

        d = self.destination
        return ledger_key(self.rule, d.account, d.region, d.repository, digest or self.digest)


def writes_to(rule: ReplicationRule, account: str, region: str, repository: str) -> bool:
    """Whether `repository` (in this account and region) is one the rule copies into."""
    for destination in rule.destinations:
        if destination.account_for(account) != account or (destination.region or region) != region:
            continue
        pattern = re.escape(destination.repository)
        pattern = pattern.replace(re.escape("{repository}"), "(?P<repository>.+)", 1)
        pattern = pattern.replace(re.escape("{repository}"), "(?P=repository)")
        pattern = pattern.replace(re.escape("{name}"), "[^/]+").replace(
            re.escape("{rule}"), re.escape(rule.name)
        )
        found = re.fullmatch(pattern, repository)
        if found is None:
            continue
        source = found.groupdict().get("repository")
        if source is None:
            # Only {name}: any repository of that shape may be a copy, unless nothing but the
            # name is in the template (then every single-segment repository would be).
            if destination.repository != "{name}":
                return True
        elif source != repository and rule.selects_repository(source):
            return True
    return False


def jobs_for(
    rule: ReplicationRule,
    *,
    trigger: str,
    account: str,
    region: str,
    repository: str,
    digest: str,
    tags: Iterable[str],
    kind: Literal["copy", "delete"] = "copy",
) -> list[CopyJob]:
    """One job per destination of the rule; a destination that is the source is left out."""
    if writes_to(rule, account, region, repository):
        return []  # a copy this rule made: copying it again would chain copies of copies
    jobs = []
    for destination in rule.destinations:
        target = Target(
            account=destination.account_for(account),
            region=destination.region or region,
            repository=render_repository(destination.repository, repository, rule.name),
            role_arn=destination.role_for(account),
            create=destination.create,
        )
        if (target.account, target.region, target.repository) == (account, region, repository):
            continue  # copying an image onto itself would only loop
        jobs.append(
            CopyJob(
                kind=kind,
                rule=rule.name,
                trigger=trigger,
                source_account=account,
                source_region=region,
                source_repository=repository,
                digest=digest,
                tags=sorted(set(tags)),
                destination=target,
            )
        )
    return jobs


# --- what is at the source and at the destination -------------------------------------------


class SourceImage(BaseModel):
    """Everything that belongs to one image, in put order (children and subjects first)."""

    repository: str
    digest: str
    manifests: list[Manifest]
    why: dict[str, str]  # digest → why it belongs to the image
    blobs: dict[str, int]  # digest → size, over every image manifest
    sidecar_tags: dict[str, str] = Field(default_factory=dict)  # cosign tag → its digest


class DestinationState(BaseModel):
    repository_exists: bool
    manifests: set[str] = Field(default_factory=set)
    tagged: set[tuple[str, str]] = Field(default_factory=set)  # (digest, tag) already in place
    missing_blobs: set[str] = Field(default_factory=set)


def read_source(registry: Registry, repository: str, digest: str) -> SourceImage:
    """The image's manifests (exact bytes), children, referrers and blobs, read at the source."""
    listing = list(registry.iter_images(repository))
    by_tag = {tag: image.digest for image in listing for tag in image.tags}
    subject_referrers: dict[str, list[str]] = {}
    for image in listing:
        if image.subject_digest:
            subject_referrers.setdefault(image.subject_digest, []).append(image.digest)

    manifests: dict[str, Manifest] = {}
    why: dict[str, str] = {digest: "the image"}
    children: dict[str, list[str]] = {}
    attached: dict[str, list[str]] = {}
    sidecars: dict[str, str] = {}
    wanted = [digest]
    while wanted:
        found, failures = registry.get_manifests(repository, [{"imageDigest": d} for d in wanted])
        missing = set(wanted) - {m.digest for m in found}
        if missing:
            reason = failures[0].get("failureReason", "") if failures else ""
            raise ImageNotFound(
                "ImageNotFoundException",
                f"{', '.join(sorted(missing))} not in {repository} {reason}".strip(),
                "batch_get_image",
            )
        wanted = []

        def want(d: str, reason: str, parent: str, edges: dict[str, list[str]]) -> None:
            edges.setdefault(parent, []).append(d)
            if d not in why:
                why[d] = reason
                wanted.append(d)  # noqa: B023 - called only within this round

        for manifest in found:
            manifests[manifest.digest] = manifest
            short = _short(manifest.digest)
            for child in manifest.children():
                want(child.digest, f"listed by index {short}", manifest.digest, children)
            algorithm, _, hexpart = manifest.digest.partition(":")
            for suffix in COSIGN_SUFFIXES:
                tag = f"{algorithm}-{hexpart}.{suffix}"
                if tag in by_tag:
                    sidecars[tag] = by_tag[tag]
                    want(by_tag[tag], f"cosign .{suffix} of {short}", manifest.digest, attached)
            for referrer in subject_referrers.get(manifest.digest, []):
                want(referrer, f"OCI referrer of {short}", manifest.digest, attached)

    order: list[Manifest] = []
    placed: set[str] = set()

    def place(d: str) -> None:
        if d in placed:
            return
        placed.add(d)
        for child in children.get(d, []):
            place(child)
        order.append(manifests[d])
        for referrer in attached.get(d, []):
            place(referrer)

    place(digest)
    blobs: dict[str, int] = {}
    for manifest in order:
        if manifest.is_index:
            continue
        for blob in manifest.blobs():
            if not blob.urls:  # non-distributable layers stay where their urls say
                blobs.setdefault(blob.digest, blob.size)
    return SourceImage(
        repository=repository,
        digest=digest,
        manifests=order,
        why=why,
        blobs=blobs,
        sidecar_tags=sidecars,
    )


def read_destination(
    registry: Registry, repository: str, source: SourceImage, tags: Iterable[str]
) -> DestinationState:
    """Which of the image's manifests, tags and blobs the destination repository already has."""
    try:
        registry.describe_repository(repository)
    except RepositoryNotFound:
        return DestinationState(repository_exists=False, missing_blobs=set(source.blobs))
    pairs = [(source.digest, tag) for tag in tags]
    pairs += [(digest, tag) for tag, digest in source.sidecar_tags.items()]
    ids = [{"imageDigest": m.digest} for m in source.manifests]
    ids += [{"imageDigest": d, "imageTag": t} for d, t in pairs]
    found, failures = registry.get_manifests(repository, ids)
    present = {m.digest for m in found}
    failed_tags = {f.get("imageId", {}).get("imageTag") for f in failures}
    tagged = {(d, t) for d, t in pairs if d in present and t not in failed_tags}
    missing = set(registry.missing_layers(repository, source.blobs)) if source.blobs else set()
    return DestinationState(
        repository_exists=True, manifests=present, tagged=tagged, missing_blobs=missing
    )


# --- the plan ----------------------------------------------------------------------------------


class BlobStep(BaseModel):
    digest: str
    size: int
    action: Literal["copy", "skip"]
    reason: str


class ManifestStep(BaseModel):
    digest: str
    media_type: str
    tag: str | None = None
    action: Literal["put", "skip"]
    reason: str


class CopyPlan(BaseModel):
    """What one job will do at its destination, with a reason for every step."""

    job: CopyJob
    create_repository: bool = False
    blobs: list[BlobStep] = Field(default_factory=list)
    manifests: list[ManifestStep] = Field(default_factory=list)

    @property
    def bytes_to_copy(self) -> int:
        return sum(b.size for b in self.blobs if b.action == "copy")

    @property
    def bytes_skipped(self) -> int:
        return sum(b.size for b in self.blobs if b.action == "skip")

    @property
    def changes(self) -> bool:
        return (
            self.create_repository
            or any(b.action != "skip" for b in self.blobs)
            or any(m.action != "skip" for m in self.manifests)
        )


def plan_copy(job: CopyJob, source: SourceImage, state: DestinationState) -> CopyPlan:
    """Decide, without calling anything, what to copy and put so the destination has the image."""
    plan = CopyPlan(job=job, create_repository=not state.repository_exists)
    for digest, size in source.blobs.items():
        if digest in state.missing_blobs:
            plan.blobs.append(BlobStep(digest=digest, size=size, action="copy", reason="missing"))
        else:
            plan.blobs.append(
                BlobStep(digest=digest, size=size, action="skip", reason="already at destination")
            )
    wanted_tags: dict[str, list[str]] = {source.digest: list(job.tags)}
    for tag, digest in source.sidecar_tags.items():
        wanted_tags.setdefault(digest, []).append(tag)
    for manifest in source.manifests:
        why = source.why[manifest.digest]
        tags = wanted_tags.get(manifest.digest, [])
        to_tag = [t for t in tags if (manifest.digest, t) not in state.tagged]
        present = manifest.digest in state.manifests
        steps: list[tuple[str | None, Literal["put", "skip"], str]] = []
        if not present and not to_tag:
            steps.append((None, "put", "missing at destination"))
        for n, tag in enumerate(to_tag):
            first = not present and n == 0
            steps.append((tag, "put", "missing at destination" if first else f"tag {tag} missing"))
        if present and not to_tag:
            steps.append(
                (None, "skip", "already at destination" + (" with its tags" if tags else ""))
            )
        plan.manifests += [
            ManifestStep(
                digest=manifest.digest,
                media_type=manifest.media_type,
                tag=tag,
                action=action,
                reason=f"{why}: {reason}",
            )
            for tag, action, reason in steps
        ]
    return plan


# --- applying ----------------------------------------------------------------------------------


class DigestMismatch(RegistryError):
    """A copied blob's bytes do not hash to the digest the manifest names: the copy stops."""


class CopyResult(BaseModel):
    rule: str
    source: str
    destination: str
    digest: str
    status: Literal["copied", "unchanged", "planned"]
    repository_created: bool = False
    blobs_copied: int = 0
    blobs_skipped: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    bytes_planned: int = 0
    manifests_put: int = 0
    layer_restarts: int = 0
    plan: list[str] = Field(default_factory=list)


class _VerifyingReader:
    """Passes a blob stream through, hashing it; a wrong size or digest raises before the end."""

    def __init__(
        self, stream: IO[bytes], digest: str, size: int, on_bytes: Callable[[int], None]
    ) -> None:
        self._stream = stream
        self._digest = digest
        self._size = size
        self._hash = hashlib.sha256()
        self._on_bytes = on_bytes
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.count += len(data)
        self._on_bytes(len(data))
        if self.count > self._size or (self.count == self._size and data) or not data:
            self._check()
        return data

    def _check(self) -> None:
        actual = "sha256:" + self._hash.hexdigest()
        if self.count != self._size or actual != self._digest:
            raise DigestMismatch(
                "DigestMismatch",
                f"source blob {self._digest} ({self._size} bytes) streamed {self.count} bytes "
                f"hashing to {actual}",
            )


def _copy_blob(
    source: Registry,
    source_repository: str,
    destination: Registry,
    destination_repository: str,
    blob: BlobStep,
    on_bytes: Callable[[int], None],
) -> tuple[int, int]:
    """Stream one blob across; returns (bytes moved, restarts). A broken layer restarts cleanly."""
    moved = 0
    for attempt in range(LAYER_ATTEMPTS):
        try:
            with source.open_blob(source_repository, blob.digest) as stream:
                reader = _VerifyingReader(stream, blob.digest, blob.size, on_bytes)
                try:
                    destination.upload_blob(destination_repository, reader, blob.digest)  # type: ignore[arg-type]
                finally:
                    moved += reader.count
            return moved, attempt
        except DigestMismatch:
            raise
        except InvalidLayer as error:
            raise DigestMismatch(error.code, error.message, error.operation) from error
        except (OSError, RegistryError) as error:
            retryable = (
                isinstance(error, OSError)
                or error.transient
                or error.code
                in (
                    "UploadNotFoundException",
                    "InvalidLayerPartException",
                )
            )
            if not retryable or attempt == LAYER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@cache
def _release_large_buffers() -> None:
    """Pin glibc's mmap threshold at 1 MiB, so upload parts are mapped and unmapped on free.

    glibc raises the threshold after the first large free, after which 10 MiB part buffers come
    from per-thread arenas that keep the memory: RSS then grows with every copying thread instead
    of staying at the parts in flight (measured in benchmarks/bench_replication.py).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def apply_copy_plan(
    source: Registry,
    destination: Registry,
    plan: CopyPlan,
    source_image: SourceImage,
    *,
    concurrency: int = LAYER_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
    record: Callable[[dict[str, list[str]]], None] | None = None,
) -> CopyResult:
    """Carry a plan out: create the repository, copy missing blobs, put manifests in order.

    `record` is told which destination images (and tags) this copy is about to put, before it
    puts them, so delete sync knows what the rule made.
    """
    job = plan.job
    target = job.destination
    result = CopyResult(
        rule=job.rule,
        source=f"{job.source_repository}@{job.digest}",
        destination=target.label(),
        digest=job.digest,
        status="copied" if plan.changes else "unchanged",
        blobs_skipped=sum(1 for b in plan.blobs if b.action == "skip"),
        bytes_skipped=plan.bytes_skipped,
    )
    if plan.create_repository:
        try:
            destination.create_repository(
                target.repository,
                tag_mutability=target.create.tag_mutability,
                scan_on_push=target.create.scan_on_push,
                tags=target.create.tags,
            )
            result.repository_created = True
        except RepositoryAlreadyExists:
            pass

    copies = [b for b in plan.blobs if b.action == "copy"]
    if copies:
        _release_large_buffers()
        failed = threading.Event()

        def copy_one(blob: BlobStep) -> tuple[int, int] | None:
            if failed.is_set():  # one layer failed: the copy stops, queued layers do not start
                return None
            try:
                return _copy_blob(
                    source, job.source_repository, destination, target.repository, blob, on_bytes
                )
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(copies)))) as pool:
            futures = [pool.submit(copy_one, blob) for blob in copies]
        errors = [error for f in futures if (error := f.exception()) is not None]
        for future in futures:
            copied = None if future.exception() is not None else future.result()
            if copied is not None:
                result.bytes_moved += copied[0]
                result.layer_restarts += copied[1]
                result.blobs_copied += 1
        if errors:
            raise errors[0]

    puts = [s for s in plan.manifests if s.action == "put"]
    if puts and record is not None:
        made: dict[str, list[str]] = {}
        for step in puts:
            made.setdefault(step.digest, []).extend([step.tag] if step.tag else [])
        record(made)
    manifests = {m.digest: m for m in source_image.manifests}
    for step in puts:
        outcome = destination.put_manifest(target.repository, manifests[step.digest], step.tag)
        if outcome.digest != step.digest:
            raise DigestMismatch(
                "ImageDigestDoesNotMatchException",
                f"destination digest {outcome.digest} is not the source's {step.digest}",
            )
        result.manifests_put += 1
    return result


def describe_plan(plan: CopyPlan) -> list[str]:
    lines = (
        [f"create repository {plan.job.destination.repository}"] if plan.create_repository else []
    )
    lines += [f"blob {_short(b.digest)} {b.size} B: {b.action} ({b.reason})" for b in plan.blobs]
    lines += [
        f"manifest {_short(m.digest)}{':' + m.tag if m.tag else ''}: {m.action} ({m.reason})"
        for m in plan.manifests
    ]
    return lines


def copy_image(
    job: CopyJob,
    *,
    source: Registry,
    destination: Registry,
    dry_run: bool = False,
    ledger_table: str | None = None,
    concurrency: int = LAYER_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> CopyResult:
    """Read, plan and (unless dry run) apply one copy job."""
    image = read_source(source, job.source_repository, job.digest)
    state = read_destination(destination, job.destination.repository, image, job.tags)
    plan = plan_copy(job, image, state)
    if dry_run:
        return CopyResult(
            rule=job.rule,
            source=f"{job.source_repository}@{job.digest}",
            destination=job.destination.label(),
            digest=job.digest,
            status="planned",
            bytes_skipped=plan.bytes_skipped,
            bytes_planned=plan.bytes_to_copy,
            blobs_skipped=sum(1 for b in plan.blobs if b.action == "skip"),
            plan=describe_plan(plan),
        )
    record = None
    if ledger_table:
        from chalicelib.replication_aws import record_copies

        table = ledger_table

        def record(made: dict[str, list[str]]) -> None:
            record_copies(table, {job.ledger_key(d): tags for d, tags in made.items()})

    result = apply_copy_plan(
        source, destination, plan, image, concurrency=concurrency, on_bytes=on_bytes, record=record
    )
    result.plan = describe_plan(plan)
    return result


# --- delete sync -------------------------------------------------------------------------------


class DeleteResult(BaseModel):
    rule: str
    destination: str
    digest: str
    tag: str | None
    status: Literal["deleted", "untagged", "not-ours", "kept", "gone", "planned"]
    reason: str


def sync_delete(
    job: CopyJob,
    *,
    source: Registry,
    destination: Registry,
    ledger_table: str,
    dry_run: bool = False,
) -> DeleteResult:
    """Mirror a source delete at the destination, only for what this rule copied there."""
    from chalicelib.replication_aws import copy_record, forget_copy

    tag = job.tags[0] if job.tags else None
    key = job.ledger_key()
    target = job.destination

    def result(status: Any, reason: str) -> DeleteResult:
        return DeleteResult(
            rule=job.rule,
            destination=target.label(),
            digest=job.digest,
            tag=tag,
            status=status,
            reason=reason,
        )

    made_tags = copy_record(ledger_table, key)
    if made_tags is None:
        return result("not-ours", "this rule did not copy that image there: left alone")
    found, _ = source.get_manifests(job.source_repository, [{"imageDigest": job.digest}])
    if found:
        # The image is still at the source: only a tag went.
        if tag is None or tag not in made_tags:
            return result("kept", "still at the source, and the deleted tag is not one we put")
        ids = [{"imageDigest": job.digest, "imageTag": tag}]
        if dry_run:
            return result("planned", f"untag {tag}")
        there, failures = destination.get_manifests(target.repository, ids)
        if not there or failures:
            forget_copy(ledger_table, key, tag)
            return result("gone", f"{tag} is no longer on that image at the destination")
        destination.delete_images(target.repository, [{"imageTag": tag}])
        forget_copy(ledger_table, key, tag)
        return result("untagged", f"{tag} was deleted at the source")
    if dry_run:
        return result("planned", "delete: gone from the source")
    try:
        outcome = destination.delete_images(target.repository, [{"imageDigest": job.digest}])
    except RepositoryNotFound:
        outcome = None
    if outcome is not None and outcome.failures:
        code = outcome.failures[0].get("failureCode")
        if code != "ImageNotFound":
            raise RegistryError(str(code), str(outcome.failures[0].get("failureReason", "")))
    forget_copy(ledger_table, key)
    return result("deleted", "gone from the source, and this rule made the copy")


# --- running jobs -----------------------------------------------------------------------------


def execute_job(job: CopyJob, *, dry_run: bool = False) -> dict[str, Any]:
    """Run one job against the registries it names (the queue consumer's unit of work)."""
    from chalicelib.replication_aws import registry_in
    from chalicelib.settings import get_settings

    settings = get_settings()
    source = registry_in(job.source_account, job.source_region)
    target = job.destination
    destination = registry_in(target.account, target.region, target.role_arn)
    if job.kind == "delete":
        return sync_delete(
            job,
            source=source,
            destination=destination,
            ledger_table=settings.replication_table,
            dry_run=dry_run,
        ).model_dump(mode="json")
    try:
        result = copy_image(
            job,
            source=source,
            destination=destination,
            dry_run=dry_run,
            ledger_table=settings.replication_table,
        )
    except ImageNotFound:
        # Deleted at the source since the job was queued: nothing left to copy.
        return {"status": "skipped", "why": "gone from the source", "digest": job.digest}
    return result.model_dump(mode="json", exclude={"plan"})


def handle_copy_jobs(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The `on_copy_job` SQS consumer: each record one job; failures are reported per record."""
    from chalicelib.jobqueue import process_jobs
    from chalicelib.observability import count, logger
    from chalicelib.policy import current_policy, dry_run

    policy = current_policy().policy
    is_dry = dry_run(policy)

    def handle(record: Any) -> dict[str, Any]:
        job = CopyJob.model_validate_json(record.body)
        with logger().append_context_keys(rule=job.rule, digest=job.digest, kind=job.kind):
            outcome = execute_job(job, dry_run=is_dry)
            logger().info("replication job done", extra={"replication": outcome})
            count("ReplicationJobsDone")
            return outcome

    return process_jobs(event, context, handle, "ReplicationJobsFailed")


def enqueue(jobs: list[CopyJob]) -> int:
    from chalicelib.replication_aws import enqueue_jobs
    from chalicelib.settings import get_settings

    return enqueue_jobs(get_settings().replication_queue, [job.model_dump_json() for job in jobs])


# --- reactions to events -----------------------------------------------------------------------


def _rules(trigger: Trigger, repository: str) -> list[ReplicationRule]:
    from chalicelib.policy import current_policy

    rules: list[ReplicationRule] = getattr(current_policy().policy, "replication", [])
    return [r for r in rules if trigger in r.triggers and r.selects_repository(repository)]


def _subject_and_tags(
    registry: Registry, repository: str, digest: str, tag: str | None
) -> tuple[str, list[str] | None]:
    """The image a push is about, and its tags (None: read them). A signature or referrer pushed
    after its image is copied by copying the image again: everything else is already there."""
    subject = cosign_subject(tag) if tag else None
    if subject is None and tag is None:
        try:
            subject = registry.get_manifest(repository, digest=digest).subject()
        except ImageNotFound:
            return digest, []
    if subject is None:
        return digest, [tag] if tag else None
    return subject, None


def _queue(jobs: list[CopyJob], trigger: str) -> dict[str, Any] | None:
    from chalicelib.observability import count, logger
    from chalicelib.policy import current_policy, dry_run

    if not jobs:
        return None
    summary = [
        {
            "rule": j.rule,
            "kind": j.kind,
            "digest": j.digest,
            "tags": j.tags,
            "destination": j.destination.label(),
        }
        for j in jobs
    ]
    if dry_run(current_policy().policy):
        logger().info("replication planned", extra={"jobs": summary})
        return {"status": "planned", "trigger": trigger, "jobs": summary}
    enqueue(jobs)
    count("ReplicationJobsQueued", len(jobs))
    logger().info("replication queued", extra={"jobs": summary})
    return {"status": "queued", "trigger": trigger, "jobs": summary}


def _copy_jobs_for_image(
    trigger: Trigger, account: str, region: str, repository: str, digest: str, tag: str | None
) -> list[CopyJob]:
    from chalicelib.replication_aws import registry_in

    rules = _rules(trigger, repository)
    if not rules:
        return []
    registry = registry_in(account, region)
    image, tags = _subject_and_tags(registry, repository, digest, tag)
    if tags is None:
        try:
            tags = registry.describe_image(repository, digest=image).tags
        except ImageNotFound:
            return []
    jobs: list[CopyJob] = []
    for rule in rules:
        selected = [t for t in tags if rule.selects_tag(t)]
        if not selected:
            continue
        jobs += jobs_for(
            rule,
            trigger=trigger,
            account=account,
            region=region,
            repository=repository,
            digest=image,
            tags=selected,
        )
    return jobs


def react_to_push(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
    """A push: one copy job per destination of every push rule that selects the image."""
    detail = event.detail
    if not _rules("push", detail.repository_name):
        return None
    jobs = _copy_jobs_for_image(
        "push",
        event.account,
        event.region,
        detail.repository_name,
        str(detail.image_digest),
        detail.image_tag,
    )
    return _queue(jobs, "push")


def react_to_delete(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
    """A delete at the source: one delete-sync job per destination of every delete_sync rule."""
    detail = event.detail
    rules = [
        r
        for r in _rules("push", detail.repository_name)
        + _rules("gate", detail.repository_name)
        + _rules("backfill", detail.repository_name)
        if r.delete_sync
    ]
    jobs: list[CopyJob] = []
    for rule in {r.name: r for r in rules}.values():
        jobs += jobs_for(
            rule,
            trigger="delete",
            kind="delete",
            account=event.account,
            region=event.region,
            repository=detail.repository_name,
            digest=str(detail.image_digest),
            tags=[detail.image_tag] if detail.image_tag else [],
        )
    return _queue(jobs, "delete")


GATE_PASSED = frozenset({"PASS", "PASSED", "PROMOTE", "PROMOTED", "ALLOW", "ALLOWED", "APPROVED"})


def react_to_gate_decision(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
    """`steward.gate` / `Steward Gate Decision`: a passed image is copied by `gate` rules."""
    detail = event.detail
    fields: dict[str, Any] = (
        detail.model_dump(by_alias=True) if isinstance(detail, BaseModel) else dict(detail)
    )
    repository = fields.get("repository-name") or fields.get("repository")
    digest = fields.get("image-digest") or fields.get("digest")
    decision = str(fields.get("decision") or fields.get("result") or "").upper()
    if not repository or not digest or decision not in GATE_PASSED:
        return None
    if not _rules("gate", repository):
        return None
    jobs = _copy_jobs_for_image("gate", event.account, event.region, repository, digest, None)
    return _queue(jobs, "gate")


# --- backfill ------------------------------------------------------------------------------------


class BackfillSummary(BaseModel):
    rule: str
    dry_run: bool
    images: int = 0
    copied: int = 0
    unchanged: int = 0
    failed: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    bytes_planned: int = 0
    errors: list[str] = Field(default_factory=list)
    results: list[CopyResult] = Field(default_factory=list)


def backfill_jobs(
    rule: ReplicationRule, source: Registry, account: str, region: str
) -> list[CopyJob]:
    """Every existing image the rule selects, as jobs (one per image and destination)."""
    jobs: list[CopyJob] = []
    for repository in source.iter_repositories():
        if not rule.selects_repository(repository.name):
            continue
        for image in source.iter_images(repository.name, tag_status="TAGGED"):
            selected = [t for t in image.tags if rule.selects_tag(t)]
            if selected:
                jobs += jobs_for(
                    rule,
                    trigger="backfill",
                    account=account,
                    region=region,
                    repository=repository.name,
                    digest=image.digest,
                    tags=selected,
                )
    return jobs


def backfill(
    rule: ReplicationRule,
    jobs: list[CopyJob],
    *,
    registry: Callable[[str, str, str | None], Registry],
    dry_run: bool = False,
    ledger_table: str | None = None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
) -> BackfillSummary:
    """Copy (or plan) the jobs one after another, each with its layers in parallel."""
    summary = BackfillSummary(rule=rule.name, dry_run=dry_run)
    for job in jobs:
        target = job.destination
        try:
            result = copy_image(
                job,
                source=registry(job.source_account, job.source_region, None),
                destination=registry(target.account, target.region, target.role_arn),
                dry_run=dry_run,
                ledger_table=ledger_table,
                on_bytes=on_bytes,
            )
        except RegistryError as error:
            summary.failed += 1
            summary.errors.append(
                f"{job.source_repository}@{job.digest} → {target.label()}: {error}"
            )
            continue
        summary.images += 1
        summary.bytes_moved += result.bytes_moved
        summary.bytes_skipped += result.bytes_skipped
        summary.bytes_planned += result.bytes_planned
        if result.status == "copied":
            summary.copied += 1
        elif result.status == "unchanged":
            summary.unchanged += 1
        summary.results.append(result)
        on_image(result)
    return summary


# --- native replication --------------------------------------------------------------------------

NATIVE_MAX_RULES = 10
NATIVE_MAX_DESTINATIONS = 25
NATIVE_MAX_FILTERS = 100


class NativePlan(BaseModel):
    rule: str
    expressible: bool
    reasons: list[str] = Field(default_factory=list)  # why not, or caveats
    native_rule: dict[str, Any] | None = None
    configuration: list[dict[str, Any]] = Field(default_factory=list)  # the registry's rules after


def plan_native(
    rule: ReplicationRule, existing: list[dict[str, Any]], account: str, region: str
) -> NativePlan:
    """Whether ECR's own replication can do what this rule says, and the configuration if so."""
    blockers: list[str] = []
    notes: list[str] = []
    if rule.has_tag_filter:
        blockers.append("it filters tags; ECR replication has no tag filter")
    filters: list[dict[str, str]] = []
    for glob in rule.repositories:
        prefix = glob[:-1] if glob.endswith("*") else None
        if glob == "*":
            continue
        if prefix is None or any(c in prefix for c in "*?[]"):
            blockers.append(f"{glob!r} is not a prefix glob; ECR filters only by name prefix")
        elif len(prefix) < 2:
            blockers.append(f"{glob!r}: an ECR prefix filter needs at least 2 characters")
        else:
            filters.append({"filter": prefix, "filterType": "PREFIX_MATCH"})
    if "*" in rule.repositories:
        filters = []
    if len(filters) > NATIVE_MAX_FILTERS:
        blockers.append(f"{len(filters)} repository filters; ECR allows {NATIVE_MAX_FILTERS}")
    destinations = []
    for destination in rule.destinations:
        if destination.repository != "{repository}":
            blockers.append(
                f"destination repository {destination.repository!r}: ECR keeps the source name"
            )
        target = (destination.account_for(account), destination.region or region)
        if target == (account, region):
            blockers.append(
                "a destination in the source registry: ECR replicates to other "
                "regions or accounts only"
            )
        if destination.create != RepositorySettings():
            notes.append(
                "repository settings for created repositories need an ECR repository "
                "creation template (applied for REPLICATION)"
            )
        destinations.append({"region": target[1], "registryId": target[0]})
    if rule.delete_sync:
        blockers.append("delete_sync: ECR replication never deletes")
    if "gate" in rule.triggers:
        blockers.append("triggers: gate; ECR replicates at push, before any scan")
    if "backfill" in rule.triggers:
        notes.append(
            "ECR replicates only images pushed after it is configured; run "
            "`steward replicate --rule NAME` once to backfill"
        )
    plan = NativePlan(rule=rule.name, expressible=not blockers, reasons=blockers + notes)
    if blockers:
        return plan
    native: dict[str, Any] = {"destinations": destinations}
    if filters:
        native["repositoryFilters"] = filters
    plan.native_rule = native
    configuration = list(existing) if native in existing else [*existing, native]
    unique = {(d["region"], d["registryId"]) for r in configuration for d in r["destinations"]}
    if len(configuration) > NATIVE_MAX_RULES:
        plan.expressible = False
        plan.reasons.insert(
            0,
            f"the registry would have {len(configuration)} replication rules; "
            f"ECR allows {NATIVE_MAX_RULES}",
        )
    if len(unique) > NATIVE_MAX_DESTINATIONS:
        plan.expressible = False
        plan.reasons.insert(
            0,
            f"{len(unique)} unique destinations across rules; ECR allows {NATIVE_MAX_DESTINATIONS}",
        )
    plan.configuration = configuration
    return plan


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else digest[:12]


# --- the operator's commands (steward replicate) -------------------------------------------------


def find_rule(name: str) -> ReplicationRule:
    from chalicelib.policy import current_policy

    loaded = current_policy()
    for rule in getattr(loaded.policy, "replication", []):
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in getattr(loaded.policy, "replication", [])) or "none"
    raise LookupError(f"no replication rule {name!r} in {loaded.source} (rules: {known})")


def run_backfill(
    name: str,
    *,
    region: str | None,
    dry_run: bool,
    on_jobs: Callable[[list[CopyJob]], None] = lambda jobs: None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
) -> BackfillSummary:
    """`steward replicate --rule NAME`: copy (or plan) what the rule selects, here and now."""
    from chalicelib.replication_aws import caller_account, registry_in
    from chalicelib.settings import get_settings

    rule = find_rule(name)
    if "backfill" not in rule.triggers:
        raise LookupError(f"rule {name!r} does not allow backfill (triggers: {rule.triggers})")
    account = caller_account()
    source_region = region or Registry().region
    jobs = backfill_jobs(rule, registry_in(account, source_region), account, source_region)
    on_jobs(jobs)
    return backfill(
        rule,
        jobs,
        registry=registry_in,
        dry_run=dry_run,
        ledger_table=get_settings().replication_table,
        on_bytes=on_bytes,
        on_image=on_image,
    )


def run_native(name: str, *, region: str | None, apply: bool) -> NativePlan:
    """`steward replicate native --rule NAME`: ECR's own replication for a rule it can express."""
    from chalicelib.replication_aws import caller_account, registry_in

    rule = find_rule(name)
    account = caller_account()
    source_region = region or Registry().region
    registry = registry_in(account, source_region)
    plan = plan_native(rule, registry.get_replication_rules(), account, source_region)
    if apply and plan.expressible:
        registry.put_replication_rules(plan.configuration)
    return plan
