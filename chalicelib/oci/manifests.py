"""Manifests, media types and digests: what an image is, independent of where it is stored."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
# Layers a registry may legitimately lack: they are fetched from their `urls` instead.
NON_DISTRIBUTABLE_LAYER_PREFIXES = (
    "application/vnd.docker.image.rootfs.foreign.",
    "application/vnd.oci.image.layer.nondistributable.",
)

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_CONFIG_MEDIA_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})

# batch-get-image converts a manifest to the first accepted type it can when the stored
# type is not accepted; asking for every type we understand keeps the stored bytes intact.
ACCEPTED_MEDIA_TYPES = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V1,
]


def digest_of(data: bytes) -> str:
    """The content digest ECR and every OCI registry compute: sha256 of the exact bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Descriptor(BaseModel):
    """An OCI content descriptor, as it appears in manifests and indexes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    mediaType: str = ""
    digest: str
    size: int = 0
    urls: list[str] | None = None
    platform: dict[str, Any] | None = None
    artifactType: str | None = None
    annotations: dict[str, str] | None = None


class Manifest(BaseModel):
    """A manifest exactly as stored: the body is never re-serialised, so the digest holds."""

    digest: str
    media_type: str
    body: str

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES or "manifests" in self.document

    def children(self) -> list[Descriptor]:
        """The manifests an index points at (empty for an image manifest)."""
        return [Descriptor.model_validate(m) for m in self.document.get("manifests", [])]

    def blobs(self) -> list[Descriptor]:
        """The config blob and layers an image manifest needs in its repository."""
        doc = self.document
        found = []
        if isinstance(doc.get("config"), dict):
            found.append(Descriptor.model_validate(doc["config"]))
        found.extend(Descriptor.model_validate(layer) for layer in doc.get("layers", []))
        return found

    def subject(self) -> str | None:
        """The digest this manifest refers to (OCI 1.1 referrers: signatures, SBOMs)."""
        subject = self.document.get("subject")
        return subject.get("digest") if isinstance(subject, dict) else None


class HasManifest:
    """Mixin for an image or index known by its top-level manifest."""

    manifest: Manifest

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type


def media_type_of(body: str) -> str | None:
    """The media type a manifest declares about itself, if it does (OCI makes it optional)."""
    try:
        declared = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        return None
    return declared if isinstance(declared, str) else None


def digest_hex(digest: str) -> str:
    """`sha256:abc…` -> `abc…`."""
    return digest.split(":", 1)[-1]


def short_digest(digest: str) -> str:
    """`sha256:` and the first 12 hex digits: how logs and reasons name an image."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else digest[:12]
