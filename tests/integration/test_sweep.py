"""The scheduled sweep: fan-out through SQS, one job per repository, partial batch failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.sweep import jobs as sweep
from steward_tools.local.jobs import SqsJobPump, sqs_event
from steward_tools.local.runner import LocalLambdaContext, invoke_on_repository_job
from steward_tools.samples import build_image
from tests.aws_helpers import scheduled_event
from tests.imagefactory import push_built

POLICY = """
retention:
  max_deletion_share: 1
  rules:
    - kind: expire_untagged
      repositories: ["team/*"]
      older_than_days: 0
"""

SCHEDULED_EVENT = scheduled_event("start_sweep", "2026-11-27T04:00:00Z")


def explode_on_broken(registry: Registry, repository: RepositoryInfo, now: datetime) -> dict:
    if repository.name == "team/broken":
        raise RuntimeError("this repository's task always fails")
    return {"ok": True}


def queue_messages(url: str) -> list[str]:
    sqs = boto3.client("sqs")
    bodies: list[str] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", []):
        bodies += [m["Body"] for m in batch]
    return bodies


@pytest.fixture
def repositories(registry: Registry, policy_file: Any) -> dict[str, str]:
    policy_file(POLICY)
    untagged = {}
    for name in ("team/a", "team/b", "team/broken"):
        registry.create_repository(name)
        push_built(registry, build_image([64], seed=1), name, "1.0.0")
        untagged[name] = push_built(registry, build_image([64], seed=2), name)
    registry.create_repository("other/out-of-scope")
    return untagged


def test_sweep_fans_out_and_a_failing_repository_blocks_nothing(
    aws: Any, registry: Registry, repositories: dict[str, str], monkeypatch: Any
) -> None:
    # Runs on what the other tasks put in scope; selects nothing of its own.
    exploding = sweep.SweepTask("explode", explode_on_broken, lambda policy, repository: False)
    monkeypatch.setattr(sweep, "REPOSITORY_TASKS", (*sweep.REPOSITORY_TASKS, exploding))
    queue = aws.resources.repository_jobs_queue_url

    started = app.start_sweep(SCHEDULED_EVENT, LocalLambdaContext())
    assert started["started"] is True and started["sqs_calls"] == 1  # the first page job
    # A message no worker can read shares the queue.
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody="{not json")

    SqsJobPump(boto3.client("sqs"), queue, invoke_on_repository_job).drain()

    for name in ("team/a", "team/b"):
        assert [i.tags for i in registry.iter_images(name)] == [["1.0.0"]]
    # Retention ran for the broken repository too; its job failed on the other task.
    assert [i.tags for i in registry.iter_images("team/broken")] == [["1.0.0"]]
    dead = queue_messages(queue.replace("steward-repository-jobs", "steward-repository-jobs-dlq"))
    assert sorted(dead, key=len)[0] == "{not json"
    assert json.loads(sorted(dead, key=len)[1])["repository"]["name"] == "team/broken"
    assert queue_messages(queue) == []


def test_on_repository_job_reports_only_the_failed_records(
    aws: Any, registry: Registry, repositories: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    good = sweep.RepositoryJob(
        sweep_id="s-1",
        account="123456789012",
        region="us-east-1",
        repository=registry.describe_repository("team/a"),
        started_at=now,
    )
    messages = [
        {"MessageId": "m-good", "ReceiptHandle": "r-1", "Body": good.model_dump_json()},
        {"MessageId": "m-bad", "ReceiptHandle": "r-2", "Body": '{"repository": 1}'},
    ]
    event = sqs_event(
        messages, "arn:aws:sqs:us-east-1:123456789012:steward-repository-jobs", "us-east-1"
    )

    response = app.on_repository_job(event, LocalLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert [i.tags for i in registry.iter_images("team/a")] == [["1.0.0"]]
    assert len(list(registry.iter_images("team/b"))) == 2  # not in this batch
