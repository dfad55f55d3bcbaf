"""Fixtures for the embedded-AWS tests: boto3 clients and a tiny image builder.

The endpoint itself (and its reset + bootstrap per test) is the `aws` fixture of tests/conftest.py.
Manifests are built here rather than with tests/imagefactory.py so these tests exercise only the
embedded backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.aws_helpers import take_queued_events

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass
class Pushed:
    digest: str
    manifest: str
    media_type: str
    blobs: dict[str, bytes]

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.blobs.values())


class Images:
    """Builds manifests over random blobs and pushes them through the ECR API."""

    def __init__(self, ecr: Any) -> None:
        self.ecr = ecr

    def upload(self, repository: str, data: bytes, part_sizes: Sequence[int] = ()) -> str:
        """Upload `data` as one layer, in parts of the given sizes (one part if none)."""
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
        sizes = list(part_sizes) or [len(data)]
        offset = 0
        for size in sizes:
            part = data[offset : offset + size]
            self.ecr.upload_layer_part(
                repositoryName=repository,
                uploadId=upload_id,
                partFirstByte=offset,
                partLastByte=offset + len(part) - 1,
                layerPartBlob=part,
            )
            offset += len(part)
        digest = sha256(data)
        self.ecr.complete_layer_upload(
            repositoryName=repository, uploadId=upload_id, layerDigests=[digest]
        )
        return digest

    @staticmethod
    def image_manifest(
        config: bytes,
        layers: Sequence[bytes],
        *,
        media_type: str | None = OCI_MANIFEST,
        config_media_type: str = OCI_CONFIG,
        layer_media_type: str = OCI_LAYER,
        indent: int | None = 3,
        **extra: Any,
    ) -> str:
        document: dict[str, Any] = {"schemaVersion": 2}
        if media_type:
            document["mediaType"] = media_type
        document["config"] = {
            "mediaType": config_media_type,
            "digest": sha256(config),
            "size": len(config),
        }
        document["layers"] = [
            {"mediaType": layer_media_type, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ]
        document.update(extra)
        # Indented on purpose: a registry that re-serialised it would get another digest.
        return json.dumps(document, indent=indent)

    def push(
        self,
        repository: str,
        tag: str | None = None,
        *,
        layer_sizes: Sequence[int] = (256,),
        docker: bool = False,
        **extra: Any,
    ) -> Pushed:
        """Upload a config and random layers, then put an image manifest over them."""
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}
        ).encode()
        layers = [os.urandom(size) for size in layer_sizes]
        blobs = {sha256(b): b for b in [config, *layers]}
        for data in blobs.values():
            self.upload_if_missing(repository, data)
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest = self.image_manifest(
            config,
            layers,
            media_type=media_type,
            config_media_type=DOCKER_CONFIG if docker else OCI_CONFIG,
            layer_media_type=DOCKER_LAYER if docker else OCI_LAYER,
            **extra,
        )
        self.put(repository, manifest, tag)
        return Pushed(sha256(manifest), manifest, media_type, blobs)

    def upload_if_missing(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        found = self.ecr.batch_check_layer_availability(
            repositoryName=repository, layerDigests=[digest]
        )["layers"]
        if not found:
            self.upload(repository, data)
        return digest

    @staticmethod
    def index_manifest(children: Sequence[Pushed], media_type: str = OCI_INDEX) -> str:
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [
                    {
                        "mediaType": child.media_type,
                        "digest": child.digest,
                        "size": len(child.manifest.encode()),
                        "platform": {"architecture": arch, "os": "linux"},
                    }
                    for child, arch in zip(children, ["amd64", "arm64", "s390x"], strict=False)
                ],
            },
            indent=2,
        )

    def put(self, repository: str, manifest: str, tag: str | None = None, **kwargs: Any) -> Any:
        if tag:
            kwargs["imageTag"] = tag
        return self.ecr.put_image(repositoryName=repository, imageManifest=manifest, **kwargs)


@pytest.fixture
def ecr(aws: Any) -> Any:
    return aws.client("ecr")


@pytest.fixture
def sqs(aws: Any) -> Any:
    return aws.client("sqs")


@pytest.fixture
def images(ecr: Any) -> Images:
    return Images(ecr)


@pytest.fixture
def queued_events(aws: Any, sqs: Any) -> Any:
    """Take every message off the bootstrap events queue; returns their parsed bodies."""

    def take() -> list[dict[str, Any]]:
        return take_queued_events(sqs, aws.resources.events_queue_url)

    return take
