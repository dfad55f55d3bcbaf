"""ECR's checks of what put-image and friends are given, which moto does not make: repository
names on every call, tags against ECR's pattern, manifests' media type and schema version; and the
media type batch-check-layer-availability reports for a blob."""

from __future__ import annotations

import json
import re
from typing import Any

from moto.ecr.exceptions import InvalidParameterException
from moto.ecr.models import ECR_REPOSITORY_NAME_PATTERN

DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# ECR's check of put-image's tag: its message quotes this pattern.
_TAG_PATTERN = "[a-zA-Z0-9-_.]+"
_TAG_RE = re.compile(r"[a-zA-Z0-9\-_.]{1,300}")
# What put-image takes: Docker schema 1 and 2, manifest lists, OCI manifests and indexes.
SUPPORTED_MANIFEST_TYPES = frozenset(
    {
        DOCKER_MANIFEST_V1,
        DOCKER_MANIFEST_V1_SIGNED,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)


def blob_media_types(repo: Any) -> dict[str, str]:
    """digest -> media type, from the descriptors of every manifest in the repository."""
    types: dict[str, str] = {}
    for image in repo.images:
        try:
            manifest = json.loads(image.image_manifest)
        except (TypeError, ValueError):
            continue
        if not isinstance(manifest, dict):
            continue
        descriptors = [manifest.get("config"), *(manifest.get("layers") or [])]
        for descriptor in descriptors:
            if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
                media_type = descriptor.get("mediaType")
                if isinstance(media_type, str):
                    types.setdefault(descriptor["digest"], media_type)
    return types


def check_repository_name(name: object) -> None:
    """ECR checks a repository name's pattern on every call that takes one, before looking it
    up (moto checks it only on create-repository and answers RepositoryNotFound elsewhere)."""
    if not isinstance(name, str) or not re.fullmatch(ECR_REPOSITORY_NAME_PATTERN, name):
        raise InvalidParameterException(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: "
            f"'must satisfy regular expression '{ECR_REPOSITORY_NAME_PATTERN}''"
        )


def check_tag(tag: str | None) -> None:
    """ECR refuses a tag outside its pattern (or over 300 characters) with this message."""
    if tag is not None and not _TAG_RE.fullmatch(tag):
        raise InvalidParameterException(
            "Invalid parameter at 'imageTag' failed to satisfy constraint: "
            f"'must satisfy regular expression '{_TAG_PATTERN}''"
        )


def check_manifest(parsed: dict[str, Any], media_type: str, declared: str | None) -> None:
    """ECR's checks of a manifest's media type and schema version before it looks inside."""
    if media_type not in SUPPORTED_MANIFEST_TYPES:
        raise InvalidParameterException(
            "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            f"'Unsupported manifest media type {media_type}'"
        )
    inside = parsed.get("mediaType")
    if declared and isinstance(inside, str) and inside and inside != declared:
        raise InvalidParameterException(
            "Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: "
            f"'{declared}' does not match the manifest's mediaType '{inside}'"
        )
    expected = 1 if media_type in (DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED) else 2
    if parsed.get("schemaVersion") != expected:
        raise InvalidParameterException(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
            f"'schemaVersion must be {expected} for {media_type}'"
        )
