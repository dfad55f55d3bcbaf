"""The scheduled sweep: reconcile, per repository, what events missed.

A schedule calls `start_sweep`, which lists the repositories in scope and sends one SQS job per
repository. `on_repository_job` (SQS, partial-batch failure) runs, for its repository, every task
in `REPOSITORY_TASKS`; a repository whose task fails is retried alone (and, after the queue's
maxReceiveCount, goes to the jobs' dead-letter queue), never blocking the rest of the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel

from chalicelib.ecr import registries
from chalicelib.ecr.errors import RepositoryNotFound
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.governance.task import repository_task
from chalicelib.governance.task import sweep_scope as governance_scope
from chalicelib.kernel.jobconsumer import process_jobs
from chalicelib.kernel.jobqueue import send_jobs
from chalicelib.kernel.observability import count, flushes_metrics, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy import Policy, current_policy
from chalicelib.retention.task import retain_repository
from chalicelib.retention.task import sweep_scope as retention_scope
from chalicelib.sweep.reconcile import reconcile_repository, reconcile_scope

Task = Callable[[Registry, RepositoryInfo, datetime], dict[str, Any]]


@dataclass(frozen=True)
class SweepTask:
    """One thing the sweep does per repository: `run` it for the repositories `in_scope`."""

    name: str
    run: Task
    in_scope: Callable[[Policy, str], bool]
    # What the task would do, changing nothing (a sweep started with --dry-run); None: the task
    # has its own planning command and is skipped in a dry-run sweep.
    plan: Task | None = None


REPOSITORY_TASKS: tuple[SweepTask, ...] = (
    SweepTask("retention", retain_repository, retention_scope),
    # repository settings as the policy declares them
    SweepTask("governance", repository_task, governance_scope),
    # aliases, `latest`, promotion and quarantine tags repaired from the registry itself
    SweepTask(
        "reconcile",
        reconcile_repository,
        reconcile_scope,
        plan=partial(reconcile_repository, dry_run=True),
    ),
)


class RepositoryJob(BaseModel):
    """One SQS message: a repository to sweep (carried whole, so the worker need not look it up)."""

    sweep_id: str
    account: str
    region: str
    repository: RepositoryInfo
    started_at: datetime
    # Plan only: each task reports what it would change (`steward sweep run --dry-run`).
    dry_run: bool = False


class RepositoryJobFailed(RuntimeError):
    pass


def in_scope(policy: Policy, repository: str) -> bool:
    return any(task.in_scope(policy, repository) for task in REPOSITORY_TASKS)


def start_sweep(
    registry: Registry,
    *,
    account: str,
    region: str,
    now: datetime,
    queue: str | None = None,
    sweep_id: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """List the repositories in scope and send one job for each. Returns a summary."""

    policy = current_policy().policy
    sweep_id = sweep_id or str(uuid.uuid4())
    seen = 0
    jobs = []
    for repository in registry.iter_repositories():
        seen += 1
        if in_scope(policy, repository.name):
            job = RepositoryJob(
                sweep_id=sweep_id,
                account=account,
                region=region,
                repository=repository,
                started_at=now,
                dry_run=dry_run,
            )
            jobs.append(job.model_dump_json())
    calls = send_jobs(queue or get_settings().sweep_queue, jobs) if jobs else 0
    count("SweepRepositoriesQueued", len(jobs))
    summary = {
        "sweep_id": sweep_id,
        "repositories": seen,
        "queued": len(jobs),
        "sqs_calls": calls,
        **({"dry_run": True} if dry_run else {}),
    }
    logger().info("sweep started", extra={"sweep": summary})
    return summary


@flushes_metrics
def handle_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """The body of the scheduled `start_sweep` function (an EventBridge Scheduled Event)."""

    account = str(event.get("account") or "")
    region = str(event.get("region") or get_settings().region)
    registry = registries.registry(account, region)
    return start_sweep(
        registry,
        account=account,
        region=region,
        now=datetime.now(UTC),
        sweep_id=event.get("id"),
    )


def run_repository_job(job: RepositoryJob, now: datetime) -> dict[str, Any]:
    """Run every task for one repository; raise if any failed (the others still ran)."""

    registry = registries.registry(job.account, job.region)
    outcomes: dict[str, Any] = {}
    errors: list[str] = []
    log = logger()
    with log.append_context_keys(sweep_id=job.sweep_id, repository=job.repository.name):
        for task in REPOSITORY_TASKS:
            name = task.name
            run = task.plan if job.dry_run else task.run
            if run is None:
                outcomes[name] = {"skipped": "dry run: this task has its own plan command"}
                continue
            try:
                outcomes[name] = run(registry, job.repository, now)
            except RepositoryNotFound:
                # Deleted since the sweep listed it: nothing left to do, and no retry helps.
                outcomes[name] = {"skipped": "repository no longer exists"}
            except Exception as error:  # one task failing must not stop the others
                log.exception("sweep task failed", extra={"task": name})
                errors.append(f"{name}: {type(error).__name__}: {error}")
    if errors:
        raise RepositoryJobFailed("; ".join(errors))
    return outcomes


def handle_repository_jobs(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The body of `on_repository_job`: one SQS batch, partial failure reported per message."""

    def run(record: SQSRecord) -> dict[str, Any]:
        job = RepositoryJob.model_validate_json(record.body)
        return run_repository_job(job, datetime.now(UTC))

    return process_jobs(event, context, run, "SweepJobsFailed")
