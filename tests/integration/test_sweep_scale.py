"""The sweep at 2,000 repositories: walked a page per invocation through its own queue, one sweep at
a time, every repository's job taking effect once although invocations crash and are retried."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.sweep import jobs as sweep
from chalicelib.sweep.ledger import ledger
from steward_tools.local.jobs import sqs_event
from steward_tools.local.runner import LocalLambdaContext
from tests.aws_helpers import CallCounter, scheduled_event

PAGE = 100  # repositories a page job lists (1,000 on AWS): 20 pages for 2,000 repositories
REPOSITORIES = 2000
SCHEDULED = scheduled_event("start_sweep", "2026-11-27T04:00:00Z")


@pytest.fixture
def ran(monkeypatch: Any, policy_file: Any) -> Counter[str]:
    """Replace the sweep's tasks with one that counts the repositories it ran for; `fail/*`
    repositories crash once after their claim (an invocation killed mid-task)."""
    policy_file("retention:\n  rules: []\n")
    runs: Counter[str] = Counter()
    crashed: set[str] = set()

    def task(registry: Registry, repository: RepositoryInfo, now: datetime) -> dict[str, Any]:
        if repository.name.startswith("fail/") and repository.name not in crashed:
            crashed.add(repository.name)
            raise RuntimeError("killed mid-task")
        runs[repository.name] += 1
        return {}

    everything = sweep.SweepTask("count", task, lambda policy, name: not name.startswith("out/"))
    monkeypatch.setattr(sweep, "REPOSITORY_TASKS", (everything,))
    monkeypatch.setattr(sweep, "PAGE_SIZE", PAGE)
    return runs


def create_repositories(names: list[str]) -> None:
    client = boto3.client("ecr")
    for name in names:
        client.create_repository(repositoryName=name)


def drain(counter: CallCounter) -> list[Counter[str]]:
    """Deliver the repository-job queue to `on_repository_job` as Lambda would (batches of 10,
    failed records back on the queue); returns each invocation's calls."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="steward-repository-jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    invocations = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", []):
        counter.take()
        try:
            response = app.on_repository_job(
                sqs_event(messages, arn["QueueArn"], "us-east-1"), LocalLambdaContext()
            )
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        except Exception:  # the whole invocation crashed: Lambda retries the whole batch
            failed = {m["MessageId"] for m in messages}
        invocations.append(counter.take())
        done = [m for m in messages if m["MessageId"] not in failed]
        for m in messages:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        if done:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
                ],
            )
    return invocations


def test_two_thousand_repositories_a_page_per_invocation_each_job_once_despite_crashes(
    aws: Any, counted: CallCounter, ran: Counter[str], monkeypatch: Any
) -> None:
    # One in five in scope: every page is listed, and the test stays within its time budget.
    names = [f"{'out' if n % 5 else 'team'}/r{n:04d}" for n in range(REPOSITORIES - 5)]
    names += [f"fail/r{n}" for n in range(5)]
    create_repositories(names)
    # The fourth page invocation is killed after sending part of its jobs: the retry lists the
    # page again and sends them all again (and its next page job twice).
    real_send = sweep.send_jobs
    sent_pages: list[int] = []

    def send_and_crash_once(queue: str, bodies: list[str]) -> int:
        sent_pages.append(1)
        if len(sent_pages) == 4:
            real_send(queue, bodies[: len(bodies) // 2])
            raise RuntimeError("killed mid-page")
        return real_send(queue, bodies)

    monkeypatch.setattr(sweep, "send_jobs", send_and_crash_once)

    started = app.start_sweep(SCHEDULED, LocalLambdaContext())
    assert started["started"] is True
    # While it runs, another start (a later schedule, `steward sweep run`) is refused.
    again = app.start_sweep({**SCHEDULED, "id": "another"}, LocalLambdaContext())
    assert again["started"] is False and again["running"] == SCHEDULED["id"]
    # The same schedule event delivered twice queues page 0 again: its claim drops the copy.
    assert app.start_sweep(SCHEDULED, LocalLambdaContext())["started"] is True

    invocations = drain(counted)

    in_scope = [n for n in names if not n.startswith("out/")]
    assert ran == Counter(in_scope)  # every repository in scope once, none twice, none lost
    lease = ledger().lease("123456789012", "us-east-1")
    assert lease is not None and lease.listed and lease.page == REPOSITORIES // PAGE - 1
    # No invocation's work grows with the registry: a page job lists one page, sends its jobs (10
    # a call) and the next page job; a batch of repository jobs reads the lease once and claims
    # each repository. (A batch may also hold copies of a page job, each one conditional write.)
    for calls in invocations:
        assert calls["DescribeRepositories"] <= 1, calls
        assert calls["SendMessageBatch"] <= PAGE // 10 + 1, calls
        assert calls["UpdateItem"] <= 10 + 1 and calls["PutItem"] <= 10, calls
        assert calls["GetItem"] <= 1, calls
        assert sum(calls.values()) <= 10 + 1 + PAGE // 10 + 1 + 2, calls
    assert sum(c["DescribeRepositories"] for c in invocations) == REPOSITORIES // PAGE + 1


def test_a_stale_job_of_an_older_sweep_is_dropped_and_an_expired_lease_is_taken_over(
    aws: Any, counted: CallCounter, ran: Counter[str]
) -> None:
    create_repositories(["team/a"])
    first = datetime(2026, 11, 27, 4, tzinfo=UTC)
    store = ledger()
    assert store.acquire("123456789012", "us-east-1", "old", first)[0] is True
    assert (
        store.acquire("123456789012", "us-east-1", "new", first + timedelta(minutes=30))[0] is False
    )
    # The old sweep's walk died: its lease expires and the next start takes over.
    taken, lease = store.acquire("123456789012", "us-east-1", "new", first + timedelta(hours=1))
    assert taken and lease is not None and lease.sweep_id == "new"
    repository = Registry(region="us-east-1").describe_repository("team/a")
    old_job = sweep.RepositoryJob(
        sweep_id="old",
        account="123456789012",
        region="us-east-1",
        repository=repository,
        started_at=first,
    )

    outcome = sweep.run_repository_job(old_job, first + timedelta(hours=1), "m-1", lease)

    assert "stale" in outcome["dropped"] and ran == Counter()
    # The old sweep's page jobs cannot claim a page of the new sweep's lease either.
    assert not store.claim_page("123456789012", "us-east-1", "old", 0, "m-2")
    current = old_job.model_copy(update={"sweep_id": "new", "started_at": lease.started_at})
    sweep.run_repository_job(current, first + timedelta(hours=1), "m-3", lease)
    assert ran == Counter({"team/a": 1})
