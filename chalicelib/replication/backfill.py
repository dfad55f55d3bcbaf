"""Backfill: copy jobs for every image a rule selects that is already in the registry
(`steward replicate --rule NAME`)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from chalicelib.ecr import registries
from chalicelib.ecr.errors import (
    RegistryError,
)
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.settings import get_settings
from chalicelib.policy import current_policy
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.copy import CopyResult, copy_image
from chalicelib.replication.jobs import CopyJob, jobs_for


class BackfillSummary(BaseModel):
    rule: str
    dry_run: bool
    images: int = 0
    copied: int = 0
    unchanged: int = 0
    failed: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    bytes_planned: int = 0
    errors: list[str] = Field(default_factory=list)
    results: list[CopyResult] = Field(default_factory=list)


def backfill_jobs(
    rule: ReplicationRule, source: Registry, account: str, region: str
) -> list[CopyJob]:
    """Every existing image the rule selects, as jobs (one per image and destination)."""
    jobs: list[CopyJob] = []
    for repository in source.iter_repositories():
        if not rule.selects_repository(repository.name):
            continue
        for image in source.iter_images(repository.name, tag_status="TAGGED"):
            selected = [t for t in image.tags if rule.selects_tag(t)]
            if selected:
                jobs += jobs_for(
                    rule,
                    trigger="backfill",
                    account=account,
                    region=region,
                    repository=repository.name,
                    digest=image.digest,
                    tags=selected,
                )
    return jobs


def backfill(
    rule: ReplicationRule,
    jobs: list[CopyJob],
    *,
    registry: Callable[[str, str, str | None], Registry],
    dry_run: bool = False,
    ledger_table: str | None = None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
) -> BackfillSummary:
    """Copy (or plan) the jobs one after another, each with its layers in parallel."""
    summary = BackfillSummary(rule=rule.name, dry_run=dry_run)
    for job in jobs:
        target = job.destination
        try:
            result = copy_image(
                job,
                source=registry(job.source_account, job.source_region, None),
                destination=registry(target.account, target.region, target.role_arn),
                dry_run=dry_run,
                ledger_table=ledger_table,
                on_bytes=on_bytes,
            )
        except RegistryError as error:
            summary.failed += 1
            summary.errors.append(
                f"{job.source_repository}@{job.digest} → {target.label()}: {error}"
            )
            continue
        summary.images += 1
        summary.bytes_moved += result.bytes_moved
        summary.bytes_skipped += result.bytes_skipped
        summary.bytes_planned += result.bytes_planned
        if result.status == "copied":
            summary.copied += 1
        elif result.status == "unchanged":
            summary.unchanged += 1
        summary.results.append(result)
        on_image(result)
    return summary


def find_rule(name: str) -> ReplicationRule:

    loaded = current_policy()
    for rule in getattr(loaded.policy, "replication", []):
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in getattr(loaded.policy, "replication", [])) or "none"
    raise LookupError(f"no replication rule {name!r} in {loaded.source} (rules: {known})")


def run_backfill(
    name: str,
    *,
    region: str | None,
    dry_run: bool,
    on_jobs: Callable[[list[CopyJob]], None] = lambda jobs: None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
) -> BackfillSummary:
    """`steward replicate --rule NAME`: copy (or plan) what the rule selects, here and now."""

    rule = find_rule(name)
    if "backfill" not in rule.triggers:
        raise LookupError(f"rule {name!r} does not allow backfill (triggers: {rule.triggers})")
    account = caller_account()
    source_region = region or Registry().region
    jobs = backfill_jobs(rule, registries.registry(account, source_region), account, source_region)
    on_jobs(jobs)
    return backfill(
        rule,
        jobs,
        registry=registries.registry,
        dry_run=dry_run,
        ledger_table=get_settings().replication_table,
        on_bytes=on_bytes,
        on_image=on_image,
    )
