"""Governance's pure planner: the changes that bring repositories to the settings the policy
declares (create, expire, scan on push, tag mutability, lifecycle and repository policies,
resource tags), each with the rule that asked for it; drift ECR cannot fix is reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from chalicelib.ecr.models import RepositoryInfo
from chalicelib.governance.documents import canonical_iam, canonical_lifecycle, parse_document
from chalicelib.governance.read import RepositoryState
from chalicelib.kernel.clock import as_utc
from chalicelib.policy.governance import ABSENT, DesiredSettings, Encryption, GovernancePolicy

if TYPE_CHECKING:
    pass


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
    now = as_utc(now)
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
                    setting=setting,
                    operation=put,
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
    expires = as_utc(state.info.created_at) + rule.lifetime
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
        current={"created_at": as_utc(state.info.created_at).isoformat()},
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
    current = parse_document(text)
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
