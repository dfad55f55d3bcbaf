"""Stand-in for EventBridge invoking the Lambda: drain the rule's queue into a callable.

The bootstrap rule sends each event, whole, to an SQS queue. `EventPump` takes them off that
queue and calls ``invoke(event)`` with exactly the envelope AWS would hand the function (moto's
extra keys removed). A message is deleted only after ``invoke`` returns; if it raises, the message
becomes visible again for another attempt, and after the queue's maxReceiveCount it moves to the
dead-letter queue, much as Lambda's async retries end in its DLQ.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# Keys moto adds to the envelope that AWS never sends.
MOTO_ONLY_KEYS = ("ingestion-time",)
# AWS's envelope key order (matters to nobody's parser, but keeps dumps comparable to samples).
ENVELOPE_KEYS = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
)


def to_aws_envelope(body: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it: moto-only keys dropped, AWS's key order."""
    event = {k: body[k] for k in ENVELOPE_KEYS if k in body}
    event.update({k: v for k, v in body.items() if k not in event and k not in MOTO_ONLY_KEYS})
    return event


def not_an_event(body: str) -> str | None:
    """Why a queued body cannot be an EventBridge event (it is not a JSON object), or None."""
    try:
        parsed = json.loads(body)
    except ValueError as error:
        return f"not JSON: {error}"
    if not isinstance(parsed, dict):
        return f"not a JSON object but a {type(parsed).__name__}"
    return None


class QueuePump:
    """Poll a queue into a handler until it is empty (`drain`) or told to stop (`run`)."""

    name = "queue pump"  # in log lines

    def poll(self, wait_seconds: int = 0) -> tuple[int, int]:
        """One receive and its deliveries; returns (messages received, delivered)."""
        raise NotImplementedError

    def drain(self, max_rounds: int = 50) -> int:
        """Deliver until the queue reports nothing to receive; returns how many were delivered.

        A message whose handler keeps failing is retried on each round until the queue's
        redrive policy moves it to the dead-letter queue, or `max_rounds` is reached.
        """
        delivered = 0
        for _ in range(max_rounds):
            received, ok = self.poll(wait_seconds=0)
            delivered += ok
            if received == 0:
                break
        return delivered

    def run(self, stop: threading.Event) -> None:
        """Long-poll (1 s) and deliver until `stop` is set."""
        while not stop.is_set():
            try:
                self.poll(wait_seconds=1)
            except Exception:
                # The endpoint going away (shutdown) or a transient error: keep the loop alive.
                logger.exception("%s: receive failed", self.name)
                stop.wait(1)


class EventPump(QueuePump):
    """Deliver queued EventBridge events to `invoke`, at least once, in arrival order per poll."""

    name = "event pump"

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Callable[[dict[str, Any]], object],
        *,
        visibility_timeout: int = 5,
        retry_delay: int = 0,
        dead_letter_queue_url: str | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.invoke = invoke
        # Where a body that is no event at all goes at once, with the reason, as the function
        # itself dead-letters a malformed event ({"reason", "event"}): retrying cannot fix it.
        self.dead_letter_queue_url = dead_letter_queue_url
        # Long enough to run one handler; short so a crashed pump's messages return quickly.
        self.visibility_timeout = visibility_timeout
        # Seconds before a failed message is visible again (0: the next poll retries it).
        self.retry_delay = retry_delay

    def poll(self, wait_seconds: int = 0) -> tuple[int, int]:
        """One receive and its deliveries; returns (messages received, delivered)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
        ).get("Messages", [])
        delivered = 0
        for message in messages:
            if self._deliver(message):
                delivered += 1
        return len(messages), delivered

    def _deliver(self, message: dict[str, Any]) -> bool:
        receipt = message["ReceiptHandle"]
        problem = not_an_event(message["Body"])
        if problem is not None and self.dead_letter_queue_url:
            logger.warning("event pump: rejected message %s: %s", message.get("MessageId"), problem)
            self.sqs.send_message(
                QueueUrl=self.dead_letter_queue_url,
                MessageBody=json.dumps({"reason": problem, "event": message["Body"]}),
                MessageAttributes={"reason": {"DataType": "String", "StringValue": problem}},
            )
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
            return False
        try:
            body = json.loads(message["Body"])
            if not isinstance(body, dict):
                raise ValueError("event body is not a JSON object")
            event = to_aws_envelope(body)
            self.invoke(event)
        except Exception:
            logger.exception("event pump: delivery of message %s failed", message.get("MessageId"))
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=receipt,
                    VisibilityTimeout=self.retry_delay,
                )
            except Exception:
                logger.exception("event pump: could not release message for retry")
            return False
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        return True
