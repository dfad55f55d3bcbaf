"""The scheduled sweep: reconcile, per repository, what events missed.

The sweep walks the registry through its own queue, so no invocation's work grows with the
registry. `start_sweep` (the schedule) takes the sweep's lease (`chalicelib.sweep.ledger`: one
sweep at a time) and queues the first page job. A page job lists one page of repositories (at most
`PAGE_SIZE`, describe-repositories' maximum), queues a job per repository in scope and then the
next page job. `on_repository_job` (SQS, partial-batch failure) runs, for its repository, every
task in `REPOSITORY_TASKS`; a repository whose task fails is retried alone (and, after the queue's
maxReceiveCount, goes to the jobs' dead-letter queue), never blocking the rest of the batch.

Delivery is at least once and a crashed invocation is retried, so every job takes effect once:
a page job runs only if it claims its page on the lease (a copy sent twice by a retried
predecessor is dropped), a repository job only if it claims its repository for its sweep, and a
job of a sweep older than the one holding the lease is stale and dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, Field, TypeAdapter

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
from chalicelib.policy.document import Policy, current_policy
from chalicelib.retention.task import retain_repository
from chalicelib.retention.task import sweep_scope as retention_scope
from chalicelib.sweep.ledger import Lease, ledger
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


# describe-repositories' maximum page: the most any page job lists, queues and sends.
PAGE_SIZE = 1000


class RepositoryJob(BaseModel):
    """One SQS message: a repository to sweep (carried whole, so the worker need not look it up)."""

    kind: Literal["repository"] = "repository"
    sweep_id: str
    account: str
    region: str
    repository: RepositoryInfo
    started_at: datetime
    # Plan only: each task reports what it would change (`steward sweep run --dry-run`).
    dry_run: bool = False


class PageJob(BaseModel):
    """One SQS message: list page `page` of the registry (from `token`) and queue its jobs."""

    kind: Literal["page"]
    sweep_id: str
    account: str
    region: str
    started_at: datetime
    page: int
    token: str | None = None
    dry_run: bool = False


class RepositoryJobFailed(RuntimeError):
    pass


# Messages written before page jobs existed carry no `kind`: they are repository jobs.
JOB: TypeAdapter[PageJob | RepositoryJob] = TypeAdapter(
    Annotated[PageJob | RepositoryJob, Field(union_mode="left_to_right")]
)


def in_scope(policy: Policy, repository: str) -> bool:
    return any(task.in_scope(policy, repository) for task in REPOSITORY_TASKS)


def start_sweep(
    *,
    account: str,
    region: str,
    now: datetime,
    queue: str | None = None,
    sweep_id: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Take the lease and queue the first page job; refused while another sweep holds the lease.
    Returns a summary."""

    sweep_id = sweep_id or str(uuid.uuid4())
    acquired, lease = ledger().acquire(account, region, sweep_id, now)
    if not acquired or lease is None:
        count("SweepsRefused")
        summary: dict[str, Any] = {"sweep_id": sweep_id, "started": False}
        if lease is not None:
            summary["running"] = lease.sweep_id
            summary["lease_expires_at"] = lease.expires_at.isoformat()
        logger().warning("sweep refused: another sweep holds the lease", extra={"sweep": summary})
        return summary
    first = PageJob(
        kind="page",
        sweep_id=sweep_id,
        account=account,
        region=region,
        started_at=lease.started_at,
        page=0,
        dry_run=dry_run,
    )
    # A second delivery of the schedule's event queues page 0 again; its claim drops the copy.
    calls = send_jobs(queue or get_settings().sweep_queue, [first.model_dump_json()])
    summary = {
        "sweep_id": sweep_id,
        "started": True,
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
    return start_sweep(
        account=account, region=region, now=datetime.now(UTC), sweep_id=event.get("id")
    )


def run_page_job(
    job: PageJob, message_id: str, now: datetime, queue: str | None = None
) -> dict[str, Any]:
    """List one page of repositories; queue a job for each in scope, then the next page job."""

    if not ledger().claim_page(job.account, job.region, job.sweep_id, job.page, message_id):
        count("SweepPagesDropped")
        return {"dropped": "page already claimed, or its sweep is no longer current"}
    registry = registries.registry(job.account, job.region)
    repositories, token = registry.repositories_page(job.token, PAGE_SIZE)
    policy = current_policy().policy
    bodies = [
        RepositoryJob(
            sweep_id=job.sweep_id,
            account=job.account,
            region=job.region,
            repository=repository,
            started_at=job.started_at,
            dry_run=job.dry_run,
        ).model_dump_json()
        for repository in repositories
        if in_scope(policy, repository.name)
    ]
    queued = len(bodies)
    if token:
        # Last, after every repository job of this page is sent: once the next page is claimed,
        # a retry of this page is dropped, so nothing it should have sent may be left unsent.
        following = job.model_copy(update={"page": job.page + 1, "token": token})
        bodies.append(following.model_dump_json())
    calls = send_jobs(queue or get_settings().sweep_queue, bodies) if bodies else 0
    if not token:
        ledger().mark_listed(job.account, job.region, job.sweep_id)
    count("SweepRepositoriesQueued", queued)
    summary = {
        "page": job.page,
        "repositories": len(repositories),
        "queued": queued,
        "last": token is None,
        "sqs_calls": calls,
    }
    logger().info("sweep page listed", extra={"sweep_id": job.sweep_id, "page": summary})
    return summary


def stale(job: RepositoryJob, lease: Lease | None) -> bool:
    """A job of a sweep older than the one holding the lease: that sweep queues its own."""
    if lease is None or lease.sweep_id == job.sweep_id:
        return False
    return lease.started_at > job.started_at


def run_repository_job(
    job: RepositoryJob, now: datetime, message_id: str | None = None, lease: Lease | None = None
) -> dict[str, Any]:
    """Run every task for one repository; raise if any failed (the others still ran). Dropped
    when stale or when another message already claimed this repository for this sweep."""

    if stale(job, lease):
        count("SweepJobsStale")
        return {"dropped": f"stale: sweep {lease.sweep_id if lease else ''} is current"}
    if message_id is not None and not ledger().claim_repository(
        job.sweep_id, job.repository.name, message_id, now
    ):
        count("SweepJobsDuplicate")
        return {"dropped": "duplicate: this repository's job already ran in this sweep"}
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

    leases: dict[tuple[str, str], Lease | None] = {}  # read once per batch, not per record

    def run(record: SQSRecord) -> dict[str, Any]:
        now = datetime.now(UTC)
        job = JOB.validate_json(record.body)
        if isinstance(job, PageJob):
            return run_page_job(job, record.message_id, now)
        key = (job.account, job.region)
        if key not in leases:
            leases[key] = ledger().lease(*key)
        return run_repository_job(job, now, record.message_id, leases[key])

    return process_jobs(event, context, run, "SweepJobsFailed")
