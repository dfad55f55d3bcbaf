"""On AWS: ECR's own lifecycle preview of a repository."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.ecr.lifecycle_policy import parse_policy

if TYPE_CHECKING:
    from chalicelib.ecr.gateway import Registry
    from chalicelib.ecr.models import LifecyclePreview


def preview_repository(
    registry: Registry, repository: str, policy_text: str | None = None
) -> LifecyclePreview:
    """Ask ECR (or the embedded backend) to preview a policy on a repository.

    Without `policy_text` the repository's own lifecycle policy is previewed.
    """
    if policy_text is not None:
        parse_policy(policy_text)  # refuse locally what ECR would refuse, naming the field
    return registry.lifecycle_preview(repository, policy_text)
