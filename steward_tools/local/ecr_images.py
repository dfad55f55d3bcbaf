"""Image calls of the embedded ECR: put, get, delete, describe and list images, list referrers, and
the `ECR Image Action` events a put or a delete emits."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from moto.ecr.exceptions import ImageAlreadyExistsException, InvalidParameterException
from moto.ecr.models import Image, Repository

from . import scanning
from .ecr_core import INVALID_MANIFEST, EmbeddedECRCore, EmbeddedImage
from .ecr_errors import ImageDigestDoesNotMatchException, ImageTagAlreadyExistsException
from .events import emit_event
from .validation import (
    DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
    check_manifest,
    check_repository_name,
    check_tag,
)

IMAGE_DIGEST_RE = re.compile(r"^[0-9a-zA-Z_+.-]+:[0-9a-fA-F]{64}$")
_NOT_FOUND = "Requested image not found"


def referrer_descriptor(image: Any) -> dict[str, Any]:
    """An image as a referrer's descriptor (mediaType, digest, size, artifactType, annotations)."""
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


def same_media_type(stored: str | None, accepted: Sequence[str]) -> bool:
    """Whether a manifest stored as `stored` answers a request that accepts `accepted`."""
    if stored in accepted:
        return True
    # Schema 1 is stored signed; clients ask for it under either name.
    v1 = {DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED}
    return stored in v1 and any(a in v1 for a in accepted)


def image_id_of(digest: str | None, tag: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if digest:
        out["imageDigest"] = digest
    if tag:
        out["imageTag"] = tag
    return out


def _failure(image_id: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {
        "imageId": image_id_of(image_id.get("imageDigest"), image_id.get("imageTag")),
        "failureCode": code,
        "failureReason": reason,
    }


def _id_failure(image_id: dict[str, Any], invalid_digest_reason: str) -> dict[str, Any] | None:
    """The failure ECR answers for an image id with neither digest nor tag, or a malformed
    digest (each call words the latter its own way); None for an id worth looking up."""
    digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
    if not digest and not tag:
        return _failure(
            image_id,
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        )
    if digest and not IMAGE_DIGEST_RE.match(digest):
        return _failure(image_id, "InvalidImageDigest", invalid_digest_reason)
    return None


class ImageCalls(EmbeddedECRCore):
    """ECR's image and referrer calls, with ECR's digest, tag, reference and event semantics."""

    def _find(
        self, repo: Repository, image_id: dict[str, Any], invalid_digest_reason: str
    ) -> EmbeddedImage | dict[str, Any]:
        """The image an id of a batch call names, or the failure ECR answers for that id."""
        failure = _id_failure(image_id, invalid_digest_reason)
        if failure is not None:
            return failure
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        image = self._by_digest(repo, digest) if digest else self._by_tag(repo, tag)  # type: ignore[arg-type]
        if image is None:
            return _failure(image_id, "ImageNotFound", _NOT_FOUND)
        if digest and tag and tag not in image.image_tags:
            return _failure(
                image_id,
                "ImageTagDoesNotMatchDigest",
                "Invalid request parameters: image tag does not match image digest",
            )
        return image

    def _emit_image_action(
        self,
        repo: Repository,
        action: str,
        digest: str,
        tag: str | None,
        media_type: str | None = None,
    ) -> None:
        # Key order follows AWS's samples; image-tag is absent (not null) without a tag.
        detail: dict[str, Any] = {
            "result": "SUCCESS",
            "repository-name": repo.name,
            "image-digest": digest,
            "action-type": action,
        }
        if tag:
            detail["image-tag"] = tag
        if media_type:
            detail["manifest-media-type"] = media_type
        emit_event(repo.registry_id, self.region_name, "aws.ecr", "ECR Image Action", detail, [])

    def put_image(
        self,
        repository_name: str,
        image_manifest: str,
        image_tag: str | None,
        image_manifest_mediatype: str | None = None,
        digest: str | None = None,
        registry_id: str | None = None,
    ) -> EmbeddedImage:
        check_tag(image_tag)
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            try:
                parsed = json.loads(image_manifest)
            except (TypeError, ValueError):
                raise InvalidParameterException(INVALID_MANIFEST) from None
            if not isinstance(parsed, dict):
                raise InvalidParameterException(INVALID_MANIFEST)
            media_type = image_manifest_mediatype or parsed.get("mediaType")
            if not isinstance(media_type, str) or not media_type:
                # ECR's (unhelpful) answer to a manifest without mediaType and no parameter.
                raise InvalidParameterException(INVALID_MANIFEST)
            check_manifest(parsed, media_type, image_manifest_mediatype)

            computed = "sha256:" + hashlib.sha256(image_manifest.encode("utf-8")).hexdigest()
            if digest and digest != computed:
                raise ImageDigestDoesNotMatchException(
                    f"Invalid parameter at 'imageDigest' failed to satisfy constraint: "
                    f"'The specified digest {digest} does not match the calculated digest "
                    f"{computed} of the manifest'"
                )
            analysis = self._analyse(repo, parsed)

            existing = self._by_digest(repo, computed)
            holder = self._by_tag(repo, image_tag) if image_tag else None
            if existing is not None and (
                (image_tag is None and not existing.image_tags) or holder is existing
            ):
                raise ImageAlreadyExistsException(
                    repository_name=repo.name,
                    registry_id=repo.registry_id,
                    digest=computed,
                    image_tag=image_tag or "null",
                )
            if holder is not None and holder is not existing:
                assert image_tag is not None
                if self.tag_is_immutable(repo, image_tag):
                    raise ImageTagAlreadyExistsException(
                        f"The image tag '{image_tag}' already exists in the '{repo.name}' "
                        f"repository and cannot be overwritten because the repository is "
                        f"immutable."
                    )
                # The tag moves; the image it leaves stays, untagged if that was its last tag.
                holder.remove_tag(image_tag)

            if existing is None:
                image = EmbeddedImage(
                    account_id=self.account_id,
                    registry_id=repo.registry_id,
                    repository_name=repo.name,
                    manifest=image_manifest,
                    media_type=media_type,
                    digest=computed,
                    tag=image_tag,
                    size=analysis.size,
                    artifact_media_type=analysis.artifact_media_type,
                    subject_digest=analysis.subject_digest,
                    blobs=analysis.blobs,
                    children=analysis.children,
                )
                repo.images.append(image)
            else:
                # Re-tagging an existing image keeps its push time and stored manifest.
                image = existing
                if image_tag:
                    image.update_tag(image_tag)
            self._emit_image_action(repo, "PUSH", computed, image_tag, media_type)
            if existing is None:
                scanning.scan_on_push(self, repo, image)  # ECR scans new images, not retags
            return image

    def batch_get_image(
        self,
        repository_name: str,
        registry_id: str | None = None,
        image_ids: list[dict[str, Any]] | None = None,
        accepted_media_types: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            images: list[dict[str, Any]] = []
            failures: list[dict[str, Any]] = []
            for image_id in image_ids or []:
                image = self._find(repo, image_id, "Invalid image digest")
                if isinstance(image, dict):
                    failures.append(image)
                    continue
                tag = image_id.get("imageTag")
                stored_type = image.image_manifest_media_type
                if accepted_media_types and not same_media_type(stored_type, accepted_media_types):
                    # We never translate manifests (that would change their bytes and digest).
                    failures.append(
                        _failure(
                            image_id,
                            "ImageNotFound",
                            f"Requested image not found in an accepted media type "
                            f"(stored as {stored_type})",
                        )
                    )
                    continue
                image.last_recorded_pull_time = datetime.now(UTC)
                images.append(
                    {
                        "registryId": repo.registry_id,
                        "repositoryName": repo.name,
                        "imageId": image_id_of(image.get_image_digest(), tag),
                        "imageManifest": image.image_manifest,
                        "imageManifestMediaType": stored_type,
                    }
                )
            return {"images": images, "failures": failures}

    def batch_delete_image(
        self,
        repository_name: str,
        registry_id: str | None = None,
        image_ids: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            deleted: list[dict[str, str]] = []
            failures: list[dict[str, Any]] = []
            for image_id in image_ids or []:
                image = self._find(
                    repo,
                    image_id,
                    "Invalid request parameters: image digest should satisfy the regex "
                    "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
                )
                if isinstance(image, dict):
                    failures.append(image)
                    continue
                tag = image_id.get("imageTag")
                image_digest = image.get_image_digest()
                # By tag the tag goes, and the image with it if that was its last tag; by
                # digest the image and all its tags go. Either way an image an index still
                # lists cannot be deleted.
                removes_image = not tag or image.image_tags == [tag]
                indexes = self._referencing_indexes(repo, image_digest) if removes_image else []
                if indexes:
                    failures.append(
                        _failure(
                            image_id,
                            "ImageReferencedByManifestList",
                            f"Requested image referenced by manifest list: [{', '.join(indexes)}]",
                        )
                    )
                    continue
                if tag:
                    image.remove_tag(tag)
                    gone = [image_id_of(image_digest, tag)]
                else:
                    gone = [image_id_of(image_digest, t) for t in image.image_tags] or [
                        image_id_of(image_digest, None)
                    ]
                    image.image_tags = []
                if not image.image_tags:
                    repo.images.remove(image)
                deleted.extend(gone)
            for entry in deleted:
                self._emit_image_action(repo, "DELETE", entry["imageDigest"], entry.get("imageTag"))
            return {"imageIds": deleted, "failures": failures}

    def describe_images(
        self,
        repository_name: str,
        registry_id: str | None = None,
        image_ids: list[dict[str, str]] | None = None,
    ) -> list[Image]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            if not image_ids:
                return list(repo.images)
            # In the order asked, once each (moto returns a set).
            found: dict[str, Image] = {}
            for image_id in image_ids:
                image = repo._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
                found.setdefault(image.get_image_digest(), image)
            return list(found.values())

    def list_images(
        self, repository_name: str, registry_id: str | None = None, tag_status: str = "ANY"
    ) -> list[Image]:
        check_repository_name(repository_name)
        with self._lock:
            return super().list_images(repository_name, registry_id, tag_status)

    def list_image_referrers(
        self, repository_name: str, registry_id: str | None, digest: str
    ) -> list[dict[str, Any]]:
        """The descriptors of the images whose `subject` is `digest`: ListImageReferrers and the
        `/v2` referrers API both answer from here."""
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            return [
                referrer_descriptor(image)
                for image in repo.images
                if getattr(image, "subject_manifest_digest", None) == digest
            ]
