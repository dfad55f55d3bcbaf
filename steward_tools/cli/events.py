"""`steward events send|dead-letters`: events into the local service, and what it rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import click

from steward_tools.cli.common import (
    apply_region,
    echo_json,
    json_option,
    region_option,
    use_local_backend,
)
from steward_tools.local.server import DEAD_LETTER_QUEUE, EVENTS_QUEUE


@click.group()
def events() -> None:
    """Send events to the local service and read its dead-letter queue."""


def _local_queue_url(name: str, region: str | None) -> str:
    use_local_backend()
    apply_region(region)
    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def read_event(path: Path) -> str:
    """FILE's text, which must be one JSON document (EventBridge delivers nothing else)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise click.ClickException(
            f"{path}: not a JSON event (not UTF-8 text: byte {error.start})"
        ) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise click.ClickException(
            f"{path}: not a JSON event ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    return text


@events.command("send")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@region_option
@json_option
def events_send(file: Path, region: str | None, as_json: bool) -> None:
    """Deliver FILE's JSON to `on_ecr_event` as EventBridge would (any JSON, valid event or not).

    The service dead-letters an event it cannot parse, with the reason: `events dead-letters`."""

    body = read_event(file)
    url = _local_queue_url(EVENTS_QUEUE, region)
    sent = boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body)
    if as_json:
        echo_json({"queue": EVENTS_QUEUE, "messageId": sent["MessageId"]})
    else:
        click.echo(f"sent to {EVENTS_QUEUE}")


@events.command("dead-letters")
@region_option
@json_option
def events_dead_letters(region: str | None, as_json: bool) -> None:
    """Print the events the service rejected, with their reasons (leaves them queued).

    One JSON document per line; with --json, one JSON list."""

    url = _local_queue_url(DEAD_LETTER_QUEUE, region)
    sqs = boto3.client("sqs")
    seen: set[str] = set()
    bodies: list[Any] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=2, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            if as_json:
                bodies.append(_parsed(message["Body"]))
            else:
                click.echo(message["Body"])
    if as_json:
        echo_json(bodies)


def _parsed(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body
