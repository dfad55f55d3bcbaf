"""The referrers API: an OCI index of the manifests whose `subject` is a digest, filtered by
`artifactType` on request (ECR supports OCI 1.1 referrers; its API twin is ListImageReferrers,
authorized as ecr:BatchGetImage)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.oci.manifests import OCI_INDEX

from .context import Call, check_digest
from .http import Response

GET_IMAGE = "ecr:BatchGetImage"


def _descriptor(image: Any) -> dict[str, Any]:
    manifest = image.image_manifest
    descriptor: dict[str, Any] = {
        "mediaType": image.image_manifest_media_type,
        "digest": image.get_image_digest(),
        "size": len(manifest.encode("utf-8")),
    }
    if image.artifact_media_type:
        # The manifest's artifactType, else its config's media type (the spec's rule).
        descriptor["artifactType"] = image.artifact_media_type
    try:
        annotations = json.loads(manifest).get("annotations")
    except (ValueError, AttributeError):
        annotations = None
    if isinstance(annotations, dict) and annotations:
        descriptor["annotations"] = annotations
    return descriptor


def list_referrers(call: Call, digest: str) -> Response:
    call.allow(GET_IMAGE)
    check_digest(digest)
    artifact_type = call.request.param("artifactType")
    if artifact_type:
        # A media type has no spaces: a bare "+" (form-decoded to a space) meant "+".
        artifact_type = artifact_type.replace(" ", "+")
    backend = call.backend()
    with backend._lock:
        repo = call.repository()
        found = [
            _descriptor(image)
            for image in repo.images
            if getattr(image, "subject_manifest_digest", None) == digest
        ]
    headers: list[tuple[str, str]] = []
    if artifact_type:
        found = [d for d in found if d.get("artifactType") == artifact_type]
        headers.append(("OCI-Filters-Applied", "artifactType"))
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}).encode()
    return Response.data(200, body, OCI_INDEX, headers)
