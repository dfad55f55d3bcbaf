"""The sweep's reconciler task: derived tags repaired from the registry itself, per repository.

Events are delivered at least once, unordered, and some never: one that was lost, raced or
dead-lettered leaves an alias behind or a decision's tags unapplied. Every sweep period this task
recomputes, for each repository in scope, aliases and `latest` (tagging) and the promotion and
quarantine tags (gate), and repairs the drift. In a dry run (the policy's `dry_run`,
`STEWARD_DRY_RUN=1`, or `steward sweep run --dry-run`) it lists the repairs and changes nothing.
Replicated copies have their own reconciler, replication's backfill.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.gate.reconcile import reconcile_gate_tags
from chalicelib.gate.records import records
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import Policy, current_policy
from chalicelib.policy.document import dry_run as policy_dry_run
from chalicelib.tagging.reconcile import reconcile_aliases
from chalicelib.tagging.writers import AliasWriters


def reconcile_scope(policy: Policy, repository: str) -> bool:
    has_aliases = any(r.semver_aliases or r.latest for r in policy.tagging_rules(repository))
    return has_aliases or policy.gate.rule_for(repository) is not None


def reconcile_repository(
    registry: Registry, repository: RepositoryInfo, now: datetime, *, dry_run: bool = False
) -> dict[str, Any]:
    """The sweep task: repair aliases, then the gate's tags, of one repository."""
    loaded = current_policy()
    policy = loaded.policy
    dry_run = dry_run or policy_dry_run(policy)
    outcome: dict[str, Any] = {"dry_run": dry_run}
    gate: dict[str, Any] = {"repairs": [], "failed": []}
    if policy.gate.rule_for(repository.name) is not None:
        # First, so aliases are never moved onto an image the gate quarantined.
        gate = reconcile_gate_tags(
            registry,
            records(),
            policy.gate,
            repository,
            now,
            policy_version=loaded.fingerprint,
            dry_run=dry_run,
        )
        outcome["gate"] = gate["repairs"]
    rules = [r for r in policy.tagging_rules(repository.name) if r.semver_aliases or r.latest]
    if rules:
        result = reconcile_aliases(
            registry,
            rules,
            repository,
            now,
            dry_run=dry_run,
            hold=gate["failed"],
            writers=AliasWriters(get_settings().sweep_table),
        )
        moved = [t for t in result.tags if t.outcome in ("applied", "planned", "blocked")]
        moved = [t for t in moved if t.action != "keep"]
        outcome["aliases"] = [
            {"tag": t.tag, "outcome": t.outcome, "reason": t.reason} for t in moved
        ]
    repaired = len(outcome.get("aliases", [])) + len(outcome.get("gate", []))
    if repaired:
        count("SweepRepairsPlanned" if dry_run else "SweepRepairs", repaired)
        logger().info("reconciled", extra={"reconcile": outcome})
    return outcome
