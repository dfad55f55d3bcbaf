"""The copy engine over the registry protocol (`/v2`) against the embedded ECR: replication
takes it when both ends answer, mounts blobs inside one registry, resumes a broken upload where
the registry says it stopped, refuses bytes that do not match their digest, and falls back to
the control API when `/v2` cannot be reached."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

import chalicelib.registry_client.copyblob as copyblob
from chalicelib.ecr.distribution import registry_client
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.replication import ReplicationRule
from chalicelib.registry_client.transport import Endpoint, RegistryClient
from chalicelib.replication.copy import DigestMismatch, copy_image
from chalicelib.replication.jobs import CopyJob, jobs_for
from steward_tools.samples import BuiltImage, build_image
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built, push_signed_index_among

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _fresh_clients(aws):
    reset_clients()
    yield
    reset_clients()


def job_for(
    repository: str, digest: str, tags: list[str], destination: str, region: str | None = None
) -> CopyJob:
    rule = ReplicationRule.model_validate(
        {
            "name": "r",
            "repositories": ["team/*"],
            "destinations": [{"repository": destination, "region": region}],
        }
    )
    [job] = jobs_for(
        rule,
        trigger="test",
        account=ACCOUNT,
        region=REGION,
        repository=repository,
        digest=digest,
        tags=tags,
    )
    return job


def pushed(registry: Registry, sizes: list[int], seed: int) -> tuple[BuiltImage, CopyJob]:
    registry.create_repository("team/app")
    image = build_image(sizes, seed=seed, gzip_layers=False)
    push_built(registry, image, "team/app", tag="1.0.0")
    return image, job_for("team/app", image.digest, ["1.0.0"], "copy/{repository}")


def test_replication_copies_over_v2_without_control_api_uploads(registry) -> None:
    image, job = pushed(registry, [6 * MiB, 1024], seed=21)
    before = registry.calls.copy()

    result = copy_image(job, source=registry, destination=registry)
    made = registry.calls - before

    assert result.protocol == "v2" and result.status == "copied"
    assert result.bytes_moved == sum(len(b) for b in image.blobs.values())
    assert registry.describe_image("copy/team/app", tag="1.0.0").digest == image.digest
    assert made["upload_layer_part"] == 0 and made["put_image"] == 0
    again = copy_image(job, source=registry, destination=registry)
    assert (again.status, again.bytes_moved, again.manifests_put) == ("unchanged", 0, 0)


def test_v2_copy_reads_the_image_not_its_repository(registry, monkeypatch) -> None:
    sent: list[tuple[RegistryClient, str, str]] = []
    real = RegistryClient.request

    def request(self, method, url, **kwargs):
        sent.append((self, method, urlsplit(url).path))
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(RegistryClient, "request", request)

    def copy_from(repository: str, others: int) -> Counter[tuple[str, str]]:
        digest, belongs = push_signed_index_among(registry, repository, others)
        source, destination = Registry(region=REGION), Registry(region="eu-west-1")
        job = job_for(repository, digest, ["3.0.0"], "{repository}", region="eu-west-1")
        sent.clear()

        result = copy_image(job, source=source, destination=destination)

        assert result.protocol == "v2"
        assert {i.digest for i in destination.iter_images(repository)} == belongs
        reads = registry_client(source)
        return Counter((m, p.replace(repository, "<repository>")) for c, m, p in sent if c is reads)

    alone = copy_from("team/alone", 0)
    crowded = copy_from("team/crowded", 40)

    assert crowded == alone  # the same requests whatever else the repository holds
    assert not [path for _, path in crowded if path.endswith("/tags/list")]


def test_blobs_are_mounted_inside_one_registry_when_it_allows(registry) -> None:
    boto3.client("ecr").put_account_setting(name="BLOB_MOUNTING", value="ENABLED")
    image, job = pushed(registry, [2 * MiB, 4096], seed=22)

    result = copy_image(job, source=registry, destination=registry)

    assert result.blobs_mounted == len(image.blobs) and result.bytes_moved == 0
    assert registry.describe_image("copy/team/app", tag="1.0.0").digest == image.digest


def test_a_broken_upload_resumes_where_the_registry_says_it_stopped(registry, monkeypatch) -> None:
    image, job = pushed(registry, [23 * MiB], seed=23)
    layer = image.layers[0].blob
    monkeypatch.setattr(copyblob, "PART_SIZE", 5 * MiB)
    real = copyblob.send_part
    broken: list[int] = []

    def send_part(client, upload, body, first, length):
        if first == 10 * MiB and not broken:  # the third part: two are in the registry
            broken.append(first)

            def cut():
                for n, piece in enumerate(body):
                    if n == 2:
                        raise ConnectionResetError("connection reset by peer")
                    yield piece

            return real(client, upload, cut(), first, length)
        return real(client, upload, body, first, length)

    monkeypatch.setattr(copyblob, "send_part", send_part)

    result = copy_image(job, source=registry, destination=registry)

    assert broken == [10 * MiB] and result.layer_restarts == 1
    # The two parts the registry held were not sent again: only the three pieces read of the
    # broken part were read twice.
    config = len(image.blobs[image.config_digest])
    assert result.bytes_moved == len(layer) + config + 3 * copyblob.READ_PIECE
    assert registry.describe_image("copy/team/app", tag="1.0.0").digest == image.digest


def test_bytes_that_do_not_match_their_digest_stop_the_copy(registry, monkeypatch) -> None:
    image, job = pushed(registry, [2048], seed=24)
    real = copyblob.stream_chunks

    def corrupt(response, chunk):
        for piece in real(response, chunk):
            yield bytes([piece[0] ^ 0xFF]) + piece[1:]

    monkeypatch.setattr(copyblob, "stream_chunks", corrupt)

    with pytest.raises(DigestMismatch):
        copy_image(job, source=registry, destination=registry)
    with pytest.raises(ClientError, match="ImageNotFoundException"):
        boto3.client("ecr").describe_images(
            repositoryName="copy/team/app",
            imageIds=[{"imageDigest": image.digest}],
        )


def test_falls_back_to_the_control_api_when_v2_cannot_be_reached(registry, monkeypatch) -> None:
    image, job = pushed(registry, [1024], seed=25)
    nowhere = RegistryClient(Endpoint(url="http://127.0.0.1:9"), attempts=1)
    monkeypatch.setattr("chalicelib.replication.copy.registry_client", lambda gateway: nowhere)

    result = copy_image(job, source=registry, destination=registry)

    assert result.protocol == "api"
    assert registry.describe_image("copy/team/app", tag="1.0.0").digest == image.digest


def test_a_job_that_died_mid_blob_is_resumed_by_the_next_job(aws, registry, monkeypatch) -> None:
    image, job = pushed(registry, [23 * MiB], seed=26)
    layer = image.layers[0].blob
    table = get_settings().replication_table
    monkeypatch.setattr(copyblob, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(copyblob, "ATTEMPTS", 1)  # the job itself fails
    real = copyblob.send_part

    def send_part(client, upload, body, first, length):
        if first == 15 * MiB:  # three parts are in the registry, then the process dies

            def cut():
                yield next(iter(body))
                raise ConnectionResetError("the function timed out")

            return real(client, upload, cut(), first, length)
        return real(client, upload, body, first, length)

    monkeypatch.setattr(copyblob, "send_part", send_part)
    with pytest.raises(Exception, match="timed out"):
        copy_image(job, source=registry, destination=registry, ledger_table=table, concurrency=1)
    monkeypatch.setattr(copyblob, "send_part", real)

    resumed = copy_image(job, source=registry, destination=registry, ledger_table=table)

    # The config had completed; of the layer, the 15 MiB the registry held were read and hashed
    # again, not sent again.
    assert (resumed.blobs_skipped, resumed.layer_restarts) == (1, 1)
    assert resumed.bytes_moved == len(layer) - 15 * MiB
    assert registry.describe_image("copy/team/app", tag="1.0.0").digest == image.digest
    remembered = boto3.client("dynamodb").scan(TableName=table)["Items"]
    assert not [i for i in remembered if i["id"]["S"].startswith("upload|")]
