"""The ECR gateway against the embedded ECR: batching, pagination, retries, error mapping, and
manifests passed through byte for byte."""

from __future__ import annotations

import io

import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.ecr import images as images_module
from chalicelib.ecr import repositories as repositories_module
from chalicelib.ecr.errors import ImageNotFound, RegistryError, RepositoryNotFound, TagImmutable
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import digest_of
from steward_tools.samples import build_image
from tests.imagefactory import push_built


class _Raw:
    """Just enough of urllib3's response for botocore to parse a canned error."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args, **kwargs):
        yield self._body


def throttle_first(registry: Registry, operation: str, times: int) -> list[int]:
    """Make ECR answer `ThrottlingException` to the first `times` attempts of an operation
    (through both of the gateway's clients); returns the running count of attempts."""
    attempts = [0]
    body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'

    def before_send(request, **kwargs):
        if request.headers.get("X-Amz-Target", b"").endswith(operation.encode()):
            attempts[0] += 1
            if attempts[0] <= times:
                headers = {"x-amzn-ErrorType": "ThrottlingException"}
                return AWSResponse(request.url, 400, headers, _Raw(body))
        return None

    registry.client.meta.events.register("before-send.ecr", before_send)
    registry.single_attempt_client.meta.events.register("before-send.ecr", before_send)
    return attempts


def test_throttling_is_retried_with_backoff(registry: Registry) -> None:
    registry.create_repository("repo")
    attempts = throttle_first(registry, "DescribeRepositories", times=3)
    assert registry.describe_repository("repo").name == "repo"
    assert attempts[0] == 4


def test_throttling_that_never_ends_surfaces_as_transient(aws) -> None:
    registry = Registry(region="us-east-1", max_attempts=2)
    registry.create_repository("repo")
    throttle_first(registry, "DescribeRepositories", times=100)
    with pytest.raises(RegistryError) as caught:
        registry.describe_repository("repo")
    assert caught.value.code == "ThrottlingException"
    assert caught.value.transient


def test_errors_map_to_project_exceptions(registry: Registry) -> None:
    with pytest.raises(RepositoryNotFound):
        registry.describe_repository("absent")
    registry.create_repository("repo")
    with pytest.raises(ImageNotFound):
        registry.get_manifest("repo", tag="nope")


def test_pagination_reads_every_page(registry: Registry, monkeypatch) -> None:
    monkeypatch.setattr(images_module, "PAGE_SIZE", 2)
    registry.create_repository("repo")
    for n in range(5):
        registry.create_repository(f"repo-{n}")
        push_built(registry, build_image(layer_sizes=[64], seed=n), "repo", tag=f"t{n}")
    registry.calls.clear()
    assert len(list(registry.iter_images("repo"))) == 5
    assert registry.calls["describe_images"] == 3
    monkeypatch.setattr(repositories_module, "PAGE_SIZE", 2)
    assert len(list(registry.iter_repositories())) == 6


def test_deletes_are_batched_by_100_and_failures_kept(registry: Registry) -> None:
    registry.create_repository("repo")
    image = build_image(layer_sizes=[64], seed=1)
    push_built(registry, image, "repo", tag="keep")
    ids = [{"imageTag": f"missing-{n}"} for n in range(150)] + [{"imageTag": "keep"}]
    registry.calls.clear()
    outcome = registry.delete_images("repo", ids)
    assert registry.calls["batch_delete_image"] == 2
    assert len(outcome.failures) == 150
    assert outcome.deleted[0]["imageDigest"] == image.manifest.digest


def test_put_manifest_is_idempotent_and_keeps_bytes(registry: Registry) -> None:
    registry.create_repository("repo")
    image = build_image(layer_sizes=[64], seed=2, declare_media_type=False)
    push_built(registry, image, "repo", tag="a")

    first = registry.put_manifest("repo", image.manifest, "b")
    again = registry.put_manifest("repo", image.manifest, "b")

    assert first.status == "created" and again.status == "unchanged"
    stored = registry.get_manifest("repo", tag="b")
    assert stored.body == image.manifest.body  # exact bytes, so the same digest
    assert stored.digest == image.manifest.digest
    # The manifest declares no mediaType: only the imageManifestMediaType we send keeps it.
    assert stored.media_type == image.manifest.media_type


def test_immutable_tag_already_here_is_success_elsewhere_is_refused(registry: Registry) -> None:
    registry.create_repository("repo", tag_mutability="IMMUTABLE")
    one = build_image(layer_sizes=[64], seed=3)
    two = build_image(layer_sizes=[64], seed=4)
    push_built(registry, one, "repo", tag="v1")
    push_built(registry, two, "repo")

    assert registry.put_manifest("repo", one.manifest, "v1").status == "unchanged"
    with pytest.raises(TagImmutable):
        registry.put_manifest("repo", two.manifest, "v1")


def test_missing_layers_are_checked_100_at_a_time(registry: Registry) -> None:
    registry.create_repository("repo")
    present = registry.upload_bytes("repo", b"present layer")
    digests = [present] + [f"sha256:{n:064x}" for n in range(120)]
    registry.calls.clear()
    missing = registry.missing_layers("repo", digests)
    assert registry.calls["batch_check_layer_availability"] == 2
    assert present not in missing and len(missing) == 120


def test_part_whose_retry_finds_it_landed_is_not_an_error(registry: Registry, monkeypatch) -> None:
    """A lost response makes botocore resend a part ECR already has; ECR refuses it as not
    consecutive, and lastValidByteReceived shows it arrived, so the upload carries on."""
    registry.create_repository("repo")
    original = Registry._call

    def resend_parts(self, operation, **params):
        if operation == "upload_layer_part":
            original(self, operation, **params)  # arrives, but "the response is lost"
        return original(self, operation, **params)

    monkeypatch.setattr(Registry, "_call", resend_parts)
    data = bytes(range(256)) * 50_000  # 12.8 MB: two parts
    digest = digest_of(data)
    assert registry.upload_blob("repo", io.BytesIO(data), digest) is True
    assert registry.missing_layers("repo", [digest]) == []


def test_empty_blob_is_refused_clearly(registry: Registry) -> None:
    registry.create_repository("repo")
    with pytest.raises(RegistryError, match="EmptyUploadException"):
        registry.upload_blob("repo", io.BytesIO(b""), digest_of(b""))


def test_scan_quota_is_an_answer_not_a_retry(registry: Registry) -> None:
    """ECR allows one basic scan per image per day and says so with LimitExceededException,
    which botocore would retry as throttling for a minute; the gateway asks once."""
    registry.create_repository("repo")
    image = build_image(layer_sizes=[64], seed=9)
    push_built(registry, image, "repo", tag="v1")
    attempts = throttle_first(registry, "StartImageScan", times=0)

    first = registry.start_image_scan("repo", image.manifest.digest)
    second = registry.start_image_scan("repo", image.manifest.digest)

    assert first != "LimitExceededException"
    assert second == "LimitExceededException"
    assert attempts[0] == 2  # one request each: no retry of the quota answer


def test_scan_throttling_is_still_retried(registry: Registry) -> None:
    registry.create_repository("repo")
    image = build_image(layer_sizes=[64], seed=10)
    push_built(registry, image, "repo", tag="v1")
    attempts = throttle_first(registry, "StartImageScan", times=2)

    assert registry.start_image_scan("repo", image.manifest.digest) != "LimitExceededException"
    assert attempts[0] == 3
