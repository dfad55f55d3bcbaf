"""What the registry holds: each repository's settings, read through the gateway."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from chalicelib.ecr.models import RepositoryInfo
from chalicelib.kernel.clock import as_utc
from chalicelib.policy.governance import GovernancePolicy

if TYPE_CHECKING:
    from chalicelib.ecr.gateway import Registry


class RepositoryState(BaseModel):
    """One repository as read: describe-repositories plus what the rules manage. A field is
    read only when a rule manages it (`None` = not read, or no policy where read)."""

    info: RepositoryInfo
    repository_policy: str | None = None
    lifecycle_policy: str | None = None
    tags: dict[str, str] | None = None
    has_images: bool | None = None


def read_repository(
    registry: Registry,
    section: GovernancePolicy,
    info: RepositoryInfo,
    now: datetime,
    *,
    settings: bool = True,
) -> RepositoryState:
    """Read what the rules manage for one repository, and nothing else (each read is a call)."""
    state = RepositoryState(info=info)
    desired = section.desired(info.name) if settings else None
    if desired is not None:
        if desired.lifecycle_policy is not None:
            state.lifecycle_policy = registry.get_lifecycle_policy(info.name)
        if desired.repository_policy is not None:
            state.repository_policy = registry.get_repository_policy(info.name)
        if desired.tags or desired.remove_undeclared_tags:
            state.tags = registry.list_repository_tags(info.arn)
    found = section.ephemeral_rule(info.name)
    if found is not None and info.created_at is not None:
        _, rule = found
        if as_utc(now) >= as_utc(info.created_at) + rule.lifetime and not rule.force:
            state.has_images = registry.has_images(info.name)
    return state


def read_registry(
    registry: Registry, section: GovernancePolicy, now: datetime, *, settings: bool = True
) -> list[RepositoryState]:
    """Every repository in the section's scope: one paged describe-repositories, then per
    repository only the reads its rules need."""
    return [
        read_repository(registry, section, info, now, settings=settings)
        for info in registry.iter_repositories()
        if section.in_scope(info.name)
    ]
