"""Tagging's reconciler: version aliases and `latest` as the registry itself says they should be.

An event can be lost, raced or dead-lettered; the sweep then repairs its aliases within one
period. The desired state is computed from the repository alone: for every release line
(MAJOR.MINOR) the planner plans a push of its highest release, which places `MAJOR.MINOR`,
`MAJOR` and `latest` on the highest release of their lines. Only aliases are repaired here:
templates and copies belong to the push that made them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from semver import Version

from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import ImageDetail, RepositoryInfo
from chalicelib.oci.versions import parse_version
from chalicelib.policy.tagging import TaggingRule
from chalicelib.tagging.apply import TaggingResult, apply_tagging_plan
from chalicelib.tagging.plan import TagDecision, TaggingPlan, plan_tags
from chalicelib.tagging.writers import AliasWriters

ALIAS_KINDS = frozenset({"minor", "major", "latest"})
# Rounds of read, plan and write when other writers keep racing; the next sweep does the rest.
MAX_ROUNDS = 3


def reconcile_aliases(
    registry: Registry,
    rules: list[TaggingRule],
    repository: RepositoryInfo,
    now: datetime,
    *,
    dry_run: bool = False,
    hold: Iterable[str] = (),
    writers: AliasWriters | None = None,
) -> TaggingResult:
    """Put every alias and `latest` back on the highest release of its line.

    `hold`: digests no alias is moved onto (the gate quarantined them and removed their tags,
    which the sweep must not undo). `writers`: as for a push, a write that a push's reaction
    may have raced is checked by reading again (`chalicelib.tagging.writers`)."""
    account, region = registry.registry_id or "", registry.region
    rounds = 0
    while True:
        number = writers.enter(account, region, repository.name, now) if writers else None
        images = list(registry.iter_images(repository.name, tag_status="TAGGED", fresh=rounds > 0))
        plan = plan_aliases(rules, repository, images, now, hold=set(hold))
        result = apply_tagging_plan(registry, plan, dry_run=dry_run)
        rounds += 1
        raced = not (
            writers is not None and writers.alone_since(account, region, repository.name, number)
        )
        if dry_run or not result.tags_with("applied") or not raced or rounds >= MAX_ROUNDS:
            return result


def plan_aliases(
    rules: list[TaggingRule],
    repository: RepositoryInfo,
    images: list[ImageDetail],
    now: datetime,
    *,
    hold: set[str] | None = None,
) -> TaggingPlan:
    """Pure: the alias decisions of the highest release of every line, one per alias."""
    plan = TaggingPlan(repository=repository.name, digest="", pushed_tag=None)
    chosen: dict[str, TagDecision] = {}
    for tag, digest in _line_tops(rules, images):
        for decision in plan_tags(rules, repository, images, digest, tag, now).decisions:
            if decision.kind not in ALIAS_KINDS or decision.tag in chosen:
                continue
            if decision.action == "put" and hold and decision.digest in hold:
                continue
            chosen[decision.tag] = decision
            plan.decisions.append(decision)
    return plan


def _line_tops(rules: list[TaggingRule], images: list[ImageDetail]) -> list[tuple[str, str]]:
    """(tag, digest) of the highest release of every (prefix, MAJOR, MINOR) line some rule with
    aliases selects, highest line first."""
    tops: dict[tuple[str, int, int], tuple[Version, str, str]] = {}
    alias_rules = [r for r in rules if r.semver_aliases or r.latest]
    for image in sorted(images, key=lambda i: i.digest):  # ties resolve the same way each time
        for tag in image.tags:
            parsed = parse_version(tag)
            if parsed is None:
                continue
            prefix, version = parsed
            if not any(
                r.match_tag(tag) is not None and (r.prerelease_aliases or not version.prerelease)
                for r in alias_rules
            ):
                continue
            line = (prefix, version.major, version.minor)
            best = tops.get(line)
            if best is None or version > best[0] or (version == best[0] and tag < best[1]):
                tops[line] = (version, tag, image.digest)
    ordered = sorted(tops.values(), key=lambda top: top[0], reverse=True)
    return [(tag, digest) for _, tag, digest in ordered]
