"""Tagging's reaction to a push event: read the repository, plan, apply."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.events.models import ImageActionEvent
from chalicelib.kernel.observability import count, logger
from chalicelib.policy import current_policy, dry_run
from chalicelib.policy.selection import rules_for
from chalicelib.policy.tagging import TaggingRule
from chalicelib.tagging.apply import TaggingResult, apply_tagging_plan
from chalicelib.tagging.plan import plan_tags


def tag_pushed_image(
    registry: Registry,
    rules: list[TaggingRule],
    repository: str,
    digest: str,
    pushed_tag: str | None,
    *,
    now: datetime,
    dry_run: bool = False,
) -> TaggingResult:
    """Read the repository, plan the tags one push derives, and apply them."""
    if pushed_tag is None or not rules_for(rules, repository):
        # Nothing can be derived: answer without a single ECR call.
        info = RepositoryInfo(name=repository, arn="", registry_id="", uri="")
        plan = plan_tags(rules, info, [], digest, pushed_tag, now)
        return apply_tagging_plan(registry, plan, dry_run=dry_run)
    info = registry.describe_repository(repository)
    images = list(registry.iter_images(repository, tag_status="TAGGED"))
    plan = plan_tags(rules, info, images, digest, pushed_tag, now)
    return apply_tagging_plan(registry, plan, dry_run=dry_run)


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
    )
    summary = result.model_dump(mode="json")
    for outcome in ("applied", "blocked", "unchanged", "planned"):
        n = len(result.tags_with(outcome))
        if n:
            count(f"Tags{outcome.capitalize()}", n)
    logger().info("tagging done", extra={"tagging": summary})
    return summary
