"""Carries a tagging plan out through the ECR gateway: put-image with the exact manifest bytes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from chalicelib.ecr.errors import TagImmutable
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import Manifest, short_digest
from chalicelib.tagging.plan import Action, TagDecision, TaggingPlan

Outcome = Literal["applied", "unchanged", "blocked", "planned"]


class TagResult(BaseModel):
    tag: str
    digest: str
    current_digest: str | None = None
    action: Action
    outcome: Outcome
    reason: str


class TaggingResult(BaseModel):
    repository: str
    digest: str
    pushed_tag: str | None
    dry_run: bool = False
    tags: list[TagResult] = []
    notes: list[str] = []

    def tags_with(self, outcome: Outcome) -> list[str]:
        return [t.tag for t in self.tags if t.outcome == outcome]


def apply_tagging_plan(
    registry: Registry, plan: TaggingPlan, *, dry_run: bool = False
) -> TaggingResult:
    """Carry out the plan's puts: one batch-get-image for all of them, one put-image per tag.

    The batch-get also checks each tag against its target, so a tag already there (a plan
    applied twice, or a race won by someone else) costs no put-image. A tag made immutable
    meanwhile comes back `blocked`, never retried; transient errors propagate, so the
    invocation is retried.
    """
    result = TaggingResult(
        repository=plan.repository,
        digest=plan.digest,
        pushed_tag=plan.pushed_tag,
        dry_run=dry_run,
        notes=list(plan.notes),
    )

    def record(decision: TagDecision, outcome: Outcome, reason: str | None = None) -> None:
        result.tags.append(
            TagResult(
                tag=decision.tag,
                digest=decision.digest,
                current_digest=decision.current_digest,
                action=decision.action,
                outcome=outcome,
                reason=reason or decision.reason,
            )
        )

    if dry_run:
        for decision in plan.decisions:
            record(decision, "planned")
        return result

    manifests, already = _fetch(registry, plan.repository, plan.puts) if plan.puts else ({}, set())

    for decision in plan.decisions:
        if decision.action == "keep":
            record(decision, "unchanged")
            continue
        if decision.action == "blocked":
            record(decision, "blocked")
            continue
        manifest = manifests.get(decision.digest)
        if manifest is None:
            record(
                decision,
                "blocked",
                f"blocked: {short_digest(decision.digest)} is no longer in the repository",
            )
            continue
        if (decision.digest, decision.tag) in already:
            record(
                decision,
                "unchanged",
                f"{decision.tag} already points at {short_digest(decision.digest)}",
            )
            continue
        try:
            outcome = registry.put_manifest(plan.repository, manifest, decision.tag)
        except TagImmutable as error:
            record(
                decision,
                "blocked",
                f"blocked: {error.message or error.code} (wanted {decision.reason})",
            )
            continue
        record(decision, "applied" if outcome.status == "created" else "unchanged")
    return result


def _fetch(
    registry: Registry, repository: str, puts: list[TagDecision]
) -> tuple[dict[str, Manifest], set[tuple[str, str]]]:
    """The target manifests, and which (digest, tag) pairs already hold, in one batch-get-image.

    Each tag is asked for together with its target digest: ECR answers a pair whose tag is
    elsewhere with an ImageTagDoesNotMatchDigest failure instead of fetching (and recording a
    pull of) the image the tag is on now.
    """
    digests = list(dict.fromkeys(d.digest for d in puts))
    ids = [{"imageDigest": digest} for digest in digests]
    ids += [{"imageDigest": d.digest, "imageTag": d.tag} for d in puts]
    found, failures = registry.get_manifests(repository, ids)
    manifests = {m.digest: m for m in found}
    failed = {
        (f.get("imageId", {}).get("imageDigest"), f.get("imageId", {}).get("imageTag"))
        for f in failures
    }
    failed_tags = {tag for _, tag in failed}
    # A failure that does not echo the digest is read as "tag not there": an extra put is
    # harmless (ECR answers "already exists"), a skipped one is not.
    already = {
        (d.digest, d.tag)
        for d in puts
        if d.digest in manifests and (d.digest, d.tag) not in failed and d.tag not in failed_tags
    }
    return manifests, already
