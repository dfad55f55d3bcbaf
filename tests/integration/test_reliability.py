"""Reliability of the event path under faults: a dropped connection is retried, never recorded
as a failure; a decision is applied only when every write of it landed; a lost answer to the
idempotency write does not strand the event; one push costs one shared read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

import app
from chalicelib.ecr import registries
from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.gate.records import records
from chalicelib.gate.sweep import sweep as gate_sweep
from chalicelib.kernel.errors import AwsCallError
from chalicelib.kernel.settings import get_settings
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT, REGION
from tests.faults import fast_backoff, injected
from tests.imagefactory import push_built
from tests.paths import EVENTS

GATE_POLICY = """
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0, HIGH: 0}
      promotion_tags: [approved]
      scan_timeout_minutes: 30
"""

ALL_POLICY = """
tagging:
  - repositories: ["team/*"]
    semver_aliases: true
    latest: true
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0}
      promotion_tags: [approved]
replication:
  - name: mirror
    repositories: ["team/*"]
    triggers: [push]
    destinations:
      - repository: "mirror/{repository}"
"""


def invoke(event: dict) -> dict:
    return app.on_ecr_event(event, LocalLambdaContext())


def discard_queued(aws) -> None:
    boto3.client("sqs").purge_queue(QueueUrl=aws.resources.events_queue_url)


def event_from(sample: str, event_id: str, **detail: object) -> dict:
    event = json.loads((EVENTS / sample).read_text())
    event.update(id=event_id, account=ACCOUNT, region=REGION)
    event["detail"].update(detail)
    return event


def scan_event(repository: str, digest: str, event_id: str) -> dict:
    return event_from(
        "ecr_image_scan_basic_complete.json",
        event_id,
        **{"repository-name": repository, "image-digest": digest, "finding-severity-counts": {}},
    )


def push_event(repository: str, digest: str, tag: str | None, event_id: str) -> dict:
    event = event_from(
        "ecr_image_action_push_success.json",
        event_id,
        **{"repository-name": repository, "image-digest": digest},
    )
    if tag is None:
        event["detail"].pop("image-tag")
    else:
        event["detail"]["image-tag"] = tag
    return event


def tags_of(registry: Registry, repository: str, digest: str) -> set[str]:
    return set(registry.describe_image(repository, digest=digest).tags)


@pytest.fixture
def clean_image(aws, registry, policy_file):
    policy_file(GATE_POLICY)
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[128], seed=41)
    push_built(registry, image, "team/app", tag="1.0.0")
    discard_queued(aws)
    return image.manifest.digest


def test_dropped_connection_on_promotion_is_retried_not_recorded(clean_image, registry) -> None:
    event = scan_event("team/app", clean_image, "scan-dropped-1")
    # Every put-image attempt loses its connection: botocore's retries are exhausted.
    drops = injected({"ecr": {"drop": 1.0}}, operations={"PutImage"})
    with fast_backoff(), drops as faults, pytest.raises(AwsCallError) as raised:
        invoke(event)
    assert raised.value.transient  # raised so Lambda retries, not recorded as a failed put
    assert faults.injected["ecr:drop"] >= 2
    assert "approved" not in tags_of(registry, "team/app", clean_image)
    assert records().get("team/app", clean_image) is None  # nothing marked applied

    result = invoke(event)  # Lambda's retry

    assert result["status"] == "handled"
    assert "approved" in tags_of(registry, "team/app", clean_image)
    record = records().get("team/app", clean_image)
    assert record is not None and record.applied and record.status == "pass"


def test_decision_with_a_failed_write_stays_due_and_the_sweep_applies_it(
    clean_image, registry, monkeypatch
) -> None:
    original = Registry.put_manifest

    def denied(self, repository, manifest, tag=None):
        raise RegistryError("AccessDeniedException", "not allowed", "put_image")

    monkeypatch.setattr(Registry, "put_manifest", denied)
    result = invoke(scan_event("team/app", clean_image, "scan-denied-1"))
    monkeypatch.setattr(Registry, "put_manifest", original)

    assert result["gate"]["tags"][0]["outcome"] == "failed"
    assert "AccessDeniedException" in result["gate"]["tags"][0]["reason"]
    record = records().get("team/app", clean_image)
    assert record is not None and record.status == "pass" and not record.applied
    assert record.decision is not None and record.decision.revisit_at is not None

    outcome = gate_sweep(datetime.now(UTC))

    assert outcome["pass"] == 1
    assert "approved" in tags_of(registry, "team/app", clean_image)
    record = records().get("team/app", clean_image)
    assert record is not None and record.applied


def test_lost_answer_to_the_in_progress_write_does_not_strand_the_event(
    aws, registry, policy_file, monkeypatch
) -> None:
    policy_file()  # the example policy: aliases and latest
    monkeypatch.setenv("STEWARD_IDEMPOTENCY_IN_PROGRESS", "1")
    get_settings.cache_clear()
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[128], seed=42)
    push_built(registry, image, "team/app", tag="3.2.1")
    discard_queued(aws)
    event = push_event("team/app", image.manifest.digest, "3.2.1", "lost-answer-1")

    # DynamoDB applies the in-progress write; its answer is lost; botocore's retry of the write
    # then finds the record in progress (unless, on a loaded machine, the retry came after the
    # window: then it takes the record over at once, which is the same recovery).
    deadline = datetime.now(UTC).timestamp() + 15
    with injected({"dynamodb": {"lost": 1.0}}, operations={"PutItem"}, limit=1) as faults:
        while True:
            try:
                result = invoke(event)  # the invocation, then Lambda's retries
                break
            except IdempotencyAlreadyInProgressError:
                assert datetime.now(UTC).timestamp() < deadline, "the event stayed stranded"
                assert tags_of(registry, "team/app", image.manifest.digest) == {"3.2.1"}
    assert faults.injected["dynamodb:lost"] == 1
    assert result["status"] == "handled"
    assert {"3.2", "3", "latest"} <= tags_of(registry, "team/app", image.manifest.digest)
    assert invoke(event).get("duplicate") is True  # and processed exactly once in effect


def test_in_progress_window_is_shorter_than_lambdas_first_retry() -> None:
    # Lambda's async retries come about 1 and 3 minutes after a failure.
    assert get_settings().idempotency_in_progress_seconds < 60


def test_ecr_calls_per_push_are_shared_by_the_reactions(aws, registry, policy_file) -> None:
    policy_file(ALL_POLICY)
    registry.create_repository("team/app")
    registry.create_repository("mirror/team/app")
    image = build_image(layer_sizes=[128], seed=43)
    push_built(registry, image, "team/app", tag="2.4.0")
    discard_queued(aws)
    digest = image.manifest.digest
    gateway = registries.registry(ACCOUNT, REGION)

    gateway.calls.clear()
    result = invoke(push_event("team/app", digest, "2.4.0", "calls-new-aliases"))
    new_aliases = dict(gateway.calls)

    assert result["status"] == "handled"
    assert {"2.4", "2", "latest"} <= tags_of(registry, "team/app", digest)
    assert {"tagging", "gate", "replication"} <= set(result)
    writes = new_aliases.pop("put_image")
    assert writes == 3
    # One listing read by tagging, gate and replication; the manifest bytes every put needs;
    # the scan the gate asks for. No second listing: no other writer of the repository's
    # aliases started while this one wrote (chalicelib.tagging.writers).
    assert new_aliases == {"describe_images": 1, "batch_get_image": 1, "start_image_scan": 1}

    # ECR's event for an alias put by the service: everything already converged.
    gateway.calls.clear()
    result = invoke(push_event("team/app", digest, "2.4", "calls-converged"))
    assert result["status"] == "handled"
    print("ECR calls, converged push:", dict(gateway.calls), "new aliases:", new_aliases)
    assert sum(gateway.calls.values()) <= 2, gateway.calls
    assert gateway.calls["put_image"] == 0


def test_permanent_failure_is_dead_lettered_once_and_a_redrive_is_processed(
    aws, registry, policy_file, monkeypatch
) -> None:
    policy_file(ALL_POLICY)
    registry.create_repository("team/app")
    registry.create_repository("mirror/team/app")
    image = build_image(layer_sizes=[128], seed=44)
    push_built(registry, image, "team/app", tag="5.1.0")
    discard_queued(aws)
    event = push_event("team/app", image.manifest.digest, "5.1.0", "permanent-1")
    original = Registry.start_image_scan

    def denied(self, repository, digest):
        raise RegistryError("AccessDeniedException", "no ecr:StartImageScan", "start_image_scan")

    monkeypatch.setattr(Registry, "start_image_scan", denied)
    result = invoke(event)
    monkeypatch.setattr(Registry, "start_image_scan", original)

    assert result["status"] == "failed"
    assert result["reason"].startswith("gate: ecr.start_image_scan: AccessDeniedException")
    assert "replication" in result  # the reactions after the failed one still ran
    assert {"5.1", "5", "latest"} <= tags_of(registry, "team/app", image.manifest.digest)
    sqs = boto3.client("sqs")
    letters = sqs.receive_message(
        QueueUrl=aws.resources.dead_letter_queue_url, MaxNumberOfMessages=10
    ).get("Messages", [])
    assert [json.loads(m["Body"])["reason"] for m in letters] == [result["reason"]]

    redriven = invoke(json.loads(letters[0]["Body"])["event"])  # after the fix (IAM) lands
    assert redriven["status"] == "handled" and not redriven.get("duplicate")


def test_the_repository_is_described_only_when_a_tag_moves(aws, registry, policy_file) -> None:
    policy_file()  # the example policy: aliases and latest
    registry.create_repository("team/app")
    first = build_image(layer_sizes=[128], seed=45)
    second = build_image(layer_sizes=[128], seed=46)
    push_built(registry, first, "team/app", tag="1.0.0")
    gateway = registries.registry(ACCOUNT, REGION)
    gateway.calls.clear()
    invoke(push_event("team/app", first.manifest.digest, "1.0.0", "moves-1"))
    assert gateway.calls["describe_repositories"] == 0  # 1.0, 1 and latest are new tags

    push_built(registry, second, "team/app", tag="1.1.0")
    gateway.calls.clear()
    invoke(push_event("team/app", second.manifest.digest, "1.1.0", "moves-2"))

    # `1` and `latest` move: whether they may depends on the repository's tag mutability.
    assert gateway.calls["describe_repositories"] == 1
    assert {"1.1", "1", "latest"} <= tags_of(registry, "team/app", second.manifest.digest)
    assert tags_of(registry, "team/app", first.manifest.digest) == {"1.0.0", "1.0"}
