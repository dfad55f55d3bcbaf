"""Retention's sweep task: read, plan, record grace-period marks and apply for one repository."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import ImageDetail, RepositoryInfo
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.oci.manifests import INDEX_MEDIA_TYPES, Manifest
from chalicelib.policy.document import Policy, current_policy
from chalicelib.policy.document import dry_run as policy_dry_run
from chalicelib.policy.retention import RetentionSettings
from chalicelib.retention import inuse
from chalicelib.retention.apply import RetentionResult, apply_retention_plan
from chalicelib.retention.marks import MarkStore
from chalicelib.retention.plan import RetentionPlan, plan_retention


def read_repository(
    registry: Registry, repository: str
) -> tuple[list[ImageDetail], dict[str, Manifest], int]:
    """Every image (describe-images pages) and the manifests of the indexes only.

    Returns (images, index manifests, manifests not readable)."""
    images = list(registry.iter_images(repository))
    index_ids = [{"imageDigest": i.digest} for i in images if i.media_type in INDEX_MEDIA_TYPES]
    found, failures = registry.get_manifests(repository, index_ids) if index_ids else ([], [])
    return images, {m.digest: m for m in found}, len(failures)


def plan_for_repository(
    registry: Registry,
    settings: RetentionSettings,
    repository: RepositoryInfo,
    now: datetime,
    *,
    dry_run: bool = False,
    marks: Mapping[str, datetime] | None = None,
    contents: tuple[list[ImageDetail], dict[str, Manifest], int] | None = None,
) -> RetentionPlan:
    """Read the repository and what is in use, and plan (no deletion, no write).

    `contents` is what `read_repository` returned, to plan several policies on one read."""

    images, manifests, _ = contents or read_repository(registry, repository.name)
    notes: list[str] = []
    index = inuse.in_use_index(settings.in_use)
    notes.extend(index.notes)
    promoted: dict[str, datetime] = {}
    days = settings.in_use.gate_promoted_days
    if days:
        promoted, note = inuse.promoted_since(repository.name, now - timedelta(days=days))
        if note:
            notes.append(note)
    plan = plan_retention(
        settings,
        repository.name,
        images,
        manifests,
        now,
        in_use=index.for_repository(repository.name, repository.uri),
        promoted=promoted,
        marks=marks,
        dry_run=dry_run,
    )
    plan.notes.extend(notes)
    return plan


def retain_repository(
    registry: Registry, repository: RepositoryInfo, now: datetime
) -> dict[str, Any]:
    """The sweep task: plan and apply retention for one repository (see `chalicelib.sweep.jobs`)."""

    policy = current_policy().policy
    settings = policy.retention
    if not settings.rules_for(repository.name):
        return {"skipped": "no retention rule selects this repository"}
    dry_run = policy_dry_run(policy) or settings.dry_run
    store = MarkStore(get_settings().retention_table)
    marks = store.load(repository.name) if settings.grace_period_days else {}
    plan = plan_for_repository(registry, settings, repository, now, dry_run=dry_run, marks=marks)
    if dry_run:
        result = RetentionResult(
            repository=plan.repository,
            dry_run=True,
            images=plan.images,
            planned=sum(1 for d in plan.decisions if d.action == "delete"),
            deferred=sum(1 for d in plan.decisions if d.action == "delete"),
            capped=plan.capped,
            notes=plan.notes,
        )
    else:
        result = apply_retention_plan(registry, plan)
        if settings.grace_period_days:
            _update_marks(store, plan, result, marks, now)
    summary = result.model_dump(mode="json", exclude={"deleted"})
    summary["deleted"] = len(result.deleted)
    count("RetentionImagesDeleted", len(result.deleted))
    count("RetentionImagesDeferred", result.deferred)
    if result.failed:
        count("RetentionDeleteFailures", len(result.failed))
    if result.capped:
        count("RetentionCapped")
    logger().info(
        "retention done",
        extra={
            "retention": summary,
            "deletions": [
                {"digest": d.digest, "tags": d.tags, "reason": d.reason}
                for d in plan.deletions[:200]
            ],
        },
    )
    return summary


def _update_marks(
    store: MarkStore,
    plan: RetentionPlan,
    result: RetentionResult,
    marks: Mapping[str, datetime],
    now: datetime,
) -> None:
    """Remember when each unit was first marked; forget units kept again or gone."""
    marked = plan.marked_units()
    deleted = set(result.deleted)
    store.save(plan.repository, {u: now for u in marked if u not in marks and u not in deleted})
    store.clear(plan.repository, [u for u in marks if u not in marked or u in deleted])


def sweep_scope(policy: Policy, repository: str) -> bool:
    """Whether the sweep should queue this repository for retention."""
    return bool(policy.retention.rules_for(repository))
