"""Handlers in separate processes against one embedded backend, under injected faults: aliases
converge on the highest release, every tag resolves, no event is lost; with faults on ECR,
DynamoDB and SQS together, redriving the dead letters ends where a fault-free run ends.
Sized for the suite; benchmarks/bench_reliability.py runs the large version."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.ecr import registries
from chalicelib.gate.records import records
from chalicelib.sweep import jobs as sweep
from tests.concurrency import (
    ACCOUNT,
    REGION,
    Outcome,
    invoke_like_lambda,
    run_pushers,
    tags_by_digest,
)

POLICY = """
tagging:
  - repositories: ["team/*"]
    semver_aliases: true
    latest: true
"""

GATED_POLICY = (
    POLICY
    + """
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0}
      promotion_tags: [approved]
"""
)

RELEASES = [(f"1.4.{n}", 700 + n) for n in range(16)]


def sweep_once(repository: str) -> dict:
    registry = registries.registry(ACCOUNT, REGION)
    job = sweep.RepositoryJob(
        sweep_id="repair",
        account=ACCOUNT,
        region=REGION,
        repository=registry.describe_repository(repository),
        started_at=datetime.now(UTC),
    )
    return sweep.run_repository_job(job, datetime.now(UTC))


def test_concurrent_pushes_under_throttling_and_drops_converge(aws, registry, policy_file) -> None:
    policy_file(POLICY)
    registry.create_repository("team/app")

    outcome = run_pushers(
        aws.endpoint_url,
        "team/app",
        RELEASES,
        processes=8,
        rates={"ecr": {"throttle": 0.30, "drop": 0.05}},
        seed=1,
    )

    assert not outcome.crashes, outcome.crashes[0]
    assert outcome.injected["ecr:throttle"] > 0 and outcome.injected["ecr:drop"] > 0
    assert outcome.statuses["handled"] + len(outcome.dead_letters) == len(RELEASES)
    if outcome.dead_letters:
        # Lambda gave up on an event: the sweep repairs within one period.
        sweep_once("team/app")
    tags = tags_by_digest(registry, "team/app")
    top = next(d for d, t in tags.items() if "1.4.15" in t)
    assert {"1.4", "1", "latest"} <= tags[top], tags
    for tag, _ in RELEASES:  # every tag resolves
        assert tag in registry.describe_image("team/app", tag=tag).tags
    print(
        f"concurrency: {len(RELEASES)} pushes, 8 processes, {dict(outcome.statuses)}, "
        f"{len(outcome.dead_letters)} dead-lettered, {outcome.retries} Lambda retries, "
        f"faults {dict(outcome.injected)}"
    )


def test_faults_on_ecr_dynamodb_and_sqs_then_redrive_equal_fault_free(
    aws, registry, policy_file
) -> None:
    policy_file(GATED_POLICY)
    releases = RELEASES[:6]
    registry.create_repository("team/faulty")
    registry.create_repository("team/clean")
    each = {"throttle": 0.08, "server": 0.04, "drop": 0.04, "lost": 0.04}  # 20% in all

    faulty = run_pushers(
        aws.endpoint_url,
        "team/faulty",
        releases,
        processes=3,
        rates={"ecr": each, "dynamodb": each, "sqs": each},
        seed=2,
        # One request per AWS call: the faults reach Lambda's retries and the dead-letter queue.
        attempts=1,
    )
    assert not faulty.crashes, faulty.crashes[0]
    assert sum(faulty.injected.values()) > 0
    assert faulty.retries > 0  # Lambda's retries were needed
    # Every event was processed, or dead-lettered with a reason.
    assert faulty.statuses["handled"] + len(faulty.dead_letters) == len(releases)
    assert all(letter["reason"] for letter in faulty.dead_letters)
    redriven = Outcome()
    for letter in faulty.dead_letters:
        invoke_like_lambda(letter["event"], redriven)
    assert redriven.statuses["handled"] == len(faulty.dead_letters)

    clean = run_pushers(aws.endpoint_url, "team/clean", releases, processes=1, rates={}, seed=3)
    assert clean.statuses["handled"] == len(releases) and not clean.dead_letters

    assert tags_by_digest(registry, "team/faulty") == tags_by_digest(registry, "team/clean")
    statuses = {
        repository: {r.digest: (r.status, r.applied) for r in records().for_repository(repository)}
        for repository in ("team/faulty", "team/clean")
    }
    assert statuses["team/faulty"] == statuses["team/clean"]
    print(
        f"faults 20% on ECR, DynamoDB, SQS: {dict(faulty.statuses)}, "
        f"{faulty.retries} Lambda retries, {len(faulty.dead_letters)} dead-lettered and redriven, "
        f"faults {dict(faulty.injected)}"
    )
