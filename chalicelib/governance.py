"""Governance: repository settings kept as the policy declares them.

The policy's `governance:` section says, per repository glob, what a repository's settings must be
(scan on push, tag immutability with exclusion filters, encryption, lifecycle policy, repository
policy, resource tags), which repositories must exist (`declared`), and which are ephemeral and
deleted after a time to live.

- `plan_governance` is pure: from the section, what the registry holds now (`RepositoryState`s,
  read by `read_registry`/`read_repository`) and `now`, it returns a `GovernancePlan` with one
  `Change` per managed setting of each repository: the ECR operation that fixes it, `keep` when it
  is already right, or `report` for drift ECR cannot fix (encryption is fixed at creation).
  Policy documents are compared by meaning, not text (key and statement order, whitespace, a
  one-element list against its element).
- `apply_governance_plan` carries the plan out through the registry gateway; a dry run returns the
  plan with every change `planned`.
- `reconcile` reads, plans and applies for a whole registry (CLI, the hourly schedule);
  `repository_task` does the settings of one repository (the sweep's per-repository step).

Everything converges on the registry's current state, so a second run after a successful one plans
no change and makes no mutating call.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib.registry import RepositoryInfo
from chalicelib.selection import RepositoryRule, matches_any

if TYPE_CHECKING:
    from chalicelib.registry import Registry

# ECR's repository-name grammar (CreateRepository's model pattern).
REPOSITORY_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
# ECR's own limits: 1..5 exclusion filters of this grammar, policy text sizes, 50 tags.
EXCLUSION_FILTER = re.compile(r"[0-9a-zA-Z._*-]{1,128}")
MAX_EXCLUSION_FILTERS = 5
REPOSITORY_POLICY_TEXT_LIMIT = 10_240
MAX_RESOURCE_TAGS = 50
TTL = re.compile(r"(?P<n>\d+)(?P<unit>[mhd])")
TTL_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

# "absent" in the policy: the repository must have no such policy (it is deleted).
ABSENT = "absent"

Setting = Literal[
    "repository",
    "scan_on_push",
    "tag_mutability",
    "encryption",
    "lifecycle_policy",
    "repository_policy",
    "tags",
]
# The ECR operation that fixes a setting; `report` = drift ECR cannot fix; `keep` = in sync.
Operation = Literal[
    "create_repository",
    "delete_repository",
    "put_image_scanning_configuration",
    "put_image_tag_mutability",
    "put_lifecycle_policy",
    "delete_lifecycle_policy",
    "set_repository_policy",
    "delete_repository_policy",
    "tag_resource",
    "untag_resource",
    "report",
    "keep",
]
Outcome = Literal["applied", "unchanged", "planned", "reported", "kept", "failed"]
EcrMutability = Literal[
    "MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"
]


# --- the policy section ---------------------------------------------------------------------


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


# --- policy documents ---------------------------------------------------------------------------


def validate_lifecycle_policy(document: dict[str, Any]) -> None:
    """Raise ValueError (LifecyclePolicyError) when ECR would refuse the lifecycle policy: the
    lifecycle model's validation, with ECR's rules, on the text governance would put."""
    from chalicelib.lifecycle import parse_policy

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


def canonical_iam(document: Any) -> Any:
    """An IAM document in a form where equal meaning is equal value: every list in IAM's grammar
    is a set (statements, actions, principals, resources, condition values), and a one-element
    list means its element."""
    if isinstance(document, dict):
        return {key: canonical_iam(value) for key, value in document.items()}
    if isinstance(document, list):
        unique = sorted({json.dumps(canonical_iam(v), sort_keys=True) for v in document})
        items = [json.loads(text) for text in unique]
        return items[0] if len(items) == 1 else items
    return document


def canonical_lifecycle(document: Any) -> Any:
    """A lifecycle policy as the lifecycle model reads it (defaults and spelling normalised),
    with rules in priority order and tag lists as sets (ECR ANDs them)."""
    from chalicelib.lifecycle import LifecyclePolicyError, parse_policy

    if not isinstance(document, dict):
        return document
    try:
        data = parse_policy(document).model_dump(by_alias=True, exclude_none=True)
    except LifecyclePolicyError:
        data = document  # not a policy ECR would take: compare as it is
    rules = []
    for rule in data.get("rules", []):
        if isinstance(rule, dict) and isinstance(rule.get("selection"), dict):
            selection = dict(rule["selection"])
            for key in ("tagPrefixList", "tagPatternList"):
                if isinstance(selection.get(key), list):
                    selection[key] = sorted(set(selection[key]))
            rule = {**rule, "selection": selection}
        rules.append(rule)
    rules.sort(key=lambda r: r.get("rulePriority", 0) if isinstance(r, dict) else 0)
    return {**data, "rules": rules}


def _parse(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # unparseable text differs from any document we would put


# --- what the registry holds ------------------------------------------------------------------


class RepositoryState(BaseModel):
    """One repository as read: describe-repositories plus what the rules manage. A field is
    read only when a rule manages it (`None` = not read, or no policy where read)."""

    info: RepositoryInfo
    repository_policy: str | None = None
    lifecycle_policy: str | None = None
    tags: dict[str, str] | None = None
    has_images: bool | None = None


# --- the plan -----------------------------------------------------------------------------------


class Change(BaseModel):
    repository: str
    setting: Setting
    operation: Operation
    current: Any = None
    desired: Any = None
    reason: str
    arn: str | None = None


class GovernancePlan(BaseModel):
    now: datetime
    changes: list[Change] = []

    @property
    def actions(self) -> list[Change]:
        """The changes that call ECR to mutate something."""
        return [c for c in self.changes if c.operation not in ("keep", "report")]

    @property
    def drift(self) -> list[Change]:
        return [c for c in self.changes if c.operation != "keep"]


def plan_governance(
    section: GovernancePolicy,
    states: list[RepositoryState],
    now: datetime,
    *,
    scope: Literal["all", "registry", "settings"] = "all",
) -> GovernancePlan:
    """Compare desired with actual. `registry` plans only creations and expiries (the scheduled
    registry step); `settings` only the settings of existing repositories (the sweep's step)."""
    now = _utc(now)
    plan = GovernancePlan(now=now)
    existing = {s.info.name: s for s in states}
    deletions = 0

    if scope in ("all", "registry"):
        for name in section.declared:
            if name not in existing:
                plan.changes.extend(_create(name, section.desired(name)))
            else:
                plan.changes.append(
                    Change(
                        repository=name,
                        setting="repository",
                        operation="keep",
                        reason="declared in governance.declared: exists",
                        arn=existing[name].info.arn,
                    )
                )

    for state in sorted(states, key=lambda s: s.info.name):
        name = state.info.name
        expiry = _expiry(section, state, now, deletions) if scope in ("all", "registry") else None
        if expiry is not None:
            plan.changes.append(expiry)
            if expiry.operation == "delete_repository":
                deletions += 1
                continue  # its settings no longer matter
        if scope in ("all", "settings"):
            desired = section.desired(name)
            if desired is not None:
                plan.changes.extend(plan_settings(desired, state))
    return plan


def _create(name: str, desired: DesiredSettings | None) -> list[Change]:
    desired = desired or DesiredSettings()
    settings: dict[str, Any] = {
        "scan_on_push": bool(desired.scan_on_push),
        "tag_mutability": desired.ecr_mutability or "MUTABLE",
        "mutability_exclusions": desired.mutability_exclusions,
        "encryption": (desired.encryption or Encryption()).as_ecr(),
        "tags": desired.tags,
    }
    changes = [
        Change(
            repository=name,
            setting="repository",
            operation="create_repository",
            desired=settings,
            reason="declared in governance.declared and missing: created with its settings",
        )
    ]
    for setting, put in (
        ("lifecycle_policy", "put_lifecycle_policy"),
        ("repository_policy", "set_repository_policy"),
    ):
        document = getattr(desired, setting)
        if isinstance(document, dict):
            changes.append(
                Change(
                    repository=name,
                    setting=setting,  # type: ignore[arg-type]
                    operation=put,  # type: ignore[arg-type]
                    desired=document,
                    reason=f"new repository: {setting} from {desired.sources[setting]}",
                )
            )
    return changes


def _expiry(
    section: GovernancePolicy, state: RepositoryState, now: datetime, deletions: int
) -> Change | None:
    found = section.ephemeral_rule(state.info.name)
    if found is None:
        return None
    index, rule = found
    name, source = state.info.name, f"governance.ephemeral[{index}] (ttl {rule.ttl})"

    def keep(reason: str) -> Change:
        return Change(
            repository=name,
            setting="repository",
            operation="keep",
            reason=reason,
            arn=state.info.arn,
        )

    if state.info.created_at is None:
        return keep(f"ephemeral by {source}, but its creation time is unknown: kept")
    expires = _utc(state.info.created_at) + rule.lifetime
    if now < expires:
        return keep(f"ephemeral by {source}: expires at {expires.isoformat()}")
    if state.has_images and not rule.force:
        return keep(f"expired at {expires.isoformat()} ({source}) but holds images; force is off")
    if deletions >= section.max_repository_deletions:
        return keep(
            f"expired at {expires.isoformat()} ({source}), but this run reached "
            f"max_repository_deletions ({section.max_repository_deletions}): next run"
        )
    contents = "force: with any images it holds" if rule.force else "empty"
    return Change(
        repository=name,
        setting="repository",
        operation="delete_repository",
        current={"created_at": _utc(state.info.created_at).isoformat()},
        desired={"force": rule.force},
        reason=f"expired at {expires.isoformat()} ({source}); {contents}",
        arn=state.info.arn,
    )


def plan_settings(desired: DesiredSettings, state: RepositoryState) -> list[Change]:
    """The changes that bring one existing repository's settings to `desired`."""
    info = state.info
    changes: list[Change] = []

    def change(
        setting: Setting, operation: Operation, current: Any, wanted: Any, reason: str
    ) -> None:
        source = desired.sources.get(setting, "")
        changes.append(
            Change(
                repository=info.name,
                setting=setting,
                operation=operation,
                current=current,
                desired=wanted,
                reason=f"{reason} ({source})" if source else reason,
                arn=info.arn,
            )
        )

    if desired.scan_on_push is not None:
        if info.scan_on_push == desired.scan_on_push:
            change("scan_on_push", "keep", info.scan_on_push, desired.scan_on_push, "in sync")
        else:
            change(
                "scan_on_push",
                "put_image_scanning_configuration",
                info.scan_on_push,
                desired.scan_on_push,
                f"scan on push is {_on(info.scan_on_push)}, wanted {_on(desired.scan_on_push)}",
            )

    mode = desired.ecr_mutability
    if mode is not None:
        current: dict[str, Any] = {
            "mode": info.tag_mutability,
            "exclusions": sorted(info.mutability_exclusions),
        }
        wanted: dict[str, Any] = {"mode": mode, "exclusions": sorted(desired.mutability_exclusions)}
        if current == wanted:
            change("tag_mutability", "keep", current, wanted, "in sync")
        else:
            change(
                "tag_mutability",
                "put_image_tag_mutability",
                current,
                wanted,
                f"tag mutability is {_mutability(current)}, wanted {_mutability(wanted)}",
            )

    if desired.encryption is not None:
        current = {"type": info.encryption_type, "kms_key": info.kms_key}
        wanted = {"type": desired.encryption.type, "kms_key": desired.encryption.kms_key}
        if _encryption_matches(desired.encryption, info):
            change("encryption", "keep", current, wanted, "in sync")
        else:
            change(
                "encryption",
                "report",
                current,
                wanted,
                f"encrypted with {_encryption(current)}, wanted {_encryption(wanted)}; ECR cannot "
                "change encryption after creation: recreate the repository to fix it",
            )

    _document(
        change,
        "lifecycle_policy",
        desired.lifecycle_policy,
        state.lifecycle_policy,
        canonical_lifecycle,
        ("put_lifecycle_policy", "delete_lifecycle_policy"),
    )
    _document(
        change,
        "repository_policy",
        desired.repository_policy,
        state.repository_policy,
        canonical_iam,
        ("set_repository_policy", "delete_repository_policy"),
    )

    if desired.tags or desired.remove_undeclared_tags:
        tags = state.tags or {}
        missing = {k: v for k, v in desired.tags.items() if tags.get(k) != v}
        extra = sorted(k for k in tags if k not in desired.tags)
        if not desired.remove_undeclared_tags:
            extra = []
        if missing:
            described = ", ".join(
                f"{k}={v}" + (f" (was {tags[k]})" if k in tags else "") for k, v in missing.items()
            )
            change("tags", "tag_resource", tags, missing, f"tags to set: {described}")
        if extra:
            change(
                "tags",
                "untag_resource",
                tags,
                extra,
                f"tags no rule declares, removed: {', '.join(extra)}",
            )
        if not missing and not extra:
            change("tags", "keep", tags, desired.tags, "in sync")
    return changes


def _document(
    change: Any,
    setting: Setting,
    wanted: dict[str, Any] | str | None,
    text: str | None,
    canonical: Any,
    operations: tuple[Operation, Operation],
) -> None:
    put, delete = operations
    if wanted is None:
        return
    current = _parse(text)
    label = setting.replace("_", " ")
    if wanted == ABSENT:
        if current is None:
            change(setting, "keep", None, ABSENT, f"no {label}, as wanted")
        else:
            change(setting, delete, current, ABSENT, f"has a {label}; wanted none")
        return
    if current is None:
        change(setting, put, None, wanted, f"no {label}; wanted one")
    elif canonical(current) == canonical(wanted):
        change(setting, "keep", current, wanted, "in sync (same meaning)")
    else:
        change(setting, put, current, wanted, f"{label} differs in meaning from the policy's")


def _encryption_matches(wanted: Encryption, info: RepositoryInfo) -> bool:
    if wanted.type != info.encryption_type:
        return False
    if not wanted.kms_key:
        return True
    key = info.kms_key or ""
    # A key may be named by ARN or by id; ECR reports the ARN.
    return key == wanted.kms_key or key.endswith(("/" + wanted.kms_key, ":" + wanted.kms_key))


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _mutability(setting: dict[str, Any]) -> str:
    exclusions = setting["exclusions"]
    return setting["mode"] + (f" except {', '.join(exclusions)}" if exclusions else "")


def _encryption(setting: dict[str, Any]) -> str:
    return setting["type"] + (f" ({setting['kms_key']})" if setting.get("kms_key") else "")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- reading the registry -----------------------------------------------------------------------


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
        if _utc(now) >= _utc(info.created_at) + rule.lifetime and not rule.force:
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


# --- applying -----------------------------------------------------------------------------------


class ChangeResult(BaseModel):
    change: Change
    outcome: Outcome
    detail: str | None = None


class GovernanceResult(BaseModel):
    dry_run: bool = False
    results: list[ChangeResult] = []

    def with_outcome(self, outcome: Outcome) -> list[ChangeResult]:
        return [r for r in self.results if r.outcome == outcome]

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return {"dry_run": self.dry_run, "outcomes": counts, **self.model_dump(mode="json")}


def apply_governance_plan(
    registry: Registry, plan: GovernancePlan, *, dry_run: bool = False
) -> GovernanceResult:
    """Carry out the plan's changes in order (a repository is created before its policies go
    on). One failing change is recorded and the rest go on; transient errors propagate, so the
    invocation is retried, and a retry converges because every change is planned from state."""
    from chalicelib.registry import RegistryError

    result = GovernanceResult(dry_run=dry_run)
    for change in plan.changes:
        if change.operation == "keep":
            result.results.append(ChangeResult(change=change, outcome="kept"))
        elif change.operation == "report":
            result.results.append(ChangeResult(change=change, outcome="reported"))
        elif dry_run:
            result.results.append(ChangeResult(change=change, outcome="planned"))
        else:
            try:
                outcome, detail = _apply(registry, change)
            except RegistryError as error:
                if error.transient:
                    raise
                outcome, detail = "failed", f"{error.code}: {error.message}"
            result.results.append(ChangeResult(change=change, outcome=outcome, detail=detail))
    return result


def _apply(registry: Registry, change: Change) -> tuple[Outcome, str | None]:
    from chalicelib.registry import RegistryError, RepositoryAlreadyExists

    name, wanted = change.repository, change.desired
    match change.operation:
        case "create_repository":
            try:
                registry.create_repository(
                    name,
                    tag_mutability=wanted["tag_mutability"],
                    mutability_exclusions=wanted["mutability_exclusions"] or None,
                    scan_on_push=wanted["scan_on_push"],
                    encryption=wanted["encryption"],
                    tags=wanted["tags"],
                )
            except RepositoryAlreadyExists:
                return "unchanged", "created meanwhile by someone else; next run checks settings"
        case "delete_repository":
            try:
                gone = registry.delete_repository(name, force=bool(wanted["force"]))
            except RegistryError as error:
                if error.code == "RepositoryNotEmptyException":
                    return "unchanged", "an image arrived since the plan; kept (force is off)"
                raise
            if not gone:
                return "unchanged", "already deleted"
        case "put_image_scanning_configuration":
            registry.put_scan_on_push(name, bool(wanted))
        case "put_image_tag_mutability":
            registry.put_tag_mutability(name, wanted["mode"], wanted["exclusions"] or None)
        case "put_lifecycle_policy":
            registry.put_lifecycle_policy(name, policy_text(wanted))
        case "delete_lifecycle_policy":
            if not registry.delete_lifecycle_policy(name):
                return "unchanged", "already had none"
        case "set_repository_policy":
            registry.set_repository_policy(name, policy_text(wanted))
        case "delete_repository_policy":
            if not registry.delete_repository_policy(name):
                return "unchanged", "already had none"
        case "tag_resource":
            registry.tag_repository(change.arn or _arn(registry, name), wanted)
        case "untag_resource":
            registry.untag_repository(change.arn or _arn(registry, name), wanted)
    return "applied", None


def _arn(registry: Registry, name: str) -> str:
    return registry.describe_repository(name).arn


# --- entry points -------------------------------------------------------------------------------


def reconcile(
    registry: Registry,
    section: GovernancePolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    scope: Literal["all", "registry", "settings"] = "all",
) -> tuple[GovernancePlan, GovernanceResult]:
    """Read the registry, plan, apply: the CLI's `governance apply` and the hourly schedule."""
    states = read_registry(registry, section, now, settings=scope != "registry")
    plan = plan_governance(section, states, now, scope=scope)
    return plan, apply_governance_plan(registry, plan, dry_run=dry_run or section.dry_run)


def _record(result: GovernanceResult) -> dict[str, Any]:
    from chalicelib.observability import count, logger

    for outcome, metric in (
        ("applied", "GovernanceApplied"),
        ("planned", "GovernancePlanned"),
        ("reported", "GovernanceDriftReported"),
        ("failed", "GovernanceFailed"),
    ):
        n = len(result.with_outcome(outcome))  # type: ignore[arg-type]
        if n:
            count(metric, n)
    summary = result.summary()
    logger().info("governance done", extra={"governance": summary})
    return summary


def repository_task(
    registry: Registry, repository: RepositoryInfo, now: datetime
) -> dict[str, Any]:
    """The sweep's per-repository step: bring this repository's settings to the policy."""
    from chalicelib.policy import current_policy, dry_run

    policy = current_policy().policy
    section = policy.governance
    desired = section.desired(repository.name)
    if desired is None:
        return {"repository": repository.name, "governance": "no rule selects this repository"}
    state = read_repository(registry, section, repository, now)
    plan = GovernancePlan(now=_utc(now), changes=plan_settings(desired, state))
    result = apply_governance_plan(registry, plan, dry_run=dry_run(policy) or section.dry_run)
    return {"repository": repository.name, **_record(result)}


def sweep_scope(policy: Any, repository: str) -> bool:
    """The sweep sends a repository's job for governance when a settings rule selects it."""
    return policy.governance.desired(repository) is not None


def handle_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """The hourly `governance_reconcile` function (an EventBridge Scheduled Event): create
    missing declared repositories and expire ephemeral ones. Repository settings are the sweep's
    per-repository task. TTLs are measured at the event's `time`, the time it was scheduled for."""
    from chalicelib.observability import flush_metrics
    from chalicelib.policy import current_policy, dry_run
    from chalicelib.registry import registry_for
    from chalicelib.settings import get_settings

    account = str(event.get("account") or "")
    region = str(event.get("region") or get_settings().region)
    registry = registry_for(account, region)
    try:
        now = datetime.fromisoformat(str(event["time"]))
    except (KeyError, ValueError):
        now = datetime.now(UTC)
    policy = current_policy().policy
    section = policy.governance
    if not (section.declared or section.ephemeral):
        return {"governance": "no declared or ephemeral repositories"}
    try:
        _, result = reconcile(registry, section, now, dry_run=dry_run(policy), scope="registry")
        return _record(result)
    finally:
        flush_metrics()
