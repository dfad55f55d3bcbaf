"""The `retention:` section of the policy (`chalicelib.lifecycle.compile` compiles its rules to
native ECR lifecycle policies: keep them stable)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.policy.selection import RepositoryRule, rules_for


class _Rule(RepositoryRule):
    dry_run: bool = Field(
        default=False, description="Plan this rule's deletions but never carry them out."
    )
    description: str | None = Field(default=None, description="Shown in every reason it gives.")


class KeepNewest(_Rule):
    """Keep the newest `count` images (by push time) with a tag matching `tags`.

    The older ones matching `tags` are deleted unless `expire_rest` is false (or something else
    keeps them). Like ECR's `imageCountMoreThan` on tagged images.
    """

    kind: Literal["keep_newest"] = "keep_newest"
    tags: str = Field(default="*", description="Glob on tags (`*` is any run of characters).")
    count: int = Field(ge=0, description="How many of the newest matching images to keep.")
    expire_rest: bool = Field(default=True, description="Delete matching images beyond `count`.")


class ExpireUntagged(_Rule):
    """Delete untagged images pushed more than `older_than_days` days ago."""

    kind: Literal["expire_untagged"] = "expire_untagged"
    older_than_days: int = Field(ge=0)


class ExpireTagged(_Rule):
    """Delete images with a tag matching `tags` pushed more than `older_than_days` days ago."""

    kind: Literal["expire_tagged"] = "expire_tagged"
    tags: str = Field(description="Glob on tags, e.g. `pr-*`.")
    older_than_days: int = Field(ge=0)


class KeepSemver(_Rule):
    """Keep the images holding the highest `count` semver releases (tags matching `tags`)."""

    kind: Literal["keep_semver"] = "keep_semver"
    count: int = Field(ge=0)
    tags: str = Field(default="*", description="Only tags matching this glob count as releases.")
    prereleases: bool = Field(default=False, description="Count 1.2.0-rc.1 as a release.")


class AlwaysKeep(_Rule):
    """Never delete an image with a tag matching `tags`."""

    kind: Literal["always_keep"] = "always_keep"
    tags: str = Field(description="Glob on tags, e.g. `release-*` or `latest`.")


RetentionRule = Annotated[
    KeepNewest | ExpireUntagged | ExpireTagged | KeepSemver | AlwaysKeep,
    Field(discriminator="kind"),
]


class OperatorInUse(BaseModel):
    """Images in use by runtimes the service cannot see (EKS, on-premises): one reference a line
    (`repo:tag`, `repo@sha256:…` or a full image URI)."""

    model_config = ConfigDict(extra="forbid")

    ssm_parameter: str | None = Field(default=None, description="SSM parameter name.")
    file: str | None = Field(default=None, description="A file path (packaged or local).")


class InUseSettings(BaseModel):
    """Where to look for images in use; an image in use is never deleted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ecs: bool = Field(default=True, description="Running ECS tasks and services' definitions.")
    task_definition_revisions: int = Field(
        default=5, ge=0, description="Also protect the latest N revisions of each task family."
    )
    lambda_functions: bool = Field(
        default=True, alias="lambda", description="Lambda functions' image URIs."
    )
    operator: OperatorInUse = Field(default_factory=OperatorInUse)
    gate_promoted_days: int = Field(
        default=0, ge=0, description="Protect images the gate promoted within N days (0: off)."
    )


class RetentionSettings(BaseModel):
    """The `retention:` section of the policy."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RetentionRule] = Field(default_factory=list)
    dry_run: bool = Field(default=False, description="Plan every deletion, carry out none.")
    max_deletions: int = Field(
        default=1000, ge=0, description="Most images (digests) one run may delete."
    )
    max_deletion_share: float = Field(
        default=0.5, gt=0, le=1, description="Most of a repository one run may delete (0-1]."
    )
    on_cap: Literal["stop", "oldest_first"] = Field(
        default="stop",
        description="Over the cap: `stop` deletes nothing; `oldest_first` deletes up to the cap.",
    )
    grace_period_days: float = Field(
        default=0, ge=0, description="Delete only this long after an image was first marked."
    )
    in_use: InUseSettings = Field(default_factory=InUseSettings)

    def rules_for(self, repository: str) -> list[RetentionRule]:
        return rules_for(self.rules, repository)
