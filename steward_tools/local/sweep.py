"""The sweep's local resources: the repository-job queue (+ dead-letter queue, redrive) and the
retention grace-period table. `make run` consumes the queue with `SqsJobPump` (jobs.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.kernel.settings import (
    DEFAULT_RETENTION_TABLE,
    DEFAULT_SWEEP_DLQ,
    DEFAULT_SWEEP_QUEUE,
    DEFAULT_SWEEP_TABLE,
)

from .jobs import bootstrap_job_queue
from .tables import ensure_table

# A repository job plans and deletes; Lambda needs the visibility timeout at least as long as the
# function's timeout (900 s on AWS). Locally a failed job comes back sooner.
VISIBILITY_TIMEOUT = 60
MAX_RECEIVE_COUNT = 3


def bootstrap_sweep(sqs: Any, dynamodb: Any) -> str:
    """Create the repository-job queue, its DLQ, the retention table and the sweep ledger; returns
    the queue URL."""

    url = bootstrap_job_queue(
        sqs,
        DEFAULT_SWEEP_QUEUE,
        DEFAULT_SWEEP_DLQ,
        visibility_timeout=VISIBILITY_TIMEOUT,
        max_receive_count=MAX_RECEIVE_COUNT,
    )
    # One item per (repository, digest): `chalicelib.retention.marks`.
    ensure_table(dynamodb, DEFAULT_RETENTION_TABLE, hash_key="repository", range_key="digest")
    # The sweep's lease and claims (`chalicelib.sweep.ledger`), purged by TTL.
    ensure_table(dynamodb, DEFAULT_SWEEP_TABLE, ttl_attribute="purge_at")
    return url
