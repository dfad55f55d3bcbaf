"""The `replication:` section of the policy: which images go where (repositories, regions,
accounts), selected by repository glob and by tag glob, regex or semver range."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.ecr.models import TagMutability
from chalicelib.policy.selection import matches_any
from chalicelib.policy.tag_filter import TagFilter

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


Trigger = Literal["push", "backfill", "gate"]


class RepositorySettings(BaseModel):
    """Settings of a destination repository the copy has to create."""

    model_config = ConfigDict(extra="forbid")

    tag_mutability: TagMutability = "MUTABLE"
    scan_on_push: bool = False
    tags: dict[str, str] = Field(default_factory=dict, description="Repository resource tags.")


class ReplicationDestination(BaseModel):
    """Where copies go: a repository (template) in a region of an account."""

    model_config = ConfigDict(extra="forbid")

    repository: str = Field(
        default="{repository}",
        description="Destination repository name: {repository} (source name), {name} (its last "
        "path segment), {rule}. E.g. `mirror/{repository}`.",
    )
    region: str | None = Field(default=None, description="Default: the source's region.")
    account: str | None = Field(
        default=None, pattern=r"^[0-9]{12}$", description="Default: the source's account."
    )
    role_arn: str | None = Field(
        default=None,
        description="Role assumed (STS) to write to another account. Default: "
        "arn:aws:iam::<account>:role/ecr-steward-replication when `account` is another account.",
    )
    create: RepositorySettings = Field(default_factory=RepositorySettings)

    @field_validator("repository")
    @classmethod
    def _template_renders(cls, value: str) -> str:
        rendered = render_repository(value, "team/app", "rule")
        if not re.fullmatch(
            r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*", rendered
        ):
            raise ValueError(f"{value!r} renders {rendered!r}, not a valid ECR repository name")
        return value

    def account_for(self, source_account: str) -> str:
        return self.account or source_account

    def role_for(self, source_account: str) -> str | None:
        account = self.account_for(source_account)
        if self.role_arn or account == source_account:
            return self.role_arn
        return f"arn:aws:iam::{account}:role/ecr-steward-replication"


class ReplicationRule(TagFilter):
    """One `replication:` rule: which images to copy, where to, and when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Names the rule in the CLI and records.")
    repositories: list[str] = Field(min_length=1, description="Source repository globs.")
    triggers: list[Trigger] = Field(
        default_factory=lambda: list[Trigger](["push", "backfill"]),
        description="push: on each push; gate: when the scan gate passes the image; backfill: "
        "`steward replicate --rule NAME` copies what is already there.",
    )
    delete_sync: bool = Field(
        default=False,
        description="A delete at the source removes the copy, only where this rule made it.",
    )
    destinations: list[ReplicationDestination] = Field(min_length=1)

    @model_validator(mode="after")
    def _triggers_exclude_each_other(self) -> ReplicationRule:
        if "push" in self.triggers and "gate" in self.triggers:
            raise ValueError("`push` and `gate` exclude each other: gate waits for the scan")
        return self

    def selects_repository(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)


def _unique_names(rules: list[ReplicationRule]) -> list[ReplicationRule]:
    names = [rule.name for rule in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"rule names must be unique: {', '.join(duplicated)}")
    return rules


ReplicationRules = Annotated[list[ReplicationRule], AfterValidator(_unique_names)]


def render_repository(template: str, repository: str, rule: str) -> str:
    return template.format(repository=repository, name=repository.rsplit("/", 1)[-1], rule=rule)
