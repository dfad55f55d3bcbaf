"""Deletes a retention plan through the gateway: batches of 100, an index (or a signature's subject)
always in an earlier batch than its children (referrers), ECR's per-image `failures` honoured, and
never more than the cap."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import digest_hex
from chalicelib.retention.plan import RetentionPlan

# Per-image failures that mean "already gone": the goal is reached.
GONE_CODES = frozenset({"ImageNotFound"})


class DeleteFailure(BaseModel):
    digest: str
    code: str
    reason: str


class RetentionResult(BaseModel):
    repository: str
    dry_run: bool = False
    images: int = 0
    planned: int = 0  # delete decisions, deferred or not
    deleted: list[str] = []
    failed: list[DeleteFailure] = []
    skipped: list[DeleteFailure] = []  # not attempted: an index or subject before it failed
    deferred: int = 0
    batches: int = 0
    capped: str | None = None
    notes: list[str] = []


def deletion_batches(plan: RetentionPlan, size: int = 100) -> list[list[str]]:
    """The plan's deletions in batches of `size`, each image in a later batch than every index
    or subject it goes with (ECR refuses to delete a child its index still lists, and a
    signature must outlive a subject whose deletion failed)."""
    due = {d.digest: d for d in plan.deletions}
    parents = {
        d: inside
        for d, ps in plan.after.items()
        if d in due and (inside := [p for p in ps if p in due])
    }
    level: dict[str, int] = {}

    def depth(digest: str) -> int:
        if digest not in parents:
            return 0
        if digest not in level:
            level[digest] = 0  # content addressing rules out cycles; this guards bad data
            level[digest] = 1 + max(depth(p) for p in parents[digest])
        return level[digest]

    # Deletions come in push order from the planner: a stable sort on depth keeps it.
    ordered = sorted(due, key=depth)
    batches: list[list[str]] = []
    current: list[str] = []
    in_current: set[str] = set()
    for digest in ordered:
        if len(current) == size or any(p in in_current for p in parents.get(digest, ())):
            batches.append(current)
            current, in_current = [], set()
        current.append(digest)
        in_current.add(digest)
    if current:
        batches.append(current)
    return batches


def apply_retention_plan(registry: Registry, plan: RetentionPlan) -> RetentionResult:
    """Delete the plan's deletions, parents first, and report every image's outcome."""
    result = RetentionResult(
        repository=plan.repository,
        images=plan.images,
        planned=sum(1 for d in plan.decisions if d.action == "delete"),
        deferred=sum(1 for d in plan.decisions if d.action == "delete" and d.deferred),
        capped=plan.capped,
        notes=list(plan.notes),
    )
    if len(plan.deletions) > plan.cap:
        # Only a plan edited after planning can get here; refuse it rather than over-delete.
        raise ValueError(f"the plan deletes {len(plan.deletions)} images, over its cap {plan.cap}")
    not_deleted: set[str] = set()
    for batch in deletion_batches(plan):
        attempt = []
        for digest in batch:
            blocker = next((p for p in plan.after.get(digest, ()) if p in not_deleted), None)
            if blocker is not None:
                not_deleted.add(digest)
                result.skipped.append(
                    DeleteFailure(
                        digest=digest,
                        code="ParentNotDeleted",
                        reason=f"kept: {digest_hex(blocker)[:12]}, which it goes with, "
                        "was not deleted",
                    )
                )
            else:
                attempt.append(digest)
        if not attempt:
            continue
        outcome = registry.delete_images(plan.repository, [{"imageDigest": d} for d in attempt])
        result.batches += 1
        failed: dict[str, dict[str, Any]] = {}
        for entry in outcome.failures:
            failed_digest = entry.get("imageId", {}).get("imageDigest")
            if failed_digest:
                failed[failed_digest] = entry
        for digest in attempt:
            failure = failed.get(digest)
            if failure is None or failure.get("failureCode") in GONE_CODES:
                result.deleted.append(digest)
                continue
            not_deleted.add(digest)
            result.failed.append(
                DeleteFailure(
                    digest=digest,
                    code=str(failure.get("failureCode", "Unknown")),
                    reason=str(failure.get("failureReason", "")),
                )
            )
    return result
