"""Replication's reactions: a push or a gate pass queues copy jobs; a delete syncs the copies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.errors import (
    ImageNotFound,
)
from chalicelib.ecr.gateway import Registry
from chalicelib.events.models import GateDecisionEvent, ImageActionEvent
from chalicelib.kernel.observability import count, logger
from chalicelib.oci.referrers import cosign_subject
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.policy.replication import ReplicationRule, Trigger
from chalicelib.replication.jobs import CopyJob, enqueue, jobs_for


def _rules(trigger: Trigger, repository: str) -> list[ReplicationRule]:

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

    rules = _rules(trigger, repository)
    if not rules:
        return []
    registry = registries.registry(account, region)
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


def react_to_push(event: ImageActionEvent, now: datetime) -> dict[str, Any] | None:
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


def react_to_delete(event: ImageActionEvent, now: datetime) -> dict[str, Any] | None:
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


def react_to_gate_decision(event: GateDecisionEvent, now: datetime) -> dict[str, Any] | None:
    """`steward.gate` / `Steward Gate Decision`: a passed image is copied by `gate` rules."""
    detail = event.detail
    if detail.decision != "pass" or not _rules("gate", detail.repository_name):
        return None
    jobs = _copy_jobs_for_image(
        "gate", event.account, event.region, detail.repository_name, detail.image_digest, None
    )
    return _queue(jobs, "gate")
