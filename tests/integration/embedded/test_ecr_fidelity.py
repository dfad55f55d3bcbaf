"""Issue 13: ECR's validation of tags and manifests, and the fidelity details of point 10."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from steward_tools.local.tokens import verify_password

# `images` is the Images helper of this folder's conftest.py (typed Any: not importable).
Images = Any

REPO = "team/app"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def repo(ecr: Any) -> str:
    ecr.create_repository(repositoryName=REPO)
    return REPO


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.parametrize("tag", ["bad*tag!", "with space", "a/b", "x" * 301])
def test_put_image_refuses_a_tag_outside_ecrs_pattern(
    ecr: Any, images: Images, repo: str, tag: str
) -> None:
    pushed = images.push(repo)
    with pytest.raises((ClientError, Exception)) as refused:
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=tag)
    if isinstance(refused.value, ClientError):  # over 300 characters botocore refuses first
        error = refused.value.response["Error"]
        assert error["Code"] == "InvalidParameterException"
        assert "'imageTag' failed to satisfy constraint" in error["Message"]
        assert "[a-zA-Z0-9-_.]+" in error["Message"]
    tags = [i.get("imageTag") for i in ecr.list_images(repositoryName=repo)["imageIds"]]
    assert tag not in tags


def test_put_image_takes_every_tag_in_the_pattern(ecr: Any, images: Images, repo: str) -> None:
    pushed = images.push(repo)
    for tag in ("1.2.3", "v1_2-rc.1", "-leading", "x" * 300):
        ecr.put_image(repositoryName=repo, imageManifest=pushed.manifest, imageTag=tag)


def test_put_image_refuses_an_unsupported_media_type_and_a_wrong_schema(
    ecr: Any, images: Images, repo: str
) -> None:
    pushed = images.push(repo)
    document = json.loads(pushed.manifest)
    for changed, parameter, expected in (
        ({**document, "mediaType": "text/plain"}, None, "Unsupported manifest media type"),
        ({**document, "schemaVersion": 1}, None, "schemaVersion must be 2"),
        (document, "application/vnd.docker.distribution.manifest.v2+json", "does not match"),
    ):
        extra = {"imageManifestMediaType": parameter} if parameter else {}
        with pytest.raises(ClientError) as refused:
            ecr.put_image(repositoryName=repo, imageManifest=json.dumps(changed), **extra)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
        assert expected in refused.value.response["Error"]["Message"]


def test_batch_check_layer_availability_reports_each_blobs_media_type(
    ecr: Any, images: Images, repo: str
) -> None:
    oci = images.push(repo, "oci")
    docker = images.push(repo, "docker", docker=True)
    digests = [*oci.blobs, *docker.blobs]

    layers = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=digests)["layers"]

    types = {layer["layerDigest"]: layer["mediaType"] for layer in layers}
    oci_config, oci_layer = list(oci.blobs)
    docker_config, docker_layer = list(docker.blobs)
    assert types == {
        oci_config: OCI_CONFIG,
        oci_layer: OCI_LAYER,
        docker_config: DOCKER_CONFIG,
        docker_layer: DOCKER_LAYER,
    }


def test_download_urls_stop_after_delete_repository_force(
    ecr: Any, images: Images, repo: str
) -> None:
    pushed = images.push(repo, "v1")
    layer = list(pushed.blobs)[-1]
    url = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer)["downloadUrl"]
    assert status_of(url) == 200

    ecr.delete_repository(repositoryName=repo, force=True)

    assert status_of(url) == 404


def test_lifecycle_policy_was_never_evaluated(ecr: Any, repo: str) -> None:
    policy = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 1,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy)

    got = ecr.get_lifecycle_policy(repositoryName=repo)

    # The embedded backend runs no lifecycle policy: it was never evaluated (not "just now").
    assert got["lastEvaluatedAt"].timestamp() == 0
    assert ecr.delete_lifecycle_policy(repositoryName=repo)["lastEvaluatedAt"].timestamp() == 0


def test_a_local_password_names_the_callers_own_key(ecr: Any) -> None:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]

    assert verify_password(password)["accessKeyId"] == "testing"


@pytest.mark.parametrize(
    "call", ["describe_images", "list_images", "get_lifecycle_policy", "delete_repository"]
)
def test_every_call_checks_the_repository_names_pattern(ecr: Any, call: str) -> None:
    with pytest.raises(ClientError) as refused:
        getattr(ecr, call)(repositoryName="Bad/UPPER")
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert "'repositoryName' failed to satisfy constraint" in error["Message"]
