"""The sweep's local resources: the repository-job queue (+ dead-letter queue, redrive) and the
retention grace-period table. `make run` consumes the queue with `SqsJobPump` (jobs.py)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.settings import DEFAULT_RETENTION_TABLE, DEFAULT_SWEEP_DLQ, DEFAULT_SWEEP_QUEUE

# A repository job plans and deletes; Lambda needs the visibility timeout at least as long as the
# function's timeout (900 s on AWS). Locally a failed job comes back sooner.
VISIBILITY_TIMEOUT = 60
MAX_RECEIVE_COUNT = 3


def bootstrap_sweep(sqs: Any, dynamodb: Any) -> str:
    """Create the repository-job queue, its DLQ and the retention table; returns the queue URL."""
    from chalicelib.retention_marks import ensure_table

    dlq_url = sqs.create_queue(QueueName=DEFAULT_SWEEP_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = str(sqs.create_queue(QueueName=DEFAULT_SWEEP_QUEUE)["QueueUrl"])
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )
    ensure_table(dynamodb, DEFAULT_RETENTION_TABLE)
    return url


def invoke_on_repository_job(event: dict[str, Any]) -> Any:
    """Invoke the Lambda entry point as the SQS event source mapping does."""
    import app

    from .runner import LocalLambdaContext

    return app.on_repository_job(event, LocalLambdaContext())
