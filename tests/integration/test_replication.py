"""The copy engine against the embedded ECR: exact digests, indexes, signatures, referrers, only
missing blobs, other regions and accounts, resumable after a failure in the middle of a layer,
and throttling survived."""

from __future__ import annotations

from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import assumed_session
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.oci.referrers import cosign_tag
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.copy import DigestMismatch, copy_image
from chalicelib.replication.jobs import CopyJob, jobs_for
from chalicelib.replication.plan import plan_copy
from chalicelib.replication.source import read_destination, read_source
from steward_tools.samples import (
    build_image,
    build_index,
    build_referrer,
    build_signature,
)
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built, push_signed_index_among

MiB = 1024 * 1024
OTHER_ACCOUNT = "210987654321"
OTHER_REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def _fresh_clients(aws):
    reset_clients()
    yield
    reset_clients()


def rule(**fields) -> ReplicationRule:
    fields.setdefault("name", "mirror")
    fields.setdefault("repositories", ["team/*"])
    fields.setdefault("destinations", [{"repository": "mirror/{repository}"}])
    return ReplicationRule.model_validate(fields)


def one_job(r: ReplicationRule, repository: str, digest: str, tags: list[str]) -> CopyJob:
    [job] = jobs_for(
        r,
        trigger="test",
        account=ACCOUNT,
        region=REGION,
        repository=repository,
        digest=digest,
        tags=tags,
    )
    return job


def manifest_bytes(registry: Registry, repository: str, digest: str) -> str:
    return registry.get_manifest(repository, digest=digest).body


def test_single_arch_image_copied_exactly_then_second_run_moves_nothing(registry) -> None:
    registry.create_repository("team/app")
    image = build_image([6 * MiB, 3 * MiB, 1024], seed=1)
    push_built(registry, image, "team/app", tag="1.0.0")
    job = one_job(rule(), "team/app", image.digest, ["1.0.0"])

    first = copy_image(job, source=registry, destination=registry)

    assert first.status == "copied" and first.repository_created
    assert manifest_bytes(registry, "mirror/team/app", image.digest) == image.manifest.body
    assert registry.describe_image("mirror/team/app", tag="1.0.0").digest == image.digest
    assert first.bytes_moved == sum(len(b) for b in image.blobs.values())

    before = registry.calls.copy()
    second = copy_image(job, source=registry, destination=registry)
    made = registry.calls - before
    assert second.status == "unchanged" and second.bytes_moved == 0
    assert second.bytes_skipped == first.bytes_moved
    for upload_call in ("initiate_layer_upload", "upload_layer_part", "put_image"):
        assert made[upload_call] == 0, upload_call


def test_only_missing_blobs_move(registry) -> None:
    registry.create_repository("team/app")
    base = build_image([5 * MiB], seed=2)
    app_image = build_image([1024], seed=3, base=base)
    push_built(registry, base, "team/app", tag="base")
    push_built(registry, app_image, "team/app", tag="app")
    copy_image(
        one_job(rule(), "team/app", base.digest, ["base"]), source=registry, destination=registry
    )

    result = copy_image(
        one_job(rule(), "team/app", app_image.digest, ["app"]),
        source=registry,
        destination=registry,
    )

    shared = len(base.layers[0].blob)
    assert result.bytes_skipped == shared
    assert result.bytes_moved == sum(len(b) for b in app_image.blobs.values()) - shared


def test_index_with_children_cosign_signature_and_referrer_to_another_region(registry) -> None:
    registry.create_repository("team/multi")
    index = build_index(
        [build_image([2048], seed=4), build_image([4096], seed=5, architecture="arm64")]
    )
    signature = build_signature(index, seed=6)
    sbom = build_referrer(index, seed=7)
    push_built(registry, index, "team/multi", tag="2.0.0")
    push_built(registry, signature, "team/multi", tag=cosign_tag(index.digest))
    push_built(registry, sbom, "team/multi")
    r = rule(destinations=[{"region": OTHER_REGION}])
    other = Registry(region=OTHER_REGION)

    result = copy_image(
        one_job(r, "team/multi", index.digest, ["2.0.0"]), source=registry, destination=other
    )

    assert result.status == "copied"
    for manifest in [*index.manifests, signature.manifest, sbom.manifest]:
        assert manifest_bytes(other, "team/multi", manifest.digest) == manifest.body
    assert other.describe_image("team/multi", tag="2.0.0").digest == index.digest
    sig_tag = cosign_tag(index.digest)
    assert other.describe_image("team/multi", tag=sig_tag).digest == signature.digest
    assert other.describe_image("team/multi", digest=sbom.digest).subject_digest == index.digest


def test_control_api_copy_reads_the_image_not_its_repository(registry) -> None:
    def copy_from(repository: str, others: int) -> Counter[str]:
        digest, belongs = push_signed_index_among(registry, repository, others)
        source = Registry(region=REGION)  # its own count of calls
        destination = Registry(region=OTHER_REGION)
        r = rule(repositories=["team/*"], destinations=[{"region": OTHER_REGION}])
        job = one_job(r, repository, digest, ["3.0.0"])

        copy_image(job, source=source, destination=destination, protocol="api")

        copied = {i.digest for i in destination.iter_images(repository)}
        assert copied == belongs  # the index, its children, signature and SBOM, no other
        return source.calls

    alone = copy_from("team/alone", 0)
    crowded = copy_from("team/crowded", 40)

    assert crowded == alone  # the same calls whatever else the repository holds
    assert crowded["describe_images"] == crowded["list_images"] == 0


def test_copy_to_another_account_through_an_assumed_role(registry) -> None:
    registry.create_repository("team/app")
    image = build_image([2048, 1024], seed=8)
    push_built(registry, image, "team/app", tag="1.0.0")
    r = rule(destinations=[{"account": OTHER_ACCOUNT, "region": "us-west-2"}])
    job = one_job(r, "team/app", image.digest, ["1.0.0"])
    assert job.destination.role_arn == f"arn:aws:iam::{OTHER_ACCOUNT}:role/ecr-steward-replication"
    session = assumed_session(job.destination.role_arn, "ecr-steward-replication")
    other = Registry(region="us-west-2", registry_id=OTHER_ACCOUNT, session=session)

    copy_image(job, source=registry, destination=other)

    # Seen with the other account's own credentials, not through our gateway.
    ecr = session.client("ecr", region_name="us-west-2")
    assert session.client("sts").get_caller_identity()["Account"] == OTHER_ACCOUNT
    found = ecr.describe_images(repositoryName="team/app", imageIds=[{"imageTag": "1.0.0"}])
    assert found["imageDetails"][0]["imageDigest"] == image.digest
    assert found["imageDetails"][0]["registryId"] == OTHER_ACCOUNT
    with pytest.raises(ClientError, match="RepositoryNotFoundException"):
        boto3.client("ecr", region_name="us-west-2").describe_repositories(
            repositoryNames=["team/app"]
        )


def test_plan_gives_a_reason_for_every_step(registry) -> None:
    registry.create_repository("team/app")
    image = build_image([1024, 2048], seed=9)
    push_built(registry, image, "team/app", tag="1.0.0")
    job = one_job(rule(), "team/app", image.digest, ["1.0.0"])
    source = read_source(registry, "team/app", image.digest)

    plan = plan_copy(job, source, read_destination(registry, "mirror/team/app", source, job.tags))

    assert plan.create_repository
    assert {b.action for b in plan.blobs} == {"copy"}
    assert [(m.tag, m.action, m.reason) for m in plan.manifests] == [
        ("1.0.0", "put", "the image: missing at destination")
    ]
    assert plan.bytes_to_copy == sum(len(b) for b in image.blobs.values())


# The control-API path (the fallback where /v2 cannot be reached) keeps its own tests below;
# tests/integration/test_copy_v2.py covers the same failures over the registry protocol.


def _break_once_mid_layer(monkeypatch, destination: Registry) -> list[int]:
    """The network fails once, when a layer's second part is sent (its first part landed)."""
    real = destination._upload_part
    failures: list[int] = []

    def upload_part(repository, upload_id, first, part):
        if first > 0 and not failures:
            failures.append(first)
            raise OSError("connection reset by peer")
        return real(repository, upload_id, first, part)

    monkeypatch.setattr(destination, "_upload_part", upload_part)
    return failures


def test_copy_failing_mid_layer_resumes_with_that_layer_only(registry, monkeypatch) -> None:
    registry.create_repository("team/app")
    image = build_image([12 * MiB, 11 * MiB], seed=10, gzip_layers=False)
    push_built(registry, image, "team/app", tag="1.0.0")
    job = one_job(rule(), "team/app", image.digest, ["1.0.0"])
    destination = Registry(region=REGION)
    failures = _break_once_mid_layer(monkeypatch, destination)
    monkeypatch.setattr("chalicelib.replication.copy.LAYER_ATTEMPTS", 1)  # the job itself fails

    with pytest.raises(OSError):
        copy_image(job, source=registry, destination=destination, concurrency=1, protocol="api")
    assert failures == [10 * MiB]  # 10 MiB of the first layer had landed
    first, second = image.layer_digests
    assert destination.missing_layers("mirror/team/app", [first, second]) == [first, second]

    resumed = copy_image(job, source=registry, destination=destination, protocol="api")

    assert registry.describe_image("mirror/team/app", tag="1.0.0").digest == image.digest
    # The config finished before the failure and is skipped; the broken layer starts over
    # from byte 0 with a new upload, and its 10 MiB already sent are not reused.
    assert (resumed.blobs_skipped, resumed.blobs_copied) == (1, 2)
    assert resumed.bytes_moved == len(image.layers[0].blob) + len(image.layers[1].blob)


def test_a_layer_broken_mid_way_restarts_within_the_job(registry, monkeypatch) -> None:
    registry.create_repository("team/app")
    image = build_image([12 * MiB], seed=12, gzip_layers=False)
    push_built(registry, image, "team/app", tag="1.0.0")
    destination = Registry(region=REGION)
    _break_once_mid_layer(monkeypatch, destination)

    result = copy_image(
        one_job(rule(), "team/app", image.digest, ["1.0.0"]),
        source=registry,
        destination=destination,
        protocol="api",
    )

    assert result.layer_restarts == 1
    # bytes moved counts what was streamed: the broken layer went twice, the rest once.
    assert result.bytes_moved == sum(len(b) for b in image.blobs.values()) + len(
        image.layers[0].blob
    )
    assert registry.describe_image("mirror/team/app", tag="1.0.0").digest == image.digest


def test_a_blob_whose_bytes_do_not_match_its_digest_stops_the_copy(registry, monkeypatch) -> None:
    registry.create_repository("team/app")
    image = build_image([2048], seed=11)
    push_built(registry, image, "team/app", tag="1.0.0")
    job = one_job(rule(), "team/app", image.digest, ["1.0.0"])
    real_open = registry.open_blob

    class Corrupt:
        def __init__(self, stream):
            self.stream = stream

        def read(self, n: int = -1) -> bytes:
            data = self.stream.read(n)
            return bytes([data[0] ^ 0xFF]) + data[1:] if data else data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    monkeypatch.setattr(registry, "open_blob", lambda repo, d: Corrupt(real_open(repo, d)))

    with pytest.raises(DigestMismatch):
        copy_image(job, source=registry, destination=Registry(region=REGION), protocol="api")
    with pytest.raises(ClientError, match="ImageNotFoundException"):
        boto3.client("ecr").describe_images(
            repositoryName="mirror/team/app", imageIds=[{"imageDigest": image.digest}]
        )
