"""SQS data access: queue URLs, fan-out jobs sent 10 a call (the sweep's repository jobs,
replication's copy jobs). The consumer side is `chalicelib.kernel.jobconsumer`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import islice
from typing import Any, TypeVar

from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.aws import on_reset
from chalicelib.kernel.errors import AwsCallError, aws_errors

SEND_BATCH = 10  # SQS's send-message-batch limit
SEND_ATTEMPTS = 3

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last shorter), taken as they come: a generator's items
    are never all held at once."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@lru_cache(maxsize=8)
def queue_url(queue: str) -> str:
    """A queue URL from a name (or the URL itself)."""
    if queue.startswith(("https://", "http://")):
        return queue
    with aws_errors("sqs", "get_queue_url"):
        return str(aws_client("sqs").get_queue_url(QueueName=queue)["QueueUrl"])


on_reset(queue_url.cache_clear)


class SendFailed(AwsCallError):
    """SQS refused some messages. Transient when SQS kept failing them (the caller's invocation
    is retried); permanent when SQS says the sender is at fault (a retry fails the same way)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__("SendFailed", message, "send_message_batch", service="sqs")
        self.transient = transient


def send_jobs(
    queue: str, bodies: Iterable[str], client: Any = None, *, attempts: int = SEND_ATTEMPTS
) -> int:
    """Send each body as one message (send-message-batch, 10 a call, as `bodies` yields them);
    returns calls made.

    Entries SQS reports as failed are resent (up to `attempts` in all); a sender fault is not
    retried.
    """
    client = client or aws_client("sqs")
    url = queue_url(queue)
    calls = 0
    for batch in chunks(bodies, SEND_BATCH):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
        for _ in range(attempts):
            calls += 1
            with aws_errors("sqs", "send_message_batch"):
                response = client.send_message_batch(QueueUrl=url, Entries=entries)
            failed = {f["Id"]: f for f in response.get("Failed", [])}
            if not failed:
                break
            if any(f.get("SenderFault") for f in failed.values()):
                raise SendFailed(f"SQS refused jobs: {list(failed.values())}", transient=False)
            entries = [e for e in entries if e["Id"] in failed]
        else:
            raise SendFailed(f"SQS kept failing {len(entries)} jobs", transient=True)
    return calls


def waiting_messages(queue: str, client: Any = None) -> int:
    """How many messages the queue holds waiting to be received (SQS's approximate count)."""
    client = client or aws_client("sqs")
    with aws_errors("sqs", "get_queue_attributes"):
        attributes = client.get_queue_attributes(
            QueueUrl=queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))
