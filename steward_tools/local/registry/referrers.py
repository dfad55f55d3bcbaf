"""The referrers API: an OCI index of the manifests whose `subject` is a digest, filtered by
`artifactType` on request (ECR supports OCI 1.1 referrers; its API twin is ListImageReferrers,
authorized as ecr:BatchGetImage)."""

from __future__ import annotations

import json

from chalicelib.oci.manifests import OCI_INDEX

from .context import Call, check_digest
from .http import Response

GET_IMAGE = "ecr:BatchGetImage"


def list_referrers(call: Call, digest: str) -> Response:
    call.allow(GET_IMAGE)
    check_digest(digest)
    artifact_type = call.request.param("artifactType")
    if artifact_type:
        # A media type has no spaces: a bare "+" (form-decoded to a space) meant "+".
        artifact_type = artifact_type.replace(" ", "+")
    repo = call.repository()
    found = call.backend().list_image_referrers(repo.name, repo.registry_id, digest)
    headers: list[tuple[str, str]] = []
    if artifact_type:
        found = [d for d in found if d.get("artifactType") == artifact_type]
        headers.append(("OCI-Filters-Applied", "artifactType"))
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}).encode()
    return Response.data(200, body, OCI_INDEX, headers)
