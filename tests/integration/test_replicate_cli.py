"""`steward replicate`: backfill dry run, copy, and native configuration, on the embedded ECR.
Backfill at scale: jobs produced as the registry is listed, copied a few at once (each image
exactly once, a failure reported without stopping the rest), or sent to the copy queue as they
are listed without letting the queue fill."""

from __future__ import annotations

import json
import threading
from collections import Counter

import boto3
import pytest
from click.testing import CliRunner

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.kernel.jobqueue import waiting_messages
from chalicelib.kernel.settings import get_settings
from chalicelib.replication import backfill
from chalicelib.replication.backfill import backfill_jobs, enqueue_backfill, find_rule
from steward_tools.cli import main
from steward_tools.local.jobs import SqsJobPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built

MiB = 1024 * 1024


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


POLICY = """
replication:
  - name: backfill-eu
    repositories: ["team/*"]
    tags: "1.*"
    destinations: [{region: eu-west-1}]
  - name: prefix-eu
    repositories: ["team/*"]
    triggers: [push]
    destinations: [{region: eu-west-1}]
"""


def test_replicate_backfill_dry_run_then_copy_then_nothing_left(aws, registry, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)
    registry.create_repository("team/app")
    image = build_image([2 * MiB, 1024], seed=60)
    push_built(registry, image, "team/app", tag="1.0.0")
    push_built(registry, build_image([1024], seed=61), "team/app", tag="2.0.0")
    size = sum(len(b) for b in image.blobs.values())

    planned = cli("replicate", "--rule", "backfill-eu", "--dry-run")
    planned_line = f"1 images (1 to copy, 0 already there, 0 failed), {size} bytes to move"
    assert planned_line in planned.output
    eu = boto3.client("ecr", region_name="eu-west-1")
    assert eu.describe_repositories()["repositories"] == []

    copied = cli("replicate", "--rule", "backfill-eu")
    assert f"1 images (1 copied, 0 already there, 0 failed), {size} bytes moved" in copied.output
    found = eu.describe_images(repositoryName="team/app")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in found] == [(image.digest, ["1.0.0"])]

    again = cli("replicate", "--rule", "backfill-eu")
    assert f"(0 copied, 1 already there, 0 failed), 0 bytes moved, {size} bytes" in again.output
    dry_again = cli("replicate", "--rule", "backfill-eu", "--dry-run", "--json")
    summary = json.loads(dry_again.stdout)  # the JSON alone on stdout
    assert (summary["unchanged"], summary["bytes_planned"]) == (1, 0)
    assert [r["status"] for r in summary["results"]] == ["unchanged"]
    # Not a terminal: plain lines, no carriage returns of a progress bar.
    assert "\r" not in planned.stderr + copied.stderr + dry_again.stderr
    assert "replicate, images 1/1: 2.0 MiB in" in copied.stderr


def test_replicate_native_writes_ecr_configuration_or_says_why(aws, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)
    refused = cli("replicate", "native", "--rule", "backfill-eu")
    assert refused.exit_code == 2
    assert "no tag filter" in refused.output

    written = cli("replicate", "native", "--rule", "prefix-eu")
    assert written.exit_code == 0
    registry = boto3.client("ecr").describe_registry()["replicationConfiguration"]["rules"]
    assert registry == [
        {
            "destinations": [{"region": "eu-west-1", "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
        }
    ]
    assert json.loads(written.output.split("\nrule")[0]) == {"rules": registry}


def test_replicate_native_all_says_which_rules_ecr_could_serve(aws, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)

    report = cli("replicate", "native", "--all")

    assert report.exit_code == 0
    assert "backfill-eu: needs ecr-steward's copy engine" in report.output
    assert "it filters tags; ECR replication has no tag filter" in report.output
    assert "prefix-eu: native ECR replication could serve it" in report.output
    assert boto3.client("ecr").describe_registry()["replicationConfiguration"]["rules"] == []


@pytest.fixture
def backfill_policy(aws, policy_file):
    reset_clients()
    policy_file(POLICY)
    yield
    reset_clients()


def push_images(registry: Registry, per_repository: int) -> set[str]:
    """`per_repository` selected images (and one the filter leaves out) in two repositories."""
    digests = set()
    for r, repository in enumerate(["team/app", "team/api"]):
        registry.create_repository(repository)
        for n in range(per_repository):
            image = build_image([256], seed=100 * r + n)
            digests.add(push_built(registry, image, repository, tag=f"1.0.{n}"))
        push_built(registry, build_image([256], seed=100 * r + 99), repository, tag="2.0.0")
    return digests


def destination_digests() -> Counter[str]:
    ecr = boto3.client("ecr", region_name="eu-west-1")
    return Counter(
        d["imageDigest"]
        for name in ("team/app", "team/api")
        for d in ecr.describe_images(repositoryName=name)["imageDetails"]
    )


def test_concurrent_backfill_copies_each_image_once_and_counts_right(
    backfill_policy, registry, monkeypatch
) -> None:
    digests = push_images(registry, 6)
    copied: Counter[str] = Counter()
    together = threading.Barrier(4, timeout=30)  # breaks unless 4 copies run at once
    real = backfill.copy_image

    def copy_image(job, **kwargs):
        copied[job.digest] += 1
        if sum(copied.values()) <= 4:
            together.wait()
        return real(job, **kwargs)

    monkeypatch.setattr(backfill, "copy_image", copy_image)

    result = cli("replicate", "--rule", "backfill-eu", "--concurrency", "4")

    assert result.exit_code == 0, result.output
    assert copied == Counter(dict.fromkeys(digests, 1))
    assert destination_digests() == Counter(dict.fromkeys(digests, 1))
    assert "12 images (12 copied, 0 already there, 0 failed)" in result.stdout
    assert "replicate, images 12/12:" in result.stderr

    again = cli("replicate", "--rule", "backfill-eu", "--concurrency", "4")
    assert "12 images (0 copied, 12 already there, 0 failed), 0 bytes moved" in again.stdout


def test_a_failing_copy_is_reported_and_the_others_go_on(
    backfill_policy, registry, monkeypatch
) -> None:
    digests = push_images(registry, 3)
    broken = sorted(digests)[0]
    real = backfill.copy_image

    def copy_image(job, **kwargs):
        if job.digest == broken:
            raise OSError("connection reset by peer")
        return real(job, **kwargs)

    monkeypatch.setattr(backfill, "copy_image", copy_image)

    result = cli("replicate", "--rule", "backfill-eu", "--concurrency", "3")

    assert result.exit_code == 1
    assert "5 images (5 copied, 0 already there, 1 failed)" in result.stdout
    assert "failed: team/" in result.stderr and f"@{broken} → " in result.stderr
    assert "connection reset by peer" in result.stderr
    assert set(destination_digests()) == digests - {broken}


def test_jobs_are_yielded_as_the_registry_is_listed(backfill_policy, registry) -> None:
    push_images(registry, 2)
    source = Registry(region=REGION)

    jobs = backfill_jobs(find_rule("backfill-eu"), source, ACCOUNT, REGION)
    first = next(jobs)

    # One repository's images have been read; the other's are not yet.
    assert source.calls["describe_images"] == 1
    assert first.source_repository in ("team/app", "team/api")
    assert len([first, *jobs]) == 4
    assert source.calls["describe_images"] == 2


def test_queued_backfill_keeps_the_queue_under_its_high_water_and_loses_nothing(
    aws, backfill_policy, registry, monkeypatch
) -> None:
    digests = push_images(registry, 6)
    queue = get_settings().replication_queue
    monkeypatch.setattr(backfill, "QUEUE_CHUNK", 3)
    pump = SqsJobPump(
        boto3.client("sqs"),
        aws.resources.replication_queue_url,
        lambda event: app.on_copy_job(event, LocalLambdaContext()),
        batch_size=5,
    )
    depths: list[int] = []

    def depth(name: str) -> int:
        depths.append(waiting_messages(name))
        return depths[-1]

    waits: list[float] = []

    def sleep(seconds: float) -> None:  # on_copy_job drains a batch meanwhile
        waits.append(seconds)
        pump.poll()

    rule = find_rule("backfill-eu")
    jobs = backfill_jobs(rule, Registry(region=REGION), ACCOUNT, REGION)

    sent = enqueue_backfill(jobs, queue=queue, high_water=5, depth=depth, sleep=sleep)
    pump.drain(20)

    assert sent == 12 and waits  # it waited for the queue to drain
    assert max(depths) <= 5
    assert destination_digests() == Counter(dict.fromkeys(digests, 1))

    queued = cli("replicate", "--rule", "backfill-eu", "--queue")
    assert f"rule backfill-eu: 12 copy jobs queued to {queue}" in queued.stdout
    assert pump.drain(20) == 12 and destination_digests() == Counter(dict.fromkeys(digests, 1))
