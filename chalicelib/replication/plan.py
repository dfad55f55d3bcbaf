"""Replication's pure copy planner: from a job, what the source holds and what the destination
already has, which blobs to copy and which manifests and tags to put, each with a reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib.oci.manifests import short_digest
from chalicelib.replication.jobs import CopyJob
from chalicelib.replication.result import CopyResult
from chalicelib.replication.source import DestinationState, SourceImage


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
    def puts(self) -> list[ManifestStep]:
        return [s for s in self.manifests if s.action == "put"]

    def made(self) -> dict[str, list[str]]:
        """What the ledger records once the puts are done: each digest put and its tags."""
        made: dict[str, list[str]] = {}
        for step in self.puts:
            made.setdefault(step.digest, []).extend([step.tag] if step.tag else [])
        return made

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


def describe_plan(plan: CopyPlan) -> list[str]:
    lines = (
        [f"create repository {plan.job.destination.repository}"] if plan.create_repository else []
    )
    lines += [
        f"blob {short_digest(b.digest)} {b.size} B: {b.action} ({b.reason})" for b in plan.blobs
    ]
    lines += [
        f"manifest {short_digest(m.digest)}{':' + m.tag if m.tag else ''}: {m.action} ({m.reason})"
        for m in plan.manifests
    ]
    return lines


def copy_result(
    plan: CopyPlan, protocol: Literal["v2", "api"], *, dry_run: bool = False
) -> CopyResult:
    """The result a copy of `plan` starts from (applying adds what it moved); for a dry run, all
    there is to say. An image already there in full is `unchanged` either way."""
    job = plan.job
    return CopyResult(
        rule=job.rule,
        source=f"{job.source_repository}@{job.digest}",
        destination=job.destination.label(),
        digest=job.digest,
        status=("planned" if dry_run else "copied") if plan.changes else "unchanged",
        protocol=protocol,
        blobs_skipped=sum(1 for b in plan.blobs if b.action == "skip"),
        bytes_skipped=plan.bytes_skipped,
        bytes_planned=plan.bytes_to_copy if dry_run else 0,
        plan=describe_plan(plan),
    )
