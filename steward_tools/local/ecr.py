"""A faithful ECR on top of moto 5.2.5, for local runs and tests.

moto's ECR backend gets several parts of the ECR contract wrong in ways this service depends on:
it hashes layer digests instead of the manifest bytes, deletes the old image when a tag moves,
raises bare exceptions for unknown repositories, ignores tag-immutability exclusion filters'
wildcard syntax, keeps no layer bytes and has no GetDownloadUrlForLayer. `EmbeddedECRBackend`
fixes those on top of moto's `ECRBackend` and `install()` makes moto use it (in server mode and
under `mock_aws` alike). ECR Image Action events go through moto's EventBridge so rules route
them as AWS would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import moto.ecr.urls
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    InvalidParameterException,
    UploadNotFoundException,
)
from moto.ecr.models import (
    ECRBackend,
    Image,
    Repository,
    RepoTagMutability,
    ecr_backends,
)
from moto.ecr.responses import ECRResponse

from . import events, scanning, session_policies
from .account_settings import RESPONSE_HANDLERS as ACCOUNT_SETTING_HANDLERS
from .blobs import BlobStore, BlobUrlSigner
from .events import emit_event
from .governance import RESPONSE_HANDLERS as GOVERNANCE_HANDLERS
from .lifecycle_preview import RESPONSE_HANDLERS as LIFECYCLE_HANDLERS
from .pagination import paginate
from .tokens import RESPONSE_HANDLERS as TOKEN_HANDLERS
from .validation import (
    DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
    blob_media_types,
    check_manifest,
    check_repository_name,
    check_tag,
)

logger = logging.getLogger(__name__)

# InitiateLayerUpload's advisory part size, and the hard limits ECR enforces on parts.
PART_SIZE = 10 * 1024 * 1024
MAX_PART_BYTES = 20 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
DOWNLOAD_URL_TTL_SECONDS = 3600
BLOB_URL_PREFIX = "/_steward/blobs/"

# get-lifecycle-policy's lastEvaluatedAt: lifecycle policies are previewed here, never run.
NEVER_EVALUATED = "1970-01-01T00:00:00Z"
_IMAGE_DIGEST_RE = re.compile(r"^[0-9a-zA-Z_+.-]+:[0-9a-fA-F]{64}$")
_NOT_FOUND = "Requested image not found"
_INVALID_MANIFEST = (
    "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
)


def serves_layer(account: str, region: str, repository: str, digest: str) -> bool:
    """The download middleware's check, for the backend of that account and region."""
    backend = ecr_backends[account][region]
    return bool(getattr(backend, "serves_layer", lambda *_: True)(repository, digest))


# -- ECR exceptions moto does not define -------------------------------------------------------


class ImageDigestDoesNotMatchException(ServiceException):
    code = "ImageDigestDoesNotMatchException"


class ImageTagAlreadyExistsException(ServiceException):
    code = "ImageTagAlreadyExistsException"


class LayersNotFoundException(ServiceException):
    code = "LayersNotFoundException"


class ReferencedImagesNotFoundException(ServiceException):
    code = "ReferencedImagesNotFoundException"


class LayerInaccessibleException(ServiceException):
    code = "LayerInaccessibleException"
    message = (
        "The specified layer is not available because it is not associated with an image. "
        "Unassociated image layers may be cleaned up at any time."
    )


class LayerAlreadyExistsException(ServiceException):
    code = "LayerAlreadyExistsException"


class InvalidLayerException(ServiceException):
    code = "InvalidLayerException"


class EmptyUploadException(ServiceException):
    code = "EmptyUploadException"


class LayerPartTooSmallException(ServiceException):
    code = "LayerPartTooSmallException"
    message = "Layer parts must be at least 5 MiB in size."


class InvalidLayerPartException(ServiceException):
    """Carries ``lastValidByteReceived`` so a client can resume (moto's only sets it half-way)."""

    code = "InvalidLayerPartException"

    def __init__(
        self, message: str, registry_id: str, repository_name: str, upload_id: str, last: int
    ) -> None:
        super().__init__(message)
        self.registry_id = registry_id
        self.repository_name = repository_name
        self.upload_id = upload_id
        # The model's PartSize is >= 0: report 0 for an upload that has no bytes yet.
        self.last_valid_byte_received = max(last, 0)


# -- process-wide runtime: where blobs live and how download URLs are made ----------------------


class _Runtime:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blobs: BlobStore | None = None
        self.signer = BlobUrlSigner(secrets.token_bytes(32))
        self.base_url: str | None = None
        self.scratch: tempfile.TemporaryDirectory[str] | None = None


_runtime = _Runtime()


def configure(
    *,
    blobs: BlobStore | None = None,
    base_url: str | None = None,
    signing_key: bytes | None = None,
    on_region: Callable[[str], None] | None = None,
) -> None:
    """Point the backend at a blob store and at the URL its download links should use."""
    with _runtime.lock:
        if on_region is not None:
            events.on_region(on_region)
        if blobs is not None:
            _runtime.blobs = blobs
        if base_url is not None:
            _runtime.base_url = base_url.rstrip("/")
        if signing_key is not None:
            _runtime.signer = BlobUrlSigner(signing_key)


def unconfigure() -> None:
    """Forget the configured store and URL (the server calls this on stop)."""
    with _runtime.lock:
        _runtime.blobs = None
        _runtime.base_url = None
    events.on_region(None)


def blob_store() -> BlobStore:
    """The configured store; under plain `mock_aws` a scratch one is made on first use."""
    with _runtime.lock:
        if _runtime.blobs is None:
            if _runtime.scratch is None:
                _runtime.scratch = tempfile.TemporaryDirectory(prefix="steward-blobs-")
            _runtime.blobs = BlobStore(Path(_runtime.scratch.name))
        return _runtime.blobs


def url_signer() -> BlobUrlSigner:
    return _runtime.signer


def download_base_url() -> str | None:
    return _runtime.base_url


# -- events ------------------------------------------------------------------------------------


# -- model -------------------------------------------------------------------------------------


class LayerUpload:
    """An upload in progress; its bytes are in the blob store, only part sizes are kept here."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        self.upload_id = str(uuid.uuid4())
        self.repository_name = repository_name
        self.registry_id = registry_id
        self.part_sizes: list[int] = []
        self.size = 0


class EmbeddedImage(Image):
    """An image whose digest is the sha256 of its manifest bytes, with ECR's ImageDetail fields."""

    def __init__(
        self,
        *,
        account_id: str,
        registry_id: str,
        repository_name: str,
        manifest: str,
        media_type: str,
        digest: str,
        tag: str | None,
        size: int,
        artifact_media_type: str | None,
        subject_digest: str | None,
        blobs: frozenset[str],
        children: tuple[str, ...],
    ) -> None:
        super().__init__(
            account_id=account_id,
            tag=tag,  # type: ignore[arg-type]  # moto's hint says str; it handles None
            manifest=manifest,
            repository=repository_name,
            image_manifest_mediatype=media_type,
            digest=digest,
            registry_id=registry_id,
        )
        # moto stores whole epoch seconds; ECR keeps sub-second resolution.
        self.image_pushed_at = datetime.now(UTC)  # type: ignore[assignment]
        self.image_status = "ACTIVE"
        self.artifact_media_type = artifact_media_type
        self.subject_manifest_digest = subject_digest
        self.last_recorded_pull_time: datetime | None = None
        # Layer and config digests this manifest needs (what GetDownloadUrlForLayer may serve).
        self.referenced_blobs = blobs
        # Digests of the manifests an index lists (what BatchDeleteImage must protect).
        self.child_digests = children
        self._size = size

    def get_image_digest(self) -> str:
        return str(self._image_digest)

    def get_image_size_in_bytes(self) -> int:
        return self._size

    def remove_tag(self, tag: str) -> None:
        # moto leaves the removed tag as `image_tag` when it was the last one.
        if tag in self.image_tags:
            self.image_tags.remove(tag)
        self.image_tag = self.image_tags[-1] if self.image_tags else None  # type: ignore[assignment]


class _Analysis:
    def __init__(self) -> None:
        self.size = 0
        self.artifact_media_type: str | None = None
        self.subject_digest: str | None = None
        self.blobs: frozenset[str] = frozenset()
        self.children: tuple[str, ...] = ()


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


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Exclusion filters are ECR wildcards (only `*` is special), not regular expressions.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _descriptor_digest(descriptor: Any) -> str:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise InvalidParameterException(_INVALID_MANIFEST)
    return str(descriptor["digest"])


def _same_media_type(stored: str | None, accepted: Sequence[str]) -> bool:
    if stored in accepted:
        return True
    # Schema 1 is stored signed; clients ask for it under either name.
    v1 = {DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED}
    return stored in v1 and any(a in v1 for a in accepted)


def _image_id(digest: str | None, tag: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if digest:
        out["imageDigest"] = digest
    if tag:
        out["imageTag"] = tag
    return out


def _failure(image_id: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    return {
        "imageId": _image_id(image_id.get("imageDigest"), image_id.get("imageTag")),
        "failureCode": code,
        "failureReason": reason,
    }


# -- backend -----------------------------------------------------------------------------------


class EmbeddedECRBackend(ECRBackend):
    """moto's ECR with ECR's digest, tag, layer, reference and event semantics."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        # moto's server is threaded; every read-modify-write of repository state holds this.
        self._lock = threading.RLock()

    @property
    def _url_module(self) -> Any:
        # moto derives the urls module from the backend's module name; ours lives elsewhere.

        return moto.ecr.urls

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _by_digest(repo: Repository, digest: str) -> EmbeddedImage | None:
        found = next((i for i in repo.images if i.get_image_digest() == digest), None)
        return cast("EmbeddedImage | None", found)

    @staticmethod
    def _by_tag(repo: Repository, tag: str) -> EmbeddedImage | None:
        found = next((i for i in repo.images if tag in i.image_tags), None)
        return cast("EmbeddedImage | None", found)

    @staticmethod
    def _referencing_indexes(repo: Repository, digest: str) -> list[str]:
        return [
            i.get_image_digest() for i in repo.images if digest in getattr(i, "child_digests", ())
        ]

    @staticmethod
    def tag_is_immutable(repo: Repository, tag: str) -> bool:
        """Whether `tag`, once set, may not move to another image in `repo`."""
        mode = repo.image_tag_mutability
        filters = repo.image_tag_mutability_exclusion_filters or []
        excluded = any(_wildcard(f["filter"]).fullmatch(tag) for f in filters)
        if mode == RepoTagMutability.IMMUTABLE:
            return True
        if mode == RepoTagMutability.IMMUTABLE_WITH_EXCLUSION:
            return not excluded
        if mode == RepoTagMutability.MUTABLE_WITH_EXCLUSION:
            return excluded
        return False

    def _analyse(self, repo: Repository, manifest: dict[str, Any]) -> _Analysis:
        out = _Analysis()
        subject = manifest.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            out.subject_digest = subject["digest"]
        artifact_type = manifest.get("artifactType")

        if isinstance(manifest.get("manifests"), list):
            children = tuple(_descriptor_digest(d) for d in manifest["manifests"])
            found = {d: self._by_digest(repo, d) for d in dict.fromkeys(children)}
            missing = [d for d, image in found.items() if image is None]
            if missing:
                raise ReferencedImagesNotFoundException(
                    f"The manifest list references images that do not exist in the repository "
                    f"with name '{repo.name}' in the registry with id '{repo.registry_id}': "
                    f"[{', '.join(missing)}]"
                )
            # ECR: the size of a manifest list is the largest of its manifests.
            sizes = [i.get_image_size_in_bytes() for i in found.values() if i is not None]
            out.size = max(sizes, default=0)
            out.children = children
            out.artifact_media_type = artifact_type if isinstance(artifact_type, str) else None
            return out

        descriptors: list[dict[str, Any]] = []
        if "config" in manifest or "layers" in manifest:
            config = manifest.get("config")
            if config is not None:
                descriptors.append(config)
            layers = manifest.get("layers") or []
            if not isinstance(layers, list):
                raise InvalidParameterException(_INVALID_MANIFEST)
            descriptors.extend(layers)
            if isinstance(artifact_type, str):
                out.artifact_media_type = artifact_type
            elif isinstance(config, dict) and isinstance(config.get("mediaType"), str):
                # ECR reports the config media type here for every image, not just artifacts.
                out.artifact_media_type = config["mediaType"]
        elif isinstance(manifest.get("fsLayers"), list):
            # Docker schema 1: layers are `blobSum`s and there is no config blob.
            descriptors = [
                {"digest": layer.get("blobSum") if isinstance(layer, dict) else None}
                for layer in manifest["fsLayers"]
            ]

        needed: dict[str, int] = {}
        for descriptor in descriptors:
            digest = _descriptor_digest(descriptor)
            if descriptor.get("urls"):
                # Foreign (non-distributable) layers live elsewhere; ECR does not require them.
                continue
            declared = descriptor.get("size")
            needed[digest] = int(declared) if isinstance(declared, int) else 0
        missing = [d for d in needed if d not in repo.layers]
        if missing:
            raise LayersNotFoundException(
                f"Layers with digests '[{', '.join(missing)}]' required for pushing image into "
                f"repository with name '{repo.name}' in the registry with id "
                f"'{repo.registry_id}' do not exist"
            )
        out.size = sum(repo.layers[d] for d in needed)
        out.blobs = frozenset(needed)
        return out

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

    # -- images --------------------------------------------------------------------------------

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
                raise InvalidParameterException(_INVALID_MANIFEST) from None
            if not isinstance(parsed, dict):
                raise InvalidParameterException(_INVALID_MANIFEST)
            media_type = image_manifest_mediatype or parsed.get("mediaType")
            if not isinstance(media_type, str) or not media_type:
                # ECR's (unhelpful) answer to a manifest without mediaType and no parameter.
                raise InvalidParameterException(_INVALID_MANIFEST)
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
                digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
                if not digest and not tag:
                    failures.append(
                        _failure(
                            image_id,
                            "MissingDigestAndTag",
                            "Invalid request parameters: both tag and digest cannot be null",
                        )
                    )
                    continue
                if digest and not _IMAGE_DIGEST_RE.match(digest):
                    failures.append(
                        _failure(image_id, "InvalidImageDigest", "Invalid image digest")
                    )
                    continue
                image = self._by_digest(repo, digest) if digest else self._by_tag(repo, tag)  # type: ignore[arg-type]
                if image is not None and digest and tag and tag not in image.image_tags:
                    failures.append(
                        _failure(
                            image_id,
                            "ImageTagDoesNotMatchDigest",
                            "Invalid request parameters: image tag does not match image digest",
                        )
                    )
                    continue
                if image is None:
                    failures.append(_failure(image_id, "ImageNotFound", _NOT_FOUND))
                    continue
                stored_type = image.image_manifest_media_type
                if accepted_media_types and not _same_media_type(stored_type, accepted_media_types):
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
                        "imageId": _image_id(image.get_image_digest(), tag),
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
                digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
                if not digest and not tag:
                    failures.append(
                        _failure(
                            image_id,
                            "MissingDigestAndTag",
                            "Invalid request parameters: both tag and digest cannot be null",
                        )
                    )
                    continue
                if digest and not _IMAGE_DIGEST_RE.match(digest):
                    failures.append(
                        _failure(
                            image_id,
                            "InvalidImageDigest",
                            "Invalid request parameters: image digest should satisfy the regex "
                            "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
                        )
                    )
                    continue
                image = self._by_digest(repo, digest) if digest else self._by_tag(repo, tag)  # type: ignore[arg-type]
                if image is None:
                    failures.append(_failure(image_id, "ImageNotFound", _NOT_FOUND))
                    continue
                if digest and tag and tag not in image.image_tags:
                    failures.append(
                        _failure(
                            image_id,
                            "ImageTagDoesNotMatchDigest",
                            "Invalid request parameters: image tag does not match image digest",
                        )
                    )
                    continue
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
                    gone = [_image_id(image_digest, tag)]
                else:
                    gone = [_image_id(image_digest, t) for t in image.image_tags] or [
                        _image_id(image_digest, None)
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

    # -- layers --------------------------------------------------------------------------------

    def initiate_layer_upload(
        self, repository_name: str, registry_id: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            upload = LayerUpload(repo.name, repo.registry_id)
            blob_store().begin_upload(repo.registry_id, self.region_name, upload.upload_id)
            repo.uploads[upload.upload_id] = upload  # type: ignore[assignment]
            return {"uploadId": upload.upload_id, "partSize": PART_SIZE}

    def _upload(self, repo: Repository, upload_id: str) -> LayerUpload:
        upload = repo.uploads.get(upload_id)
        if upload is None:
            raise UploadNotFoundException(upload_id, repo.name, repo.registry_id)
        return upload  # type: ignore[return-value]

    def upload_layer_part(
        self,
        repository_name: str,
        upload_id: str,
        part_first_byte: int,
        part_last_byte: int,
        layer_part_blob: bytes,
        registry_id: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            upload = self._upload(repo, upload_id)
            data = layer_part_blob or b""

            def invalid(why: str) -> InvalidLayerPartException:
                return InvalidLayerPartException(
                    f"{why} for upload with id '{upload_id}' in the repository with name "
                    f"'{repo.name}' in the registry with id '{repo.registry_id}'",
                    repo.registry_id,
                    repo.name,
                    upload_id,
                    upload.size - 1,
                )

            if not data or len(data) > MAX_PART_BYTES:
                raise invalid(f"Invalid layer part size {len(data)}")
            if part_first_byte != upload.size:
                raise invalid(
                    f"The first byte {part_first_byte} is not consecutive to the last byte "
                    f"{upload.size - 1} received"
                )
            if part_last_byte is not None and part_last_byte - part_first_byte + 1 != len(data):
                raise invalid(
                    f"The byte range {part_first_byte}-{part_last_byte} does not match the part "
                    f"size {len(data)}"
                )
            blob_store().append_part(repo.registry_id, self.region_name, upload_id, data)
            upload.part_sizes.append(len(data))
            upload.size += len(data)
            return {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "uploadId": upload_id,
                "lastByteReceived": upload.size - 1,
            }

    def complete_layer_upload(
        self,
        repository_name: str,
        upload_id: str,
        layer_digests: list[str],
        registry_id: str | None = None,
    ) -> dict[str, Any]:
        store = blob_store()
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            upload = self._upload(repo, upload_id)
            account = repo.registry_id
            if not upload.part_sizes:
                raise EmptyUploadException(
                    f"The upload with id '{upload_id}' does not contain any layer parts"
                )
            # Claim the upload: hashing happens outside the lock, and it is single-use from here.
            del repo.uploads[upload_id]
        if any(size < MIN_PART_BYTES for size in upload.part_sizes[:-1]):
            store.discard_upload(account, self.region_name, upload_id)
            raise LayerPartTooSmallException()
        computed, size = store.digest_upload(account, self.region_name, upload_id)
        if computed not in (layer_digests or []):
            store.discard_upload(account, self.region_name, upload_id)
            raise InvalidLayerException(
                f"None of the provided layer digests match the calculated layer digest '{computed}'"
            )
        with self._lock:
            if self.repositories.get(repository_name) is not repo:
                # Deleted (or replaced) while we hashed: the upload went with it.
                store.discard_upload(account, self.region_name, upload_id)
                self._get_repository(repository_name, registry_id)
                raise UploadNotFoundException(upload_id, repository_name, account)
            if computed in repo.layers:
                store.discard_upload(account, self.region_name, upload_id)
                raise LayerAlreadyExistsException(
                    f"The layer with digest '{computed}' already exists in the repository with "
                    f"name '{repo.name}' in the registry with id '{repo.registry_id}'"
                )
            store.commit_upload(account, self.region_name, upload_id, computed)
            repo.layers[computed] = size
            return {
                "registryId": repo.registry_id,
                "repositoryName": repo.name,
                "uploadId": upload_id,
                "layerDigest": computed,
            }

    def _get_repository(self, name: str, registry_id: str | None = None) -> Repository:
        check_repository_name(name)
        return super()._get_repository(name, registry_id)

    def batch_check_layer_availability(
        self,
        repository_name: str,
        layer_digests: list[str],
        registry_id: str | None = None,
    ) -> dict[str, Any]:
        """moto's answer, with each blob's media type as the repository's manifests describe it
        (config, layer, OCI or Docker); a blob no manifest references yet keeps moto's default."""
        result = super().batch_check_layer_availability(repository_name, layer_digests, registry_id)
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            known = blob_media_types(repo)
        for layer in result.get("layers", []):
            layer["mediaType"] = known.get(layer["layerDigest"], layer.get("mediaType"))
        return result

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

    def serves_layer(self, repository_name: str, layer_digest: str) -> bool:
        """Whether a download URL for this layer may still be served: its repository still
        exists and holds the layer (a deleted repository's URLs stop). Whether an image
        references it was checked when the URL was issued; /v2 serves a blob pushed moments
        before the manifest that will reference it, as ECR does."""
        with self._lock:
            repo = self.repositories.get(repository_name)
            return repo is not None and layer_digest in repo.layers

    def get_download_url_for_layer(
        self,
        repository_name: str,
        layer_digest: str,
        registry_id: str | None = None,
        base_url: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            repo = self._get_repository(repository_name, registry_id)
            if layer_digest not in repo.layers:
                raise LayersNotFoundException(
                    f"The layer with digest '{layer_digest}' does not exist within the "
                    f"repository with name '{repo.name}' in the registry with id "
                    f"'{repo.registry_id}'"
                )
            if not any(layer_digest in getattr(i, "referenced_blobs", ()) for i in repo.images):
                raise LayerInaccessibleException()
            account = repo.registry_id
        base = download_base_url() or base_url or "http://127.0.0.1:5000"
        expires = int(time.time()) + DOWNLOAD_URL_TTL_SECONDS
        signature = url_signer().signature(
            account, self.region_name, repo.name, layer_digest, expires
        )
        path = "/".join(
            (account, self.region_name, quote(repo.name, safe="/"), quote(layer_digest, safe=":"))
        )
        return {
            "downloadUrl": f"{base}{BLOB_URL_PREFIX}{path}?expires={expires}&signature={signature}",
            "layerDigest": layer_digest,
        }


# -- response handlers moto lacks or gets wrong ------------------------------------------------


def _status_filter_allows(image_filter: dict[str, Any]) -> bool:
    # Every image here is ACTIVE (no archive storage class locally).
    return image_filter.get("imageStatus", "ACTIVE") in ("ACTIVE", "ANY")


def _tag_filter(images: Iterable[Image], tag_status: str) -> list[Image]:
    if tag_status == "TAGGED":
        return [i for i in images if i.image_tags]
    if tag_status == "UNTAGGED":
        return [i for i in images if not i.image_tags]
    return list(images)


def _backend(response: ECRResponse) -> EmbeddedECRBackend:
    return cast(EmbeddedECRBackend, response.ecr_backend)


def _put_image(self: ECRResponse) -> ActionResult:
    tag = self._get_param("imageTag")
    image = _backend(self).put_image(
        repository_name=self._get_param("repositoryName"),
        image_manifest=self._get_param("imageManifest"),
        image_tag=tag,
        image_manifest_mediatype=self._get_param("imageManifestMediaType"),
        digest=self._get_param("imageDigest"),
        registry_id=self._get_param("registryId"),
    )
    return ActionResult(
        {
            "image": {
                "registryId": image.registry_id,
                "repositoryName": image.repository_name,
                "imageId": _image_id(image.get_image_digest(), tag),
                "imageManifest": image.image_manifest,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
        }
    )


def _batch_get_image(self: ECRResponse) -> ActionResult:
    return ActionResult(
        _backend(self).batch_get_image(
            self._get_param("repositoryName"),
            self._get_param("registryId"),
            self._get_param("imageIds"),
            accepted_media_types=self._get_param("acceptedMediaTypes"),
        )
    )


def _describe_images(self: ECRResponse) -> ActionResult:
    image_ids = self._get_param("imageIds")
    max_results = self._get_param("maxResults")
    next_token = self._get_param("nextToken")
    image_filter = self._get_param("filter") or {}
    if image_ids and (max_results is not None or next_token):
        raise InvalidParameterException(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'imageIds cannot be "
            "used together with maxResults or nextToken'"
        )
    images = list(
        self.ecr_backend.describe_images(
            self._get_param("repositoryName"), self._get_param("registryId"), image_ids
        )
    )
    token = None
    if not image_ids:
        images = _tag_filter(images, image_filter.get("tagStatus", "ANY"))
        images = images if _status_filter_allows(image_filter) else []
        images, token = paginate(images, max_results, next_token)
    details = []
    for image in images:
        detail = copy.copy(image)
        if not detail.image_tags:
            # ECR leaves imageTags out for an untagged image rather than sending [].
            del detail.image_tags
        details.append(detail)
    return ActionResult({"imageDetails": details, "nextToken": token})


def _list_images(self: ECRResponse) -> ActionResult:
    image_filter = self._get_param("filter") or {}
    images = self.ecr_backend.list_images(
        self._get_param("repositoryName"),
        self._get_param("registryId"),
        tag_status=image_filter.get("tagStatus", "ANY"),
    )
    if not _status_filter_allows(image_filter):
        images = []
    ids = [
        _image_id(image.get_image_digest(), tag)
        for image in images
        for tag in cast("list[str | None]", image.image_tags or [None])
    ]
    page, token = paginate(ids, self._get_param("maxResults"), self._get_param("nextToken"))
    return ActionResult({"imageIds": page, "nextToken": token})


# ListImageReferrers' page: 20 unless maxResults says (botocore checks its 1..50).
REFERRERS_PAGE = 20


def _list_image_referrers(self: ECRResponse) -> ActionResult:
    subject = self._get_param("subjectId") or {}
    digest = subject.get("imageDigest") or ""
    if not _IMAGE_DIGEST_RE.match(digest):
        raise InvalidParameterException("Invalid parameter at 'subjectId': invalid image digest")
    image_filter = self._get_param("filter") or {}
    found = _backend(self).list_image_referrers(
        self._get_param("repositoryName"), self._get_param("registryId"), digest
    )
    kinds = image_filter.get("artifactTypes")
    if kinds:
        found = [d for d in found if d.get("artifactType") in kinds]
    # Every image here is ACTIVE (no archive storage class locally); ACTIVE is the default.
    if image_filter.get("artifactStatus", "ACTIVE") not in ("ACTIVE", "ANY"):
        found = []
    page, token = paginate(
        [{**d, "artifactStatus": "ACTIVE"} for d in found],
        self._get_param("maxResults") or REFERRERS_PAGE,
        self._get_param("nextToken"),
    )
    return ActionResult({"referrers": page, "nextToken": token})


def _describe_repositories(self: ECRResponse) -> ActionResult:
    """Pages as ECR's do (moto returned every repository and ignored maxResults): the sweep walks
    the registry a page per invocation."""
    names = self._get_param("repositoryNames")
    if names and (self._get_param("nextToken") or self._get_param("maxResults")):
        raise InvalidParameterException(
            "Cannot specify repositoryNames together with nextToken or maxResults"
        )
    repositories = self.ecr_backend.describe_repositories(
        repository_names=names, registry_id=self._get_param("registryId")
    )
    page, token = paginate(
        list(repositories), self._get_param("maxResults"), self._get_param("nextToken")
    )
    return ActionResult({"repositories": page, "failures": [], "nextToken": token})


def _get_download_url_for_layer(self: ECRResponse) -> ActionResult:
    host = self.headers.get("Host") if self.headers else None
    return ActionResult(
        _backend(self).get_download_url_for_layer(
            self._get_param("repositoryName"),
            self._get_param("layerDigest"),
            registry_id=self._get_param("registryId"),
            base_url=f"http://{host}" if host else None,
        )
    )


_RESPONSE_HANDLERS = {
    "put_image": _put_image,
    "batch_get_image": _batch_get_image,
    "describe_images": _describe_images,
    "list_images": _list_images,
    "list_image_referrers": _list_image_referrers,
    "describe_repositories": _describe_repositories,
    "get_download_url_for_layer": _get_download_url_for_layer,
    **GOVERNANCE_HANDLERS,  # repository settings (steward_tools/local/governance.py)
    **scanning.RESPONSE_HANDLERS,  # image scanning (steward_tools/local/scanning.py)
    **LIFECYCLE_HANDLERS,  # lifecycle preview and policy (steward_tools/local/lifecycle_preview.py)
    **TOKEN_HANDLERS,  # get-authorization-token (steward_tools/local/tokens.py)
    **ACCOUNT_SETTING_HANDLERS,  # BLOB_MOUNTING etc. (steward_tools/local/account_settings.py)
}
_install_lock = threading.Lock()


def install() -> None:
    """Make moto build `EmbeddedECRBackend`s and answer with our handlers. Idempotent."""
    with _install_lock:
        if ecr_backends.backend is not EmbeddedECRBackend:
            ecr_backends.backend = EmbeddedECRBackend
            # Backends already built from moto's class would keep answering: drop them.
            ecr_backends.clear()
        for name, handler in _RESPONSE_HANDLERS.items():
            # moto dispatches JSON actions to the snake_case method of the same name.
            if ECRResponse.__dict__.get(name) is not handler:
                setattr(ECRResponse, name, handler)
        # A vended credential may do on the control API only what its session policy allows.
        session_policies.install()


def is_installed() -> bool:
    return (
        ecr_backends.backend is EmbeddedECRBackend
        and session_policies.is_installed()
        and all(
            ECRResponse.__dict__.get(name) is handler
            for name, handler in _RESPONSE_HANDLERS.items()
        )
    )
