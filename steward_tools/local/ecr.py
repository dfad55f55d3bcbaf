"""A faithful ECR on top of moto 5.2.5, for local runs and tests.

moto's ECR backend gets several parts of the ECR contract wrong in ways this service depends on:
it hashes layer digests instead of the manifest bytes, deletes the old image when a tag moves,
raises bare exceptions for unknown repositories, ignores tag-immutability exclusion filters'
wildcard syntax, keeps no layer bytes and has no GetDownloadUrlForLayer. `EmbeddedECRBackend`
fixes those on top of moto's `ECRBackend`, and `ecr_responses.install()` makes moto use it (in
server mode and under `mock_aws` alike). ECR Image Action events go through moto's EventBridge so
rules route them as AWS would. The calls live in one module per kind: `ecr_images` (images,
referrers, events) and `ecr_layers` (uploads, download URLs), on the shared `ecr_core`.
"""

from __future__ import annotations

from typing import Any

from moto.ecr.models import Repository

from .ecr_images import ImageCalls
from .ecr_layers import LayerUploads, blob_store
from .validation import check_repository_name

# get-lifecycle-policy's lastEvaluatedAt: lifecycle policies are previewed here, never run.
NEVER_EVALUATED = "1970-01-01T00:00:00Z"


class EmbeddedECRBackend(ImageCalls, LayerUploads):
    """moto's ECR with ECR's digest, tag, layer, reference and event semantics."""

    def delete_repository(
        self, repository_name: str, registry_id: str | None = None, force: bool = False
    ) -> Repository:
        check_repository_name(repository_name)
        with self._lock:
            repo = super().delete_repository(repository_name, registry_id, force)
            store = blob_store()
            for upload_id in list(repo.uploads):
                store.discard_upload(repo.registry_id, self.region_name, upload_id)
            repo.uploads.clear()
            return repo

    def get_lifecycle_policy(self, registry_id: str, repository_name: str) -> dict[str, Any]:
        # ECR's lifecycle runs are not simulated here, so the policy has never been evaluated:
        # epoch 0, not moto's "now" (which claims a run that never happened).
        result = super().get_lifecycle_policy(registry_id, repository_name)
        result["lastEvaluatedAt"] = NEVER_EVALUATED
        return result

    def delete_lifecycle_policy(self, registry_id: str, repository_name: str) -> dict[str, Any]:
        result = super().delete_lifecycle_policy(registry_id, repository_name)
        result["lastEvaluatedAt"] = NEVER_EVALUATED
        return result
