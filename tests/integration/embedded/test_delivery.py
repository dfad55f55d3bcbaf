"""EventPump: the stand-in for EventBridge invoking the Lambda with ECR's events."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from steward_tools.local.delivery import EventPump, to_aws_envelope
from tests.paths import EVENTS

REPO = "team/app"
SAMPLE = EVENTS / "ecr_image_action_push_success.json"


@pytest.fixture
def pushed(ecr: Any, images: Any) -> str:
    """One tagged push: one ECR Image Action event waiting on the queue."""
    ecr.create_repository(repositoryName=REPO)
    return str(images.push(REPO, "v1").digest)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_drain_delivers_the_aws_envelope_and_deletes(aws: Any, sqs: Any, pushed: str) -> None:
    received: list[dict[str, Any]] = []
    pump = EventPump(sqs, aws.resources.events_queue_url, received.append)

    assert pump.drain() == 1
    [event] = received
    sample = json.loads(SAMPLE.read_text())
    assert list(event) == list(sample)  # exactly the envelope keys: no "ingestion-time"
    assert event["detail-type"] == "ECR Image Action"
    assert event["account"] == "123456789012"
    assert event["detail"]["image-digest"] == pushed
    assert event["detail"]["image-tag"] == "v1"
    assert queue_depth(sqs, aws.resources.events_queue_url) == 0
    assert pump.drain() == 0


def test_failed_delivery_is_redelivered(aws: Any, sqs: Any, pushed: str) -> None:
    calls: list[dict[str, Any]] = []

    def flaky(event: dict[str, Any]) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("handler crashed")

    pump = EventPump(sqs, aws.resources.events_queue_url, flaky)
    assert pump.drain() == 1
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the same event, same id: handlers must be idempotent
    assert queue_depth(sqs, aws.resources.events_queue_url) == 0


def test_a_poison_event_ends_in_the_dead_letter_queue(aws: Any, sqs: Any, pushed: str) -> None:
    attempts: list[str] = []

    def always_fails(event: dict[str, Any]) -> None:
        attempts.append(event["id"])
        raise ValueError("cannot handle")

    pump = EventPump(sqs, aws.resources.events_queue_url, always_fails)
    assert pump.drain(max_rounds=10) == 0
    assert len(attempts) == 3  # the queue's maxReceiveCount, like Lambda's two async retries
    assert queue_depth(sqs, aws.resources.events_queue_url) == 0
    dead = sqs.receive_message(QueueUrl=aws.resources.dead_letter_queue_url)["Messages"]
    assert json.loads(dead[0]["Body"])["id"] == attempts[0]


def test_drain_stops_after_max_rounds(aws: Any, sqs: Any, pushed: str) -> None:
    attempts: list[str] = []

    def always_fails(event: dict[str, Any]) -> None:
        attempts.append(event["id"])
        raise ValueError("cannot handle")

    pump = EventPump(sqs, aws.resources.events_queue_url, always_fails)
    assert pump.drain(max_rounds=2) == 0
    assert len(attempts) == 2
    assert queue_depth(sqs, aws.resources.events_queue_url) == 1  # left for redelivery


def test_run_delivers_until_stopped(aws: Any, sqs: Any, ecr: Any, images: Any) -> None:
    ecr.create_repository(repositoryName=REPO)
    received: list[dict[str, Any]] = []
    stop = threading.Event()
    pump = EventPump(sqs, aws.resources.events_queue_url, received.append)
    thread = threading.Thread(target=pump.run, args=(stop,), daemon=True)
    thread.start()
    try:
        digest = images.push(REPO, "v1").digest
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert [e["detail"]["image-digest"] for e in received] == [digest]


def test_to_aws_envelope_drops_moto_keys_and_orders_like_aws() -> None:
    body = {
        "detail": {"a": 1},
        "id": "x",
        "ingestion-time": 1.5,
        "version": "0",
        "time": "2024-01-01T00:00:00Z",
        "source": "aws.ecr",
        "detail-type": "ECR Image Action",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": [],
    }
    event = to_aws_envelope(body)
    assert list(event) == list(json.loads(SAMPLE.read_text()))
    assert "ingestion-time" not in event
