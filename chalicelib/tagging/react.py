"""Tagging's reaction to a push event: read the repository, plan, apply, converge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import ImageDetail, RepositoryInfo
from chalicelib.events.models import ImageActionEvent
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.policy.selection import rules_for
from chalicelib.policy.tagging import TaggingRule
from chalicelib.tagging.apply import TaggingResult, apply_tagging_plan
from chalicelib.tagging.plan import TaggingPlan, plan_tags
from chalicelib.tagging.writers import AliasWriters

# A write another writer may have raced is followed by a fresh read; a plan that still differs
# is applied again, this many rounds at most. Beyond that the sweep's reconciler repairs what an
# endless race leaves.
MAX_ROUNDS = 3


def tag_pushed_image(
    registry: Registry,
    rules: list[TaggingRule],
    repository: str,
    digest: str,
    pushed_tag: str | None,
    *,
    now: datetime,
    dry_run: bool = False,
    writers: AliasWriters | None = None,
) -> TaggingResult:
    """Read the repository, plan the tags one push derives, apply them, and converge.

    Read, plan, apply is a race: another invocation may push a higher release, or write its
    older plan over this one, while this one waits in backoff. So after writing, when another
    writer started meanwhile (`writers`, see `chalicelib.tagging.writers`; without it, always),
    the tags are read again (fresh) and planned again; a plan with puts left is applied again.
    The last word is always a plan made from a read that saw every release pushed before it:
    aliases cannot settle on a lower release.
    """
    placeholder = RepositoryInfo(name=repository, arn="", registry_id="", uri="")
    if pushed_tag is None or not rules_for(rules, repository):
        # Nothing can be derived: answer without a single ECR call.
        plan = plan_tags(rules, placeholder, [], digest, pushed_tag, now)
        return apply_tagging_plan(registry, plan, dry_run=dry_run)
    account, region = registry.registry_id or "", registry.region

    def enter() -> int | None:
        return writers.enter(account, region, repository, now) if writers else None

    def alone(number: int | None) -> bool:
        return writers is not None and writers.alone_since(account, region, repository, number)

    number = enter()
    images = list(registry.iter_images(repository, tag_status="TAGGED"))
    info, plan = _plan(registry, rules, placeholder, images, digest, pushed_tag, now)
    result = apply_tagging_plan(registry, plan, dry_run=dry_run)
    rounds = 1
    while not dry_run and result.tags_with("applied") and rounds <= MAX_ROUNDS:
        if alone(number):
            break
        number = enter()
        images = list(registry.iter_images(repository, tag_status="TAGGED", fresh=True))
        info, plan = _plan(registry, rules, info, images, digest, pushed_tag, now)
        if not plan.puts:
            break
        rounds += 1
        count("TagsReplanned")
        again = apply_tagging_plan(registry, plan)
        result = _merge(result, again, rounds)
        if not again.tags_with("applied"):
            break
    return result


def _plan(
    registry: Registry,
    rules: list[TaggingRule],
    info: RepositoryInfo,
    images: list[ImageDetail],
    digest: str,
    pushed_tag: str,
    now: datetime,
) -> tuple[RepositoryInfo, TaggingPlan]:
    """Plan; the repository is described only when a tag would move, which is the only time
    its tag mutability matters (a new tag may be put in any repository)."""
    plan = plan_tags(rules, info, images, digest, pushed_tag, now)
    if not info.arn and any(d.current_digest is not None for d in plan.puts):
        info = registry.describe_repository(info.name)
        plan = plan_tags(rules, info, images, digest, pushed_tag, now)
    return info, plan


def _merge(first: TaggingResult, again: TaggingResult, rounds: int) -> TaggingResult:
    """The outcome of each tag after the last round that touched it."""
    latest = {t.tag: t for t in again.tags if t.outcome != "unchanged"}
    tags = [latest.pop(t.tag, t) for t in first.tags] + list(latest.values())
    applied = ", ".join(again.tags_with("applied")) or "nothing"
    note = f"round {rounds}: planned again after a fresh read ({applied} applied)"
    return first.model_copy(update={"tags": tags, "notes": [*first.notes, note]})


def react_to_push(event: ImageActionEvent, now: datetime) -> dict[str, Any] | None:
    """The `on_ecr_event` reaction to a pushed image: the tags the policy's rules give it."""

    detail = event.detail
    policy = current_policy().policy
    rules = policy.tagging_rules(detail.repository_name)
    if not rules:
        return None
    result = tag_pushed_image(
        registries.registry(event.account, event.region),
        rules,
        detail.repository_name,
        str(detail.image_digest),
        detail.image_tag,
        now=now,
        dry_run=dry_run(policy),
        writers=AliasWriters(get_settings().sweep_table),
    )
    summary = result.model_dump(mode="json")
    for outcome in ("applied", "blocked", "unchanged", "planned"):
        n = len(result.tags_with(outcome))
        if n:
            count(f"Tags{outcome.capitalize()}", n)
    logger().info("tagging done", extra={"tagging": summary})
    return summary
