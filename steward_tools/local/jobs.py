"""Local stand-in for Lambda's SQS event source mapping, for the replication copy-job queue.

`bootstrap_replication` creates the queue (with its dead-letter queue and redrive) and the table of
copies. `SqsJobPump` receives up to ten messages, hands them to the consumer as one SQS-shaped
event (`{"Records": [...]}`, as Lambda does), deletes the records the consumer did not report in
`batchItemFailures`, and leaves the failed ones to come back after their visibility timeout; after
`maxReceiveCount` receives SQS moves them to the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from chalicelib.kernel.settings import (
    DEFAULT_REPLICATION_DLQ,
    DEFAULT_REPLICATION_QUEUE,
    DEFAULT_REPLICATION_TABLE,
)

from .delivery import QueuePump
from .tables import ensure_table

logger = logging.getLogger(__name__)

# A copy of a large image takes minutes; Lambda needs the queue's visibility timeout to be at
# least the function timeout (900 s on AWS). Locally a failed job comes back sooner.
VISIBILITY_TIMEOUT = 60
MAX_RECEIVE_COUNT = 5


def bootstrap_replication(sqs: Any, dynamodb: Any) -> str:
    """The copy-job queue (+ DLQ, redrive) and the copies table; returns the queue URL."""

    url = bootstrap_job_queue(
        sqs,
        DEFAULT_REPLICATION_QUEUE,
        DEFAULT_REPLICATION_DLQ,
        visibility_timeout=VISIBILITY_TIMEOUT,
        max_receive_count=MAX_RECEIVE_COUNT,
    )
    ensure_table(dynamodb, DEFAULT_REPLICATION_TABLE, ttl_attribute="expiration")
    return url


def bootstrap_job_queue(
    sqs: Any, queue: str, dead_letter_queue: str, *, visibility_timeout: int, max_receive_count: int
) -> str:
    """A job queue and its dead-letter queue, with the redrive; returns the queue URL."""
    dlq_url = sqs.create_queue(QueueName=dead_letter_queue)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = str(sqs.create_queue(QueueName=queue)["QueueUrl"])
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )
    return url


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands the function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsJobPump(QueuePump):
    """Deliver queued jobs to `invoke(event)` in batches, honouring partial batch failures."""

    name = "job pump"

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Callable[[dict[str, Any]], Any],
        *,
        batch_size: int = 10,
        retry_delay: int = 0,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        self.batch_size = batch_size
        # Seconds before a failed record is visible again (0: the next poll retries it).
        self.retry_delay = retry_delay
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        self.region = self.queue_arn.split(":")[3]

    def poll(self, wait_seconds: int = 0) -> tuple[int, int]:
        """One receive and one invocation; returns (records received, records succeeded)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0, 0
        try:
            response = self.invoke(sqs_event(messages, self.queue_arn, self.region)) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            # The whole invocation failed: Lambda retries the whole batch.
            logger.exception("job pump: invocation failed")
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay,
                )
            else:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return len(messages), len(messages) - len(failed)
