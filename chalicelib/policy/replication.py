"""The `replication:` section of the policy: which images go where (repositories, regions,
accounts), selected by repository glob and by tag glob, regex or semver range."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.ecr.models import TagMutability
from chalicelib.oci.referrers import cosign_subject
from chalicelib.oci.versions import semver_clauses, semver_matches
from chalicelib.policy.selection import matches_any

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


class ReplicationRule(BaseModel):
    """One `replication:` rule: which images to copy, where to, and when."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Names the rule in the CLI and records.")
    repositories: list[str] = Field(min_length=1, description="Source repository globs.")
    tags: str | None = Field(default=None, description="Glob on the tag, e.g. `release-*`.")
    tag_regex: str | None = Field(default=None, description="Regex on the whole tag.")
    tag_semver: str | None = Field(
        default=None, description="Semver range on version tags, e.g. `>=1.2.0,<2.0.0`."
    )
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

    @field_validator("tag_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regex: {error}") from None
        return value

    @field_validator("tag_semver")
    @classmethod
    def _range_parses(cls, value: str | None) -> str | None:
        if value is not None:
            semver_clauses(value)
        return value

    @model_validator(mode="after")
    def _one_tag_filter(self) -> ReplicationRule:
        given = [f for f in ("tags", "tag_regex", "tag_semver") if getattr(self, f) is not None]
        if len(given) > 1:
            raise ValueError(f"set one tag filter, not {' and '.join(given)}")
        if "push" in self.triggers and "gate" in self.triggers:
            raise ValueError("`push` and `gate` exclude each other: gate waits for the scan")
        return self

    @property
    def has_tag_filter(self) -> bool:
        return any(f is not None for f in (self.tags, self.tag_regex, self.tag_semver))

    def selects_repository(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)

    def selects_tag(self, tag: str) -> bool:
        """Whether a tag is one this rule copies (cosign sidecars follow their subject instead)."""
        if cosign_subject(tag):
            return False
        if self.tags is not None:
            return fnmatchcase(tag, self.tags)
        if self.tag_regex is not None:
            return re.fullmatch(self.tag_regex, tag) is not None
        if self.tag_semver is not None:
            return semver_matches(self.tag_semver, tag)
        return True


def _unique_names(rules: list[ReplicationRule]) -> list[ReplicationRule]:
    names = [rule.name for rule in rules]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"rule names must be unique: {', '.join(duplicated)}")
    return rules


ReplicationRules = Annotated[list[ReplicationRule], AfterValidator(_unique_names)]


def render_repository(template: str, repository: str, rule: str) -> str:
    return template.format(repository=repository, name=repository.rsplit("/", 1)[-1], rule=rule)
