"""The embedded ECR keeps ECR's contract where moto 5.2.5 does not; all calls go through boto3."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.ecr.models import ecr_backends

from steward_tools.local import ecr_layers, ecr_responses
from steward_tools.local.ecr import EmbeddedECRBackend
from steward_tools.local.events import emit_event
from steward_tools.local.server import EmbeddedAWS, bootstrap
from tests.aws_helpers import error_code
from tests.paths import EVENTS

# `images` is the Images helper of this folder's conftest.py (typed Any: not importable).
Images = Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MIB = 1024 * 1024
REPO = "team/app"
EVENT_SAMPLES = EVENTS


def sha256(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def error_message(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Message"])


@pytest.fixture
def repo(ecr: Any) -> str:
    ecr.create_repository(repositoryName=REPO)
    return REPO


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def detail_of(ecr: Any, repository: str, digest: str) -> dict[str, Any]:
    return ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])[
        "imageDetails"
    ][0]


# -- install ---------------------------------------------------------------------------------


def test_install_is_idempotent(aws: Any) -> None:
    ecr_responses.install()
    ecr_responses.install()

    assert ecr_responses.is_installed()
    assert isinstance(ecr_backends["123456789012"]["us-east-1"], EmbeddedECRBackend)


# -- put-image -------------------------------------------------------------------------------


def test_digest_is_sha256_of_the_manifest_bytes(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1", layer_sizes=[300, 500])

    assert pushed.manifest.startswith("{\n   ")  # indented: re-serialising would change it
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["images"][0]
    assert got["imageId"] == {"imageDigest": sha256(pushed.manifest), "imageTag": "v1"}
    assert got["imageManifest"] == pushed.manifest
    assert got["imageManifestMediaType"] == OCI_MANIFEST

    detail = detail_of(ecr, repo, pushed.digest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == pushed.size  # config + layers
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    assert detail["artifactMediaType"] == OCI_CONFIG
    assert detail["imageStatus"] == "ACTIVE"
    assert abs((datetime.now(UTC) - detail["imagePushedAt"]).total_seconds()) < 60


def test_imagepushedat_keeps_sub_second_resolution(ecr: Any, images: Images, repo: str) -> None:
    # Several pushes: each lands within a second of the next, so whole seconds cannot order them.
    stamps = [detail_of(ecr, repo, images.push(repo).digest)["imagePushedAt"] for _ in range(3)]
    assert stamps == sorted(stamps)
    assert any(stamp.microsecond for stamp in stamps)


def test_given_digest_must_match(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo)
    manifest = pushed.manifest.replace("\n", "\n ")
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, manifest, "v2", imageDigest=pushed.digest)
    assert error_code(excinfo) == "ImageDigestDoesNotMatchException"

    ok = images.put(repo, manifest, "v2", imageDigest=sha256(manifest))
    assert ok["image"]["imageId"]["imageDigest"] == sha256(manifest)


def test_manifest_without_media_type_needs_the_parameter(
    ecr: Any, images: Images, repo: str
) -> None:
    config, layer = b'{"os":"linux"}', os.urandom(64)
    images.upload(repo, config)
    images.upload(repo, layer)
    manifest = images.image_manifest(config, [layer], media_type=None)
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, manifest, "v1")
    assert error_code(excinfo) == "InvalidParameterException"
    assert error_message(excinfo) == (
        "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
    )

    images.put(repo, manifest, "v1", imageManifestMediaType=OCI_MANIFEST)
    assert detail_of(ecr, repo, sha256(manifest))["imageManifestMediaType"] == OCI_MANIFEST


def test_unknown_repository(images: Images, ecr: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        images.put("no/such-repo", json.dumps({"mediaType": OCI_MANIFEST}), "v1")
    assert error_code(excinfo) == "RepositoryNotFoundException"


def test_missing_layers_are_named(ecr: Any, images: Images, repo: str) -> None:
    config, present, missing = b'{"os":"linux"}', os.urandom(32), os.urandom(32)
    images.upload(repo, config)
    images.upload(repo, present)
    manifest = images.image_manifest(config, [present, missing])
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, manifest, "v1")
    assert error_code(excinfo) == "LayersNotFoundException"
    assert sha256(missing) in error_message(excinfo)
    assert sha256(present) not in error_message(excinfo)


def test_missing_config_blob_is_a_missing_layer(ecr: Any, images: Images, repo: str) -> None:
    layer = os.urandom(32)
    images.upload(repo, layer)
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, images.image_manifest(b'{"os":"linux"}', [layer]), "v1")
    assert error_code(excinfo) == "LayersNotFoundException"


def test_layers_are_per_repository(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo)
    ecr.create_repository(repositoryName="team/other")
    with pytest.raises(ClientError) as excinfo:
        images.put("team/other", pushed.manifest, "v1")
    assert error_code(excinfo) == "LayersNotFoundException"


def test_foreign_layers_need_not_be_uploaded(ecr: Any, images: Images, repo: str) -> None:
    config = b'{"os":"windows"}'
    images.upload(repo, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    "digest": sha256(b"elsewhere"),
                    "size": 9,
                    "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"],
                }
            ],
        }
    )
    images.put(repo, manifest, "win")
    assert detail_of(ecr, repo, sha256(manifest))["imageTags"] == ["win"]


def test_index_needs_its_children(ecr: Any, images: Images, repo: str) -> None:
    small = images.push(repo, layer_sizes=[100])
    big = images.push(repo, layer_sizes=[4000])
    stranger = images.push("team/app", layer_sizes=[10])
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": stranger.digest}])

    index = images.index_manifest([small, stranger])
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, index, "multi")
    assert error_code(excinfo) == "ReferencedImagesNotFoundException"
    assert stranger.digest in error_message(excinfo)

    index = images.index_manifest([small, big])
    images.put(repo, index, "multi")
    detail = detail_of(ecr, repo, sha256(index))
    assert detail["imageManifestMediaType"] == OCI_INDEX
    assert detail["imageSizeInBytes"] == max(small.size, big.size)
    assert "artifactMediaType" not in detail


def test_same_digest_same_tag_already_exists(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1")
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, pushed.manifest, "v1")
    assert error_code(excinfo) == "ImageAlreadyExistsException"
    assert error_message(excinfo) == (
        f"Image with digest '{pushed.digest}' and tag 'v1' already exists in the repository "
        f"with name '{repo}' in registry with id '123456789012'"
    )


def test_same_untagged_image_twice_already_exists(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo)
    with pytest.raises(ClientError) as excinfo:
        images.put(repo, pushed.manifest)
    assert error_code(excinfo) == "ImageAlreadyExistsException"


def test_new_tag_on_existing_image_adds_the_tag(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1")
    pushed_at = detail_of(ecr, repo, pushed.digest)["imagePushedAt"]
    images.put(repo, pushed.manifest, "latest")
    detail = detail_of(ecr, repo, pushed.digest)
    assert sorted(detail["imageTags"]) == ["latest", "v1"]
    assert detail["imagePushedAt"] == pushed_at  # re-tagging is not a new push


def test_mutable_tag_moves_and_old_image_stays_untagged(
    ecr: Any, images: Images, repo: str
) -> None:
    old = images.push(repo, "latest")
    new = images.push(repo, "latest")

    assert "imageTags" not in detail_of(ecr, repo, old.digest)
    assert detail_of(ecr, repo, new.digest)["imageTags"] == ["latest"]
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": old.digest}]


def test_mutable_tag_move_keeps_other_tags(ecr: Any, images: Images, repo: str) -> None:
    old = images.push(repo, "latest")
    images.put(repo, old.manifest, "v1")
    images.push(repo, "latest")
    assert detail_of(ecr, repo, old.digest)["imageTags"] == ["v1"]


def test_immutable_tags(ecr: Any, images: Images) -> None:
    ecr.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    first = images.push("frozen", "v1")
    with pytest.raises(ClientError) as excinfo:
        images.push("frozen", "v1")
    assert error_code(excinfo) == "ImageTagAlreadyExistsException"
    assert error_message(excinfo) == (
        "The image tag 'v1' already exists in the 'frozen' repository and cannot be "
        "overwritten because the repository is immutable."
    )
    # The same digest again under its own tag is the "already exists" case.
    with pytest.raises(ClientError) as excinfo:
        images.put("frozen", first.manifest, "v1")
    assert error_code(excinfo) == "ImageAlreadyExistsException"
    # A new tag is fine.
    images.put("frozen", first.manifest, "v1.0")
    assert sorted(detail_of(ecr, "frozen", first.digest)["imageTags"]) == ["v1", "v1.0"]


def test_immutable_with_exclusion_uses_wildcards(ecr: Any, images: Images) -> None:
    ecr.create_repository(
        repositoryName="mostly-frozen",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[
            {"filterType": "WILDCARD", "filter": "latest"},
            {"filterType": "WILDCARD", "filter": "dev.*"},
        ],
    )
    for tag in ("latest", "dev.1", "devbox"):
        images.push("mostly-frozen", tag)
    images.push("mostly-frozen", "latest")  # excluded: mutable
    images.push("mostly-frozen", "dev.1")  # matches the wildcard "dev.*"
    with pytest.raises(ClientError) as excinfo:
        # "dev.*" as a regular expression would match "devbox"; as a wildcard it does not.
        images.push("mostly-frozen", "devbox")
    assert error_code(excinfo) == "ImageTagAlreadyExistsException"


def test_mutable_with_exclusion_freezes_matching_tags(ecr: Any, images: Images) -> None:
    ecr.create_repository(
        repositoryName="mostly-mutable",
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "release-*"}],
    )
    images.push("mostly-mutable", "release-1")
    images.push("mostly-mutable", "main")
    images.push("mostly-mutable", "main")
    with pytest.raises(ClientError) as excinfo:
        images.push("mostly-mutable", "release-1")
    assert error_code(excinfo) == "ImageTagAlreadyExistsException"


def test_referrer_records_subject_and_artifact_type(ecr: Any, images: Images, repo: str) -> None:
    subject = images.push(repo, "v1")
    empty, sbom = b"{}", b'{"spdxVersion":"SPDX-2.3"}'
    images.upload(repo, empty)
    images.upload(repo, sbom)
    referrer = images.image_manifest(
        empty,
        [sbom],
        config_media_type="application/vnd.oci.empty.v1+json",
        layer_media_type="application/spdx+json",
        artifactType="application/spdx+json",
        subject={"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": 1},
    )
    images.put(repo, referrer)
    detail = detail_of(ecr, repo, sha256(referrer))
    assert detail["subjectManifestDigest"] == subject.digest
    assert detail["artifactMediaType"] == "application/spdx+json"
    assert "subjectManifestDigest" not in detail_of(ecr, repo, subject.digest)


def test_list_image_referrers_pages_and_filters(ecr: Any, images: Images, repo: str) -> None:
    subject = images.push(repo, "v1")
    empty = b"{}"
    images.upload(repo, empty)
    digests = {}
    for kind, payload in [("application/spdx+json", b"[1]"), ("application/vnd.dev.sig", b"[2]")]:
        images.upload(repo, payload)
        referrer = images.image_manifest(
            empty,
            [payload],
            config_media_type="application/vnd.oci.empty.v1+json",
            layer_media_type=kind,
            artifactType=kind,
            subject={"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": 1},
        )
        images.put(repo, referrer)
        digests[kind] = sha256(referrer)

    first = ecr.list_image_referrers(
        repositoryName=repo, subjectId={"imageDigest": subject.digest}, maxResults=1
    )
    rest = ecr.list_image_referrers(
        repositoryName=repo,
        subjectId={"imageDigest": subject.digest},
        nextToken=first["nextToken"],
    )
    listed = first["referrers"] + rest["referrers"]
    assert {r["digest"]: r["artifactType"] for r in listed} == {d: k for k, d in digests.items()}
    assert {r["artifactStatus"] for r in listed} == {"ACTIVE"} and "nextToken" not in rest
    sboms = ecr.list_image_referrers(
        repositoryName=repo,
        subjectId={"imageDigest": subject.digest},
        filter={"artifactTypes": ["application/spdx+json"]},
    )["referrers"]
    assert [r["digest"] for r in sboms] == [digests["application/spdx+json"]]
    none = ecr.list_image_referrers(repositoryName=repo, subjectId={"imageDigest": sha256(b"x")})
    assert none["referrers"] == []


# -- batch-get-image -------------------------------------------------------------------------


def test_batch_get_failures_carry_the_image_id_asked(ecr: Any, images: Images, repo: str) -> None:
    images.push(repo, "v1")
    missing = sha256(b"nothing")
    response = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "nope"}, {"imageDigest": missing}]
    )
    assert response["images"] == []
    assert response["failures"] == [
        {
            "imageId": {"imageTag": "nope"},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        },
        {
            "imageId": {"imageDigest": missing},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        },
    ]


def test_batch_get_by_digest_returns_the_stored_bytes(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1", docker=True)
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageDigest": pushed.digest}])
    assert got["images"][0]["imageId"] == {"imageDigest": pushed.digest}
    assert got["images"][0]["imageManifest"] == pushed.manifest
    assert got["images"][0]["imageManifestMediaType"] == DOCKER_MANIFEST


def test_batch_get_honours_accepted_media_types(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1", docker=True)
    accepted = ecr.batch_get_image(
        repositoryName=repo,
        imageIds=[{"imageTag": "v1"}],
        acceptedMediaTypes=[OCI_MANIFEST, DOCKER_MANIFEST],
    )
    assert accepted["images"][0]["imageManifest"] == pushed.manifest  # never rewritten

    refused = ecr.batch_get_image(
        repositoryName=repo, imageIds=[{"imageTag": "v1"}], acceptedMediaTypes=[OCI_MANIFEST]
    )
    assert refused["images"] == []
    assert refused["failures"][0]["imageId"] == {"imageTag": "v1"}
    assert refused["failures"][0]["failureCode"] == "ImageNotFound"


# -- batch-delete-image ----------------------------------------------------------------------


def test_child_of_a_live_index_cannot_be_deleted(ecr: Any, images: Images, repo: str) -> None:
    amd, arm = images.push(repo), images.push(repo)
    index = images.index_manifest([amd, arm])
    images.put(repo, index, "multi")

    response = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": amd.digest}])
    assert response["imageIds"] == []
    assert response["failures"] == [
        {
            "imageId": {"imageDigest": amd.digest},
            "failureCode": "ImageReferencedByManifestList",
            "failureReason": f"Requested image referenced by manifest list: [{sha256(index)}]",
        }
    ]
    assert detail_of(ecr, repo, amd.digest)["imageDigest"] == amd.digest

    # Index first, then its children: both go.
    response = ecr.batch_delete_image(
        repositoryName=repo,
        imageIds=[{"imageDigest": sha256(index)}, {"imageDigest": amd.digest}],
    )
    assert response["failures"] == []
    assert response["imageIds"] == [
        {"imageDigest": sha256(index), "imageTag": "multi"},
        {"imageDigest": amd.digest},
    ]


def test_delete_by_tag_removes_the_tag_then_the_image(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1")
    images.put(repo, pushed.manifest, "latest")

    response = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "latest"}])
    assert response["imageIds"] == [{"imageDigest": pushed.digest, "imageTag": "latest"}]
    assert detail_of(ecr, repo, pushed.digest)["imageTags"] == ["v1"]

    # "When you remove the last tag from an image, the image is deleted."
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


def test_delete_by_digest_reports_every_tag(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1")
    images.put(repo, pushed.manifest, "v2")
    response = ecr.batch_delete_image(
        repositoryName=repo, imageIds=[{"imageDigest": pushed.digest}, {"imageTag": "gone"}]
    )
    assert sorted(i["imageTag"] for i in response["imageIds"]) == ["v1", "v2"]
    assert response["failures"] == [
        {
            "imageId": {"imageTag": "gone"},
            "failureCode": "ImageNotFound",
            "failureReason": "Requested image not found",
        }
    ]


# -- layer uploads and downloads -------------------------------------------------------------


def test_multipart_layer_round_trips_byte_exact(ecr: Any, images: Images, repo: str) -> None:
    data = os.urandom(5 * MIB + 123_457)
    digest = images.upload(repo, data, part_sizes=[5 * MIB, 123_457])
    config = b'{"os":"linux"}'
    images.upload(repo, config)
    images.put(repo, images.image_manifest(config, [data]), "big")

    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)
    assert url["layerDigest"] == digest
    status, headers, body = http_get(url["downloadUrl"])
    assert status == 200
    assert body == data
    assert headers["Content-Length"] == str(len(data))
    assert headers["Docker-Content-Digest"] == digest

    status, headers, body = http_get(url["downloadUrl"], {"Range": "bytes=100-1099"})
    assert status == 206
    assert body == data[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(data)}"

    status, headers, body = http_get(url["downloadUrl"], {"Range": f"bytes={5 * MIB}-"})
    assert status == 206
    assert body == data[5 * MIB :]
    assert headers["Content-Length"] == "123457"


def test_download_head_and_ranges(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1", layer_sizes=[1000])
    digest, data = list(pushed.blobs.items())[-1]
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]

    head = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "1000"
        assert response.headers["Docker-Content-Digest"] == digest
        assert response.read() == b""
    status, headers, body = http_get(url, {"Range": "bytes=-10"})
    assert (status, body) == (206, data[-10:])
    assert headers["Content-Range"] == "bytes 990-999/1000"
    status, headers, _ = http_get(url, {"Range": "bytes=1000-"})
    assert status == 416
    assert headers["Content-Range"] == "bytes */1000"
    status, _, body = http_get(url, {"Range": "bytes=0-1,5-6"})  # several ranges: all of it
    assert (status, body) == (200, data)


def test_download_url_names_the_listening_address(aws: Any, ecr: Any, images: Images) -> None:
    ecr.create_repository(repositoryName=REPO)
    pushed = images.push(REPO, "v1")
    layer = list(pushed.blobs)[-1]
    url = ecr.get_download_url_for_layer(repositoryName=REPO, layerDigest=layer)["downloadUrl"]
    assert url.startswith(f"{aws.endpoint_url}/_steward/blobs/123456789012/us-east-1/{REPO}/")
    assert http_get(url)[2] == pushed.blobs[layer]


def test_download_url_refuses_bad_or_expired_signatures(
    ecr: Any, images: Images, repo: str
) -> None:
    pushed = images.push(repo, "v1")
    digest = next(iter(pushed.blobs))
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]
    base, query = url.split("?", 1)
    expires = int(query.split("expires=")[1].split("&")[0])

    assert http_get(url.replace("signature=", "signature=0"))[0] == 403
    assert (
        http_get(f"{base}?expires={expires + 1}&signature=" + query.split("signature=")[1])[0]
        == 403
    )
    assert http_get(base)[0] == 403
    past = int(time.time()) - 10
    signature = ecr_layers.url_signer().signature("123456789012", "us-east-1", repo, digest, past)
    assert http_get(f"{base}?expires={past}&signature={signature}")[0] == 403


def test_download_of_a_vanished_blob_is_404(aws: Any, ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo, "v1")
    digest = next(iter(pushed.blobs))
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=digest)["downloadUrl"]
    aws.blobs.blob_path("123456789012", "us-east-1", digest).unlink()
    assert http_get(url)[0] == 404


def test_download_url_errors(ecr: Any, images: Images, repo: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=sha256(b"unknown"))
    assert error_code(excinfo) == "LayersNotFoundException"

    orphan = images.upload(repo, os.urandom(64))
    with pytest.raises(ClientError) as excinfo:
        ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=orphan)
    assert error_code(excinfo) == "LayerInaccessibleException"
    assert "not associated with an image" in error_message(excinfo)

    with pytest.raises(ClientError) as excinfo:
        ecr.get_download_url_for_layer(repositoryName="nope", layerDigest=orphan)
    assert error_code(excinfo) == "RepositoryNotFoundException"


def test_repositories_of_a_registry_share_layer_files(
    aws: Any, ecr: Any, images: Images, repo: str
) -> None:
    ecr.create_repository(repositoryName="team/other")
    data = os.urandom(2048)
    digest = images.upload(repo, data)
    assert images.upload("team/other", data) == digest
    stored = list(aws.blobs.root.rglob(digest.split(":")[1]))
    assert stored == [aws.blobs.blob_path("123456789012", "us-east-1", digest)]
    # ...but each repository only has the layers uploaded into it.
    with pytest.raises(ClientError) as excinfo:
        images.upload(repo, data)
    assert error_code(excinfo) == "LayerAlreadyExistsException"


def test_upload_protocol_errors(ecr: Any, images: Images, repo: str) -> None:
    def start() -> str:
        upload = ecr.initiate_layer_upload(repositoryName=repo)
        assert upload["partSize"] == 10485760
        return str(upload["uploadId"])

    def part(upload_id: str, first: int, data: bytes) -> Any:
        return ecr.upload_layer_part(
            repositoryName=repo,
            uploadId=upload_id,
            partFirstByte=first,
            partLastByte=first + len(data) - 1,
            layerPartBlob=data,
        )

    def complete(upload_id: str, digest: str) -> Any:
        return ecr.complete_layer_upload(
            repositoryName=repo, uploadId=upload_id, layerDigests=[digest]
        )

    unknown = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(ClientError) as excinfo:
        part(unknown, 0, b"x")
    assert error_code(excinfo) == "UploadNotFoundException"

    upload_id = start()
    assert part(upload_id, 0, b"abc")["lastByteReceived"] == 2
    with pytest.raises(ClientError) as excinfo:
        part(upload_id, 10, b"def")
    assert error_code(excinfo) == "InvalidLayerPartException"
    assert excinfo.value.response["lastValidByteReceived"] == 2

    with pytest.raises(ClientError) as excinfo:
        part(upload_id, 3, b"\0" * (20971520 + 1))
    assert error_code(excinfo) == "InvalidLayerPartException"

    empty = start()
    with pytest.raises(ClientError) as excinfo:
        complete(empty, sha256(b""))
    assert error_code(excinfo) == "EmptyUploadException"

    small_parts = start()
    part(small_parts, 0, b"a" * MIB)
    part(small_parts, MIB, b"b" * MIB)
    with pytest.raises(ClientError) as excinfo:
        complete(small_parts, sha256(b"a" * MIB + b"b" * MIB))
    assert error_code(excinfo) == "LayerPartTooSmallException"
    assert error_message(excinfo) == "Layer parts must be at least 5 MiB in size."

    wrong = start()
    part(wrong, 0, b"hello")
    with pytest.raises(ClientError) as excinfo:
        complete(wrong, sha256(b"olleh"))
    assert error_code(excinfo) == "InvalidLayerException"

    assert complete(upload_id, sha256(b"abc"))["layerDigest"] == sha256(b"abc")
    with pytest.raises(ClientError) as excinfo:
        complete(upload_id, sha256(b"abc"))  # an upload completes once
    assert error_code(excinfo) == "UploadNotFoundException"


def test_batch_check_layer_availability(ecr: Any, images: Images, repo: str) -> None:
    digest = images.upload(repo, b"layer bytes")
    missing = sha256(b"missing")
    response = ecr.batch_check_layer_availability(
        repositoryName=repo, layerDigests=[digest, missing, "sha256:nothex"]
    )
    assert response["layers"] == [
        {
            "layerDigest": digest,
            "layerAvailability": "AVAILABLE",
            "layerSize": 11,
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    ]
    assert [(f["layerDigest"], f["failureCode"]) for f in response["failures"]] == [
        (missing, "MissingLayerDigest"),
        ("sha256:nothex", "InvalidLayerDigest"),
    ]


# -- listing ---------------------------------------------------------------------------------


def test_describe_and_list_images_paginate(ecr: Any, images: Images, repo: str) -> None:
    for _ in range(5):
        images.push(repo)
    first = ecr.describe_images(repositoryName=repo, maxResults=2)
    assert len(first["imageDetails"]) == 2 and first["nextToken"]
    pages = ecr.get_paginator("describe_images").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 2}
    )
    assert sum(len(page["imageDetails"]) for page in pages) == 5
    pages = ecr.get_paginator("list_images").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 3}
    )
    assert [len(page["imageIds"]) for page in pages] == [3, 2]
    tagged = ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})
    assert tagged["imageDetails"] == []


# -- events ----------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENT_SAMPLES / name).read_text()))


def assert_envelope_like(event: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(event) == list(expected)  # the same keys, in AWS's order; no "ingestion-time"
    assert event["version"] == "0"
    assert event["source"] == "aws.ecr"
    assert event["detail-type"] == "ECR Image Action"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["resources"] == []
    parsed = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def envelope(body: dict[str, Any]) -> dict[str, Any]:
    # What the pump hands the handler (tested in test_delivery.py): moto's extra key dropped.
    return {k: v for k, v in body.items() if k != "ingestion-time"}


def test_push_events(ecr: Any, images: Images, repo: str, queued_events: Any) -> None:
    tagged = images.push(repo, "latest")
    untagged = images.push(repo)
    events = [envelope(e) for e in queued_events()]
    assert len(events) == 2

    expected = sample("ecr_image_action_push_success.json")
    assert_envelope_like(events[0], expected)
    assert events[0]["detail"] == {
        "result": "SUCCESS",
        "repository-name": repo,
        "image-digest": tagged.digest,
        "action-type": "PUSH",
        "image-tag": "latest",
        "manifest-media-type": OCI_MANIFEST,
    }
    by_digest = sample("ecr_image_action_push_by_digest.json")
    assert_envelope_like(events[1], by_digest)
    assert list(events[1]["detail"]) == list(by_digest["detail"])  # no image-tag at all
    assert events[1]["detail"]["image-digest"] == untagged.digest


def test_failed_push_emits_nothing(ecr: Any, images: Images, repo: str, queued_events: Any) -> None:
    pushed = images.push(repo, "v1")
    queued_events()
    with pytest.raises(ClientError):
        images.put(repo, pushed.manifest, "v1")
    assert queued_events() == []


def test_delete_events_one_per_deleted_image_id(
    ecr: Any, images: Images, repo: str, queued_events: Any
) -> None:
    tagged = images.push(repo, "v1")
    images.put(repo, tagged.manifest, "v2")
    untagged = images.push(repo)
    queued_events()

    ecr.batch_delete_image(
        repositoryName=repo,
        imageIds=[{"imageDigest": tagged.digest}, {"imageDigest": untagged.digest}],
    )
    events = [envelope(e) for e in queued_events()]
    expected = sample("ecr_image_action_delete_success.json")
    for event in events:
        assert_envelope_like(event, expected)
    details = sorted((e["detail"] for e in events), key=lambda d: d.get("image-tag", ""))
    assert details == [
        {
            "result": "SUCCESS",
            "repository-name": repo,
            "image-digest": untagged.digest,
            "action-type": "DELETE",
        },
        {
            "result": "SUCCESS",
            "repository-name": repo,
            "image-digest": tagged.digest,
            "action-type": "DELETE",
            "image-tag": "v1",
        },
        {
            "result": "SUCCESS",
            "repository-name": repo,
            "image-digest": tagged.digest,
            "action-type": "DELETE",
            "image-tag": "v2",
        },
    ]
    assert list(details[1]) == list(expected["detail"])


def test_emit_event_reaches_rules_for_other_sources(aws: Any, queued_events: Any) -> None:
    detail = {"scan-status": "INITIAL_SCAN_COMPLETE", "repository-name": "arn:x"}
    event_id = emit_event(
        "123456789012", "us-east-1", "aws.inspector2", "Inspector2 Scan", detail, ["arn:x"]
    )
    [event] = queued_events()
    assert event["id"] == event_id
    assert event["source"] == "aws.inspector2"
    assert event["resources"] == ["arn:x"]
    assert event["detail"] == detail


# -- server ----------------------------------------------------------------------------------


def test_reset_clears_every_service_and_the_blobs(aws: Any, ecr: Any, images: Images) -> None:
    ecr.create_repository(repositoryName=REPO)
    pushed = images.push(REPO, "v1")
    digest = next(iter(pushed.blobs))
    url = ecr.get_download_url_for_layer(repositoryName=REPO, layerDigest=digest)["downloadUrl"]

    aws.reset()
    assert ecr.describe_repositories()["repositories"] == []
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []
    assert http_get(url)[0] == 404
    assert ecr_responses.is_installed()
    # Still the embedded backend after the reset.
    ecr.create_repository(repositoryName=REPO)
    assert images.push(REPO, "v1").digest


def test_moto_reset_api_clears_blobs_too(aws: Any, ecr: Any, images: Images) -> None:
    ecr.create_repository(repositoryName=REPO)
    digest = images.upload(REPO, b"some layer")
    path = aws.blobs.blob_path("123456789012", "us-east-1", digest)
    assert path.exists()
    request = urllib.request.Request(f"{aws.endpoint_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    assert not path.exists()
    assert ecr.describe_repositories()["repositories"] == []


def test_bootstrap_is_idempotent(aws: Any) -> None:

    again = bootstrap(
        boto3.session.Session(),
        account="123456789012",
        region="us-east-1",
        endpoint_url=aws.endpoint_url,
    )
    assert again == aws.resources
    dynamodb = aws.client("dynamodb")
    table = dynamodb.describe_table(TableName="steward-idempotency")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName="steward-idempotency")
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expiration",
    }
    events = aws.client("events")
    rule = events.describe_rule(Name="steward-ecr-events")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.ecr", "aws.inspector2", "steward.gate"]
    }
    targets = events.list_targets_by_rule(Rule="steward-ecr-events")["Targets"]
    assert [t["Arn"] for t in targets] == [aws.resources.events_queue_arn]


def test_only_one_server_per_process(aws: Any) -> None:
    assert EmbeddedAWS.running() is aws
    with pytest.raises(RuntimeError):
        EmbeddedAWS(port=0).start()


@pytest.mark.parametrize("call", ["batch_get_image", "batch_delete_image"])
def test_image_ids_without_a_reference_or_with_a_malformed_digest_fail_alone(
    ecr: Any, images: Images, repo: str, call: str
) -> None:
    digest = images.push(repo, tag="1.0").digest
    answer = getattr(ecr, call)(
        repositoryName=repo,
        imageIds=[{}, {"imageDigest": "sha256:not-hex"}, {"imageDigest": digest}],
    )
    codes = [f["failureCode"] for f in answer["failures"]]
    assert codes == ["MissingDigestAndTag", "InvalidImageDigest"]
    found = answer["images"] if call == "batch_get_image" else answer["imageIds"]
    assert [i["imageId"]["imageDigest"] if "imageId" in i else i["imageDigest"] for i in found] == [
        digest
    ]
