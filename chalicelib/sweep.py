"""The scheduled sweep: reconcile, per repository, what events missed.

A schedule calls `start_sweep`, which lists the repositories in scope and sends one SQS job per
repository. `on_repository_job` (SQS, partial-batch failure) runs, for its repository, every task
in `REPOSITORY_TASKS`; a repository whose task fails is retried alone (and, after the queue's
maxReceiveCount, goes to the jobs' dead-letter queue), never blocking the rest of the batch.

A task is "module:function" with the signature
`(registry: Registry, repository: RepositoryInfo, now: datetime) -> dict`, imported only when a job
runs. Its module may define `sweep_scope(policy: Policy, repository: str) -> bool`; a repository
is in scope when some task's module says so, or has no `sweep_scope` (then every repository is).
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from chalicelib.registry import Registry, RepositoryInfo, RepositoryNotFound

Task = Callable[[Registry, RepositoryInfo, datetime], dict[str, Any]]

REPOSITORY_TASKS: tuple[str, ...] = (
    "chalicelib.retention:retain_repository",
    "chalicelib.governance:repository_task",  # repository settings as the policy declares
)

SCOPE_FUNCTION = "sweep_scope"


class RepositoryJob(BaseModel):
    """One SQS message: a repository to sweep (carried whole, so the worker need not look it up)."""

    sweep_id: str
    account: str
    region: str
    repository: RepositoryInfo
    started_at: datetime


class RepositoryJobFailed(RuntimeError):
    pass


def _load(path: str) -> tuple[Any, str]:
    module, _, function = path.partition(":")
    return importlib.import_module(module), function


def in_scope(policy: Any, repository: str, tasks: tuple[str, ...] = REPOSITORY_TASKS) -> bool:
    for path in tasks:
        module, _ = _load(path)
        scope = getattr(module, SCOPE_FUNCTION, None)
        if scope is None or scope(policy, repository):
            return True
    return False


def start_sweep(
    registry: Registry,
    *,
    account: str,
    region: str,
    now: datetime,
    queue: str | None = None,
    sweep_id: str | None = None,
) -> dict[str, Any]:
    """List the repositories in scope and send one job for each. Returns a summary."""
    from chalicelib.jobqueue import send_jobs
    from chalicelib.observability import count, logger
    from chalicelib.policy import current_policy
    from chalicelib.settings import get_settings

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
            )
            jobs.append(job.model_dump_json())
    calls = send_jobs(queue or get_settings().sweep_queue, jobs) if jobs else 0
    count("SweepRepositoriesQueued", len(jobs))
    summary = {"sweep_id": sweep_id, "repositories": seen, "queued": len(jobs), "sqs_calls": calls}
    logger().info("sweep started", extra={"sweep": summary})
    return summary


def handle_schedule(event: dict[str, Any]) -> dict[str, Any]:
    """The body of the scheduled `start_sweep` function (an EventBridge Scheduled Event)."""
    from chalicelib.observability import flush_metrics
    from chalicelib.registry import registry_for
    from chalicelib.settings import get_settings

    account = str(event.get("account") or "")
    region = str(event.get("region") or get_settings().region)
    registry = registry_for(account, region)
    try:
        return start_sweep(
            registry,
            account=account,
            region=region,
            now=datetime.now(UTC),
            sweep_id=event.get("id"),
        )
    finally:
        flush_metrics()


def run_repository_job(job: RepositoryJob, now: datetime) -> dict[str, Any]:
    """Run every task for one repository; raise if any failed (the others still ran)."""
    from chalicelib.observability import logger
    from chalicelib.registry import registry_for

    registry = registry_for(job.account, job.region)
    outcomes: dict[str, Any] = {}
    errors: list[str] = []
    log = logger()
    with log.append_context_keys(sweep_id=job.sweep_id, repository=job.repository.name):
        for path in REPOSITORY_TASKS:
            module, function = _load(path)
            task: Task = getattr(module, function)
            name = path.partition(":")[0].rsplit(".", 1)[-1]
            try:
                outcomes[name] = task(registry, job.repository, now)
            except RepositoryNotFound:
                # Deleted since the sweep listed it: nothing left to do, and no retry helps.
                outcomes[name] = {"skipped": "repository no longer exists"}
            except Exception as error:  # one task failing must not stop the others
                log.exception("sweep task failed", extra={"task": path})
                errors.append(f"{path}: {type(error).__name__}: {error}")
    if errors:
        raise RepositoryJobFailed("; ".join(errors))
    return outcomes


def handle_repository_jobs(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The body of `on_repository_job`: one SQS batch, partial failure reported per message."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from chalicelib.jobqueue import process_jobs

    def run(record: SQSRecord) -> dict[str, Any]:
        job = RepositoryJob.model_validate_json(record.body)
        return run_repository_job(job, datetime.now(UTC))

    return process_jobs(event, context, run, "SweepJobsFailed")
