"""What of a rule ECR's own (native) replication configuration can express, and writing it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import caller_account
from chalicelib.policy.replication import ReplicationRule, RepositorySettings
from chalicelib.replication.backfill import find_rule

NATIVE_MAX_RULES = 10


NATIVE_MAX_DESTINATIONS = 25


NATIVE_MAX_FILTERS = 100


class NativePlan(BaseModel):
    rule: str
    expressible: bool
    reasons: list[str] = Field(default_factory=list)  # why not, or caveats
    native_rule: dict[str, Any] | None = None
    configuration: list[dict[str, Any]] = Field(default_factory=list)  # the registry's rules after


def plan_native(
    rule: ReplicationRule, existing: list[dict[str, Any]], account: str, region: str
) -> NativePlan:
    """Whether ECR's own replication can do what this rule says, and the configuration if so."""
    blockers: list[str] = []
    notes: list[str] = []
    if rule.has_tag_filter:
        blockers.append("it filters tags; ECR replication has no tag filter")
    filters: list[dict[str, str]] = []
    for glob in rule.repositories:
        prefix = glob[:-1] if glob.endswith("*") else None
        if glob == "*":
            continue
        if prefix is None or any(c in prefix for c in "*?[]"):
            blockers.append(f"{glob!r} is not a prefix glob; ECR filters only by name prefix")
        elif len(prefix) < 2:
            blockers.append(f"{glob!r}: an ECR prefix filter needs at least 2 characters")
        else:
            filters.append({"filter": prefix, "filterType": "PREFIX_MATCH"})
    if "*" in rule.repositories:
        filters = []
    if len(filters) > NATIVE_MAX_FILTERS:
        blockers.append(f"{len(filters)} repository filters; ECR allows {NATIVE_MAX_FILTERS}")
    destinations = []
    for destination in rule.destinations:
        if destination.repository != "{repository}":
            blockers.append(
                f"destination repository {destination.repository!r}: ECR keeps the source name"
            )
        target = (destination.account_for(account), destination.region or region)
        if target == (account, region):
            blockers.append(
                "a destination in the source registry: ECR replicates to other "
                "regions or accounts only"
            )
        if destination.create != RepositorySettings():
            notes.append(
                "repository settings for created repositories need an ECR repository "
                "creation template (applied for REPLICATION)"
            )
        destinations.append({"region": target[1], "registryId": target[0]})
    if rule.delete_sync:
        blockers.append("delete_sync: ECR replication never deletes")
    if "gate" in rule.triggers:
        blockers.append("triggers: gate; ECR replicates at push, before any scan")
    if "backfill" in rule.triggers:
        notes.append(
            "ECR replicates only images pushed after it is configured; run "
            "`steward replicate --rule NAME` once to backfill"
        )
    plan = NativePlan(rule=rule.name, expressible=not blockers, reasons=blockers + notes)
    if blockers:
        return plan
    native: dict[str, Any] = {"destinations": destinations}
    if filters:
        native["repositoryFilters"] = filters
    plan.native_rule = native
    configuration = list(existing) if native in existing else [*existing, native]
    unique = {(d["region"], d["registryId"]) for r in configuration for d in r["destinations"]}
    if len(configuration) > NATIVE_MAX_RULES:
        plan.expressible = False
        plan.reasons.insert(
            0,
            f"the registry would have {len(configuration)} replication rules; "
            f"ECR allows {NATIVE_MAX_RULES}",
        )
    if len(unique) > NATIVE_MAX_DESTINATIONS:
        plan.expressible = False
        plan.reasons.insert(
            0,
            f"{len(unique)} unique destinations across rules; ECR allows {NATIVE_MAX_DESTINATIONS}",
        )
    plan.configuration = configuration
    return plan


def run_native(name: str, *, region: str | None, apply: bool) -> NativePlan:
    """`steward replicate native --rule NAME`: ECR's own replication for a rule it can express."""

    rule = find_rule(name)
    account = caller_account()
    source_region = region or Registry().region
    registry = registries.registry(account, source_region)
    plan = plan_native(rule, registry.get_replication_rules(), account, source_region)
    if apply and plan.expressible:
        registry.put_replication_rules(plan.configuration)
    return plan


def native_report(rules: list[ReplicationRule], account: str, region: str) -> list[NativePlan]:
    """For every rule, whether ECR's own replication could serve it instead (each judged alone,
    as the registry's only rule) and, if not, why ecr-steward's copy engine is needed."""
    return [plan_native(rule, [], account, region) for rule in rules]
