"""Carries a governance plan out through the gateway, one change at a time, with its outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from chalicelib.ecr.errors import RegistryError, RepositoryAlreadyExists
from chalicelib.governance.plan import Change, GovernancePlan, Outcome
from chalicelib.policy.governance import policy_text

if TYPE_CHECKING:
    from chalicelib.ecr.gateway import Registry


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
