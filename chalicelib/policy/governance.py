"""The `governance:` section of the policy: repository settings by glob, declared and ephemeral
repositories."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.ecr.lifecycle_policy import parse_policy
from chalicelib.oci.names import REPOSITORY_NAME
from chalicelib.policy.selection import RepositoryRule, matches_any

if TYPE_CHECKING:
    pass


# ECR's own limits: 1..5 exclusion filters of this grammar, policy text sizes, 50 tags.
EXCLUSION_FILTER = re.compile(r"[0-9a-zA-Z._*-]{1,128}")


MAX_EXCLUSION_FILTERS = 5


REPOSITORY_POLICY_TEXT_LIMIT = 10_240


MAX_RESOURCE_TAGS = 50


TTL = re.compile(r"(?P<n>\d+)(?P<unit>[mhd])")


TTL_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


# "absent" in the policy: the repository must have no such policy (it is deleted).
ABSENT = "absent"


EcrMutability = Literal[
    "MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"
]


class Encryption(BaseModel):
    """How a repository is encrypted. ECR sets this at creation only: drift is reported."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["AES256", "KMS", "KMS_DSSE"] = Field(
        default="AES256", description="AES256 (S3-managed keys), KMS or KMS_DSSE."
    )
    kms_key: str | None = Field(
        default=None,
        description="KMS key ARN or id; with KMS types only. Unset: any key (AWS-managed).",
    )

    @model_validator(mode="after")
    def _key_needs_kms(self) -> Encryption:
        if self.kms_key and self.type == "AES256":
            raise ValueError("kms_key needs type KMS or KMS_DSSE")
        return self

    def as_ecr(self) -> dict[str, str]:
        config: dict[str, str] = {"encryptionType": self.type}
        if self.kms_key:
            config["kmsKey"] = self.kms_key
        return config


class GovernanceRule(RepositoryRule):
    """Desired settings for the repositories matching `repositories`. An unset field is not
    managed. Rules apply in order: for each field the last rule that sets it wins; tags merge."""

    scan_on_push: bool | None = Field(default=None, description="Basic scanning on push.")
    tag_mutability: EcrMutability | None = Field(
        default=None,
        description="MUTABLE or IMMUTABLE; with `mutability_exclusions` ECR's *_WITH_EXCLUSION.",
    )
    mutability_exclusions: list[str] | None = Field(
        default=None,
        description="Wildcard tag filters (1-5, e.g. `latest`, `dev-*`) that are the exception "
        "to `tag_mutability`.",
    )
    encryption: Encryption | None = Field(
        default=None, description="Used when a repository is created; drift is reported only."
    )
    lifecycle_policy: dict[str, Any] | Literal["absent"] | None = Field(
        default=None,
        description="ECR lifecycle policy document (`{rules: [...]}`), or `absent`.",
    )
    repository_policy: dict[str, Any] | Literal["absent"] | None = Field(
        default=None,
        description="Repository policy document (IAM JSON, e.g. cross-account pull), or `absent`.",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Resource tags to ensure.")
    remove_undeclared_tags: bool = Field(
        default=False, description="Also remove resource tags that no matching rule declares."
    )

    @field_validator("repositories")
    @classmethod
    def _globs_not_empty(cls, value: list[str]) -> list[str]:
        # Replaces RepositoryRule's check with a stricter one: a blank glob is refused too.
        if any(not glob.strip() for glob in value):
            raise ValueError("a repository glob cannot be empty")
        return value

    @field_validator("mutability_exclusions")
    @classmethod
    def _filters_valid(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not 1 <= len(value) <= MAX_EXCLUSION_FILTERS:
            raise ValueError(f"ECR takes 1 to {MAX_EXCLUSION_FILTERS} exclusion filters")
        for pattern in value:
            if not EXCLUSION_FILTER.fullmatch(pattern):
                raise ValueError(f"{pattern!r} is not a valid filter: [0-9a-zA-Z._*-]{{1,128}}")
        return value

    @field_validator("lifecycle_policy")
    @classmethod
    def _lifecycle_valid(cls, value: Any) -> Any:
        if isinstance(value, dict):
            validate_lifecycle_policy(value)
        return value

    @field_validator("repository_policy")
    @classmethod
    def _repository_policy_valid(cls, value: Any) -> Any:
        if isinstance(value, dict):
            validate_repository_policy(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags_valid(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_RESOURCE_TAGS:
            raise ValueError(f"ECR allows at most {MAX_RESOURCE_TAGS} tags per repository")
        for key, text in value.items():
            if not 1 <= len(key) <= 128 or len(text) > 256:
                raise ValueError(f"tag {key!r}: keys take 1-128 characters, values up to 256")
        return value

    @model_validator(mode="after")
    def _mutability_consistent(self) -> GovernanceRule:
        if self.mutability_exclusions and self.tag_mutability is None:
            raise ValueError("mutability_exclusions needs tag_mutability")
        if (
            self.tag_mutability
            and self.tag_mutability.endswith("_WITH_EXCLUSION")
            and not self.mutability_exclusions
        ):
            raise ValueError(f"{self.tag_mutability} needs mutability_exclusions")
        return self


class EphemeralRule(BaseModel):
    """Repositories matching `repositories` are deleted once `ttl` has passed since creation."""

    model_config = ConfigDict(extra="forbid")

    repositories: list[str] = Field(min_length=1, description="Repository name globs.")
    ttl: str = Field(description="Time to live from creation: `30m`, `12h`, `7d`.")
    force: bool = Field(
        default=False, description="Delete even when the repository still holds images."
    )

    @field_validator("ttl")
    @classmethod
    def _ttl_valid(cls, value: str) -> str:
        found = TTL.fullmatch(value.strip())
        if not found or int(found["n"]) == 0:
            raise ValueError("ttl must be a positive number with m, h or d, e.g. `7d`")
        return value.strip()

    @property
    def lifetime(self) -> timedelta:
        found = TTL.fullmatch(self.ttl)
        assert found is not None  # validated
        return timedelta(**{TTL_UNITS[found["unit"]]: int(found["n"])})

    def selects(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)


class GovernancePolicy(BaseModel):
    """The `governance:` section of the policy."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(default=False, description="Plan and report governance, change nothing.")
    repositories: list[GovernanceRule] = Field(
        default_factory=list, description="Desired repository settings, by glob."
    )
    declared: list[str] = Field(
        default_factory=list,
        description="Repositories that must exist; created with their settings when missing.",
    )
    ephemeral: list[EphemeralRule] = Field(
        default_factory=list, description="Repositories deleted after a time to live."
    )
    max_repository_deletions: int = Field(
        default=10, ge=0, description="At most this many ephemeral repositories deleted per run."
    )

    @field_validator("declared")
    @classmethod
    def _names_valid(cls, value: list[str]) -> list[str]:
        for name in value:
            if not 2 <= len(name) <= 256 or not REPOSITORY_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid ECR repository name")
        return list(dict.fromkeys(value))

    def desired(self, repository: str) -> DesiredSettings | None:
        """The merged settings for one repository, or None when no rule selects it."""
        merged: DesiredSettings | None = None
        for index, rule in enumerate(self.repositories):
            if not rule.selects(repository):
                continue
            merged = merged or DesiredSettings()
            merged.merge(rule, f"governance.repositories[{index}] ({', '.join(rule.repositories)})")
        return merged

    def ephemeral_rule(self, repository: str) -> tuple[int, EphemeralRule] | None:
        """The first ephemeral rule selecting the repository; declared repositories never are."""
        if repository in self.declared:
            return None
        for index, rule in enumerate(self.ephemeral):
            if rule.selects(repository):
                return index, rule
        return None

    def in_scope(self, repository: str) -> bool:
        return (
            repository in self.declared
            or any(rule.selects(repository) for rule in self.repositories)
            or self.ephemeral_rule(repository) is not None
        )


class DesiredSettings(BaseModel):
    """One repository's settings after merging every rule that selects it, with where each
    value came from (`sources[field]`), so a change can say which rule asked for it."""

    scan_on_push: bool | None = None
    tag_mutability: EcrMutability | None = None
    mutability_exclusions: list[str] = []
    encryption: Encryption | None = None
    lifecycle_policy: dict[str, Any] | Literal["absent"] | None = None
    repository_policy: dict[str, Any] | Literal["absent"] | None = None
    tags: dict[str, str] = {}
    remove_undeclared_tags: bool = False
    sources: dict[str, str] = {}

    def merge(self, rule: GovernanceRule, source: str) -> None:
        for field in (
            "scan_on_push",
            "encryption",
            "lifecycle_policy",
            "repository_policy",
        ):
            value = getattr(rule, field)
            if value is not None:
                setattr(self, field, value)
                self.sources[field] = source
        if rule.tag_mutability is not None:
            self.tag_mutability = rule.tag_mutability
            self.mutability_exclusions = list(rule.mutability_exclusions or [])
            self.sources["tag_mutability"] = source
        if rule.tags:
            self.tags = {**self.tags, **rule.tags}
            self.sources["tags"] = source
        if rule.remove_undeclared_tags:
            self.remove_undeclared_tags = True
            self.sources["tags"] = source

    @property
    def ecr_mutability(self) -> EcrMutability | None:
        """The mode ECR stores: exclusions turn MUTABLE/IMMUTABLE into *_WITH_EXCLUSION."""
        if self.tag_mutability is None:
            return None
        base = self.tag_mutability.removesuffix("_WITH_EXCLUSION")
        return f"{base}_WITH_EXCLUSION" if self.mutability_exclusions else base  # type: ignore[return-value]


def validate_lifecycle_policy(document: dict[str, Any]) -> None:
    """Raise ValueError (LifecyclePolicyError) when ECR would refuse the lifecycle policy: the
    lifecycle model's validation, with ECR's rules, on the text governance would put."""

    parse_policy(policy_text(document))


def validate_repository_policy(document: dict[str, Any]) -> None:
    statements = document.get("Statement")
    if not isinstance(statements, list | dict) or not statements:
        raise ValueError("a repository policy needs a `Statement`")
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError("every statement needs `Effect`: Allow or Deny")
        if "Principal" not in statement and "NotPrincipal" not in statement:
            raise ValueError("a repository policy statement needs a `Principal`")
    if len(policy_text(document)) > REPOSITORY_POLICY_TEXT_LIMIT:
        raise ValueError(f"a repository policy's text is at most {REPOSITORY_POLICY_TEXT_LIMIT}")


def policy_text(document: dict[str, Any]) -> str:
    """The text sent to ECR: compact, keys sorted (limits count characters)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True)
