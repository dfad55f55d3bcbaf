"""`steward events send|dead-letters`: events into the local service, and what it rejected."""

from __future__ import annotations

from typing import Any

import boto3
import click

from steward_tools.cli.common import use_local_backend
from steward_tools.local.server import DEAD_LETTER_QUEUE, EVENTS_QUEUE


@click.group()
def events() -> None:
    """Send events to the local service and read its dead-letter queue."""


def _local_queue_url(name: str) -> str:
    use_local_backend()

    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


@events.command("send")
@click.argument("file", type=click.File("r"))
def events_send(file: Any) -> None:
    """Deliver FILE's JSON to `on_ecr_event` as EventBridge would (any payload, valid or not)."""

    url = _local_queue_url(EVENTS_QUEUE)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=file.read())
    click.echo(f"sent to {EVENTS_QUEUE}")


@events.command("dead-letters")
def events_dead_letters() -> None:
    """Print the events the service rejected, with their reasons (leaves them queued)."""

    url = _local_queue_url(DEAD_LETTER_QUEUE)
    sqs = boto3.client("sqs")
    seen: set[str] = set()
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            click.echo(message["Body"])
