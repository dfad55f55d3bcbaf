"""Mirror's pure planner: from a rule and what the upstream holds (tags, the digest each names,
an index's platforms), which images to copy into which ECR repository, with a reason each."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib.oci.manifests import short_digest
from chalicelib.policy.mirror import MirrorRule


class UpstreamImage(BaseModel):
    """One tag of an upstream repository, resolved."""

    repository: str
    tag: str
    digest: str
    platforms: list[str] | None = None  # an index's platforms; None for a single image


class MirrorItem(BaseModel):
    repository: str  # upstream
    digest: str
    tags: list[str]
    destination: str  # ECR repository
    action: Literal["copy", "skip"]
    reason: str
    digest_kept: bool = True


class MirrorPlan(BaseModel):
    rule: str
    upstream: str
    items: list[MirrorItem] = Field(default_factory=list)
    unselected: int = 0  # tags the filters left out

    @property
    def to_copy(self) -> list[MirrorItem]:
        return [i for i in self.items if i.action == "copy"]


def plan_mirror(rule: MirrorRule, images: list[UpstreamImage], all_tags: int) -> MirrorPlan:
    """One item per (repository, digest): every selected tag naming that digest goes with it."""
    plan = MirrorPlan(rule=rule.name, upstream=rule.upstream, unselected=all_tags - len(images))
    grouped: dict[tuple[str, str], list[UpstreamImage]] = {}
    for image in images:
        grouped.setdefault((image.repository, image.digest), []).append(image)
    wanted = set(rule.platforms)
    for (repository, digest), group in grouped.items():
        tags = sorted(i.tag for i in group)
        platforms = group[0].platforms
        item = MirrorItem(
            repository=repository,
            digest=digest,
            tags=tags,
            destination=rule.destination_for(repository),
            action="copy",
            reason=f"tags {', '.join(tags)} selected",
        )
        if wanted and platforms is not None:
            outside = sorted(set(platforms) - wanted)
            if outside:
                note = (
                    f"index {short_digest(digest)} also has {', '.join(outside)}: a copy "
                    "filtered to the rule's platforms would be a new index with another digest"
                )
                if rule.partial_platforms == "skip":
                    item.action, item.reason, item.digest_kept = "skip", note, False
                else:
                    item.reason = f"{item.reason}; {note}, so every platform is copied"
            elif not set(platforms) & wanted:
                item.action, item.reason = "skip", "no platform of the index is wanted"
        elif wanted and platforms is None:
            item.reason += " (a single-platform image: the platform filter applies to indexes)"
        plan.items.append(item)
    return plan


def describe_mirror_plan(plan: MirrorPlan) -> list[str]:
    return [
        f"{i.repository}@{short_digest(i.digest)} ({', '.join(i.tags)}) → {i.destination}: "
        f"{i.action} ({i.reason})"
        for i in plan.items
    ]
