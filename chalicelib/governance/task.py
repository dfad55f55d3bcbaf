"""Governance's entry points: the per-repository sweep task and the registry-wide schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.ecr import registries
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.governance.apply import GovernanceResult, apply_governance_plan
from chalicelib.governance.plan import GovernancePlan, plan_governance, plan_settings
from chalicelib.governance.read import read_registry, read_repository
from chalicelib.kernel.clock import as_utc
from chalicelib.kernel.observability import count, flushes_metrics, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import Policy, current_policy, dry_run
from chalicelib.policy.governance import GovernancePolicy

if TYPE_CHECKING:
    from chalicelib.ecr.gateway import Registry


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

    policy = current_policy().policy
    section = policy.governance
    desired = section.desired(repository.name)
    if desired is None:
        return {"repository": repository.name, "governance": "no rule selects this repository"}
    state = read_repository(registry, section, repository, now)
    plan = GovernancePlan(now=as_utc(now), changes=plan_settings(desired, state))
    result = apply_governance_plan(registry, plan, dry_run=dry_run(policy) or section.dry_run)
    return {"repository": repository.name, **_record(result)}


def sweep_scope(policy: Policy, repository: str) -> bool:
    """The sweep sends a repository's job for governance when a settings rule selects it."""
    return policy.governance.desired(repository) is not None


@flushes_metrics
def handle_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """The hourly `governance_reconcile` function (an EventBridge Scheduled Event): create
    missing declared repositories and expire ephemeral ones. Repository settings are the sweep's
    per-repository task. TTLs are measured at the event's `time`, the time it was scheduled for."""

    account = str(event.get("account") or "")
    region = str(event.get("region") or get_settings().region)
    registry = registries.registry(account, region)
    try:
        now = datetime.fromisoformat(str(event["time"]))
    except (KeyError, ValueError):
        now = datetime.now(UTC)
    policy = current_policy().policy
    section = policy.governance
    if not (section.declared or section.ephemeral):
        return {"governance": "no declared or ephemeral repositories"}
    _, result = reconcile(registry, section, now, dry_run=dry_run(policy), scope="registry")
    return _record(result)
