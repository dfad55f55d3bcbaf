"""End to end: pushes and deletes at the embedded ECR emit ECR's events, `on_ecr_event` queues one
copy job per image and destination, and `on_copy_job` (fed by SQS as Lambda's event source
mapping does) copies them; delete sync removes only what the rule copied; throttling is survived
with nothing lost."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse

import app
from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import assumed_session
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.oci.referrers import cosign_tag
from steward_tools.local.delivery import EventPump
from steward_tools.local.jobs import SqsJobPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image, build_index, build_signature
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built

OTHER_ACCOUNT = "210987654321"
OTHER_REGION = "us-west-2"


@pytest.fixture(autouse=True)
def _fresh_clients(aws):
    reset_clients()
    yield
    reset_clients()


def deliver_events(aws) -> list[dict]:
    results: list[dict] = []
    pump = EventPump(
        boto3.client("sqs"),
        aws.resources.events_queue_url,
        lambda event: results.append(app.on_ecr_event(event, LocalLambdaContext())),
    )
    pump.drain()
    return results


def run_copy_jobs(aws, rounds: int = 50) -> list[dict]:
    responses: list[dict] = []

    def invoke(event: dict) -> dict:
        response = app.on_copy_job(event, LocalLambdaContext())
        responses.append(response)
        return response

    SqsJobPump(boto3.client("sqs"), aws.resources.replication_queue_url, invoke).drain(rounds)
    return responses


def other_account_ecr():
    session = assumed_session(
        f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-steward-replication", "ecr-steward-replication"
    )
    return session.client("ecr", region_name=OTHER_REGION)


def tags_in(ecr, repository: str) -> dict[str, str]:
    details = ecr.describe_images(repositoryName=repository)["imageDetails"]
    return {t: d["imageDigest"] for d in details for t in d.get("imageTags", [])}


POLICY = """
replication:
  - name: releases
    repositories: ["team/*"]
    tag_semver: ">=1.0.0"
    delete_sync: true
    destinations:
      - repository: "mirror/{repository}"
      - region: us-west-2
      - account: "210987654321"
        region: us-west-2
"""


def test_tag_filtered_rule_copies_to_repository_region_and_account(
    aws, registry, policy_file
) -> None:
    policy_file(POLICY)
    registry.create_repository("team/app")
    release = build_image([4096, 1024], seed=21)
    index = build_index(
        [build_image([2048], seed=22), build_image([2048], seed=23, architecture="arm64")]
    )
    signature = build_signature(index, seed=24)
    dev = build_image([1024], seed=25)
    push_built(registry, release, "team/app", tag="1.2.0")
    push_built(registry, index, "team/app", tag="2.0.0")
    push_built(registry, dev, "team/app", tag="0.9.0-dev")

    outcomes = deliver_events(aws)
    queued = [o["replication"] for o in outcomes if "replication" in o]
    assert sum(len(q["jobs"]) for q in queued) == 6  # two images, three destinations each
    responses = run_copy_jobs(aws)
    assert all(not r["batchItemFailures"] for r in responses)
    # The signature pushed after its image is copied too: its push queues the image again.
    push_built(registry, signature, "team/app", tag=cosign_tag(index.digest))
    deliver_events(aws)
    run_copy_jobs(aws)

    wanted = {
        "1.2.0": release.digest,
        "2.0.0": index.digest,
        cosign_tag(index.digest): signature.digest,
    }
    same_registry = tags_in(boto3.client("ecr"), "mirror/team/app")
    other_region = tags_in(boto3.client("ecr", region_name=OTHER_REGION), "team/app")
    other_account = tags_in(other_account_ecr(), "team/app")
    for copy in (same_registry, other_region, other_account):
        assert copy == wanted  # 0.9.0-dev is below the range: not copied
    for child in index.children:
        assert Registry(region=OTHER_REGION).get_manifest("team/app", digest=child.digest).body == (
            child.manifest.body
        )


def test_delete_sync_removes_only_copies_the_rule_made(aws, registry, policy_file) -> None:
    policy_file(
        POLICY.replace(
            '      - region: us-west-2\n      - account: "210987654321"\n'
            "        region: us-west-2\n",
            "",
        )
    )
    registry.create_repository("team/app")
    ours = build_image([1024], seed=31)
    theirs = build_image([1024], seed=32)
    push_built(registry, ours, "team/app", tag="1.0.0")
    deliver_events(aws)
    run_copy_jobs(aws)
    # Someone else put `theirs` into the mirror directly, and it is at the source too.
    push_built(registry, theirs, "mirror/team/app", tag="1.1.0")
    push_built(registry, theirs, "team/app", tag="x-1.1.0")
    deliver_events(aws)

    registry.delete_images("team/app", [{"imageDigest": ours.digest}])
    registry.delete_images("team/app", [{"imageDigest": theirs.digest}])
    outcomes = deliver_events(aws)
    assert any("replication" in o for o in outcomes)
    run_copy_jobs(aws)

    left = tags_in(boto3.client("ecr"), "mirror/team/app")
    assert left == {"1.1.0": theirs.digest}


def test_throttling_is_survived_and_no_job_is_lost(aws, registry, policy_file) -> None:
    policy_file(POLICY)
    registry.create_repository("team/app")
    images = [build_image([1024, 2048], seed=40 + n) for n in range(2)]
    for n, image in enumerate(images):
        push_built(registry, image, "team/app", tag=f"1.{n}.0")
    deliver_events(aws)

    throttled: list[str] = []
    calls = {"n": 0}

    def throttle(request, event_name, **kwargs):
        calls["n"] += 1
        n = calls["n"]
        # Two in a row outlast the 2 attempts (the job fails and comes back); then every 7th
        # call, a few times (botocore's adaptive mode slows the client after each).
        if n not in (3, 4) and (n % 7 or len(throttled) >= 6):
            return None
        throttled.append(event_name.rsplit(".", 1)[-1])
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
        return AWSResponse(request.url, 400, {"x-amzn-requestid": "t"}, _Raw(body.encode()))

    # Every gateway the jobs use gives up after 2 attempts (one retry), so throttling can
    # outlast the retries: the job fails, SQS redelivers it, and it resumes.
    for account, region, role in [
        (ACCOUNT, REGION, None),
        (ACCOUNT, OTHER_REGION, None),
        (OTHER_ACCOUNT, OTHER_REGION, f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-steward-replication"),
    ]:
        gateway = registries.registry(account, region, role)
        gateway._max_attempts = 1  # botocore: retries after the first attempt
        gateway.client.meta.events.register("before-send.ecr", throttle)

    responses = run_copy_jobs(aws, rounds=200)

    assert throttled and any(r["batchItemFailures"] for r in responses)
    for ecr, repository in [
        (boto3.client("ecr"), "mirror/team/app"),
        (boto3.client("ecr", region_name=OTHER_REGION), "team/app"),
        (other_account_ecr(), "team/app"),
    ]:
        assert tags_in(ecr, repository) == {f"1.{n}.0": i.digest for n, i in enumerate(images)}
    dlq = boto3.client("sqs").get_queue_url(QueueName="steward-replication-jobs-dlq")["QueueUrl"]
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=dlq)


class _Raw:
    """The raw body botocore reads from a short-circuited response."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def test_gate_rule_waits_for_the_gate_decision(aws, registry, policy_file) -> None:
    policy_file("""
replication:
  - name: vetted
    repositories: ["team/*"]
    triggers: [gate]
    destinations: [{repository: "vetted/{repository}"}]
""")
    registry.create_repository("team/app")
    image = build_image([1024], seed=50)
    push_built(registry, image, "team/app", tag="1.0.0")
    outcomes = deliver_events(aws)
    assert not any("replication" in o for o in outcomes)  # a push alone copies nothing

    def announce(verdict: str) -> list[dict]:
        """The gate's decision event, put on the default bus as `chalicelib.gate.records` does."""
        detail = {"repository-name": "team/app", "image-digest": image.digest, "decision": verdict}
        boto3.client("events").put_events(
            Entries=[
                {
                    "Source": "steward.gate",
                    "DetailType": "Steward Gate Decision",
                    "Detail": json.dumps(detail),
                    "Resources": [],
                }
            ]
        )
        return deliver_events(aws)

    assert not any("replication" in o for o in announce("fail"))
    [outcome] = announce("pass")
    assert outcome["kind"] == "gate-decision"
    assert outcome["replication"]["status"] == "queued"
    run_copy_jobs(aws)
    assert tags_in(boto3.client("ecr"), "vetted/team/app") == {"1.0.0": image.digest}
