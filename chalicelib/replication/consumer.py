"""The copy-job queue: sending jobs, and running them as `on_copy_job` receives them."""

from __future__ import annotations

from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.errors import (
    ImageNotFound,
)
from chalicelib.kernel.jobconsumer import process_jobs
from chalicelib.kernel.observability import count, logger
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.replication.copy import copy_from_upstream, copy_image, upstream_client
from chalicelib.replication.delete_sync import sync_delete
from chalicelib.replication.jobs import CopyJob


def execute_job(job: CopyJob, *, dry_run: bool = False) -> dict[str, Any]:
    """Run one job against the registries it names (the queue consumer's unit of work)."""

    settings = get_settings()
    source = registries.registry(job.source_account, job.source_region)
    target = job.destination
    destination = registries.registry(target.account, target.region, target.role_arn)
    if job.kind == "delete":
        return sync_delete(
            job,
            source=source,
            destination=destination,
            ledger_table=settings.replication_table,
            dry_run=dry_run,
        ).model_dump(mode="json")
    try:
        if job.upstream is not None:
            return copy_from_upstream(
                job,
                source=upstream_client(job.upstream),
                destination=destination,
                dry_run=dry_run,
                ledger_table=settings.replication_table,
            ).model_dump(mode="json", exclude={"plan"})
        result = copy_image(
            job,
            source=source,
            destination=destination,
            dry_run=dry_run,
            ledger_table=settings.replication_table,
        )
    except ImageNotFound:
        # Deleted at the source since the job was queued: nothing left to copy.
        return {"status": "skipped", "why": "gone from the source", "digest": job.digest}
    return result.model_dump(mode="json", exclude={"plan"})


def handle_copy_jobs(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The `on_copy_job` SQS consumer: each record one job; failures are reported per record."""

    policy = current_policy().policy
    is_dry = dry_run(policy)

    def handle(record: Any) -> dict[str, Any]:
        job = CopyJob.model_validate_json(record.body)
        with logger().append_context_keys(rule=job.rule, digest=job.digest, kind=job.kind):
            outcome = execute_job(job, dry_run=is_dry)
            logger().info("replication job done", extra={"replication": outcome})
            count("ReplicationJobsDone")
            return outcome

    return process_jobs(event, context, handle, "ReplicationJobsFailed")
