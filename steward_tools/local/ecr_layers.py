"""Layer calls of the embedded ECR: uploads in parts (initiate, upload part, complete), availability
checks and signed download URLs; and the process-wide runtime they share with the server: where
blobs live and how download URLs are signed."""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from moto.ecr.exceptions import UploadNotFoundException
from moto.ecr.models import Repository, ecr_backends

from . import events
from .blobs import BlobStore, BlobUrlSigner
from .ecr_core import EmbeddedECRCore
from .ecr_errors import (
    EmptyUploadException,
    InvalidLayerException,
    InvalidLayerPartException,
    LayerAlreadyExistsException,
    LayerInaccessibleException,
    LayerPartTooSmallException,
    LayersNotFoundException,
)
from .validation import blob_media_types

# InitiateLayerUpload's advisory part size, and the hard limits ECR enforces on parts.
PART_SIZE = 10 * 1024 * 1024
MAX_PART_BYTES = 20 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
DOWNLOAD_URL_TTL_SECONDS = 3600
BLOB_URL_PREFIX = "/_steward/blobs/"


def serves_layer(account: str, region: str, repository: str, digest: str) -> bool:
    """The download middleware's check, for the backend of that account and region."""
    backend = ecr_backends[account][region]
    return bool(getattr(backend, "serves_layer", lambda *_: True)(repository, digest))


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


class LayerUpload:
    """An upload in progress; its bytes are in the blob store, only part sizes are kept here."""

    def __init__(self, repository_name: str, registry_id: str) -> None:
        self.upload_id = str(uuid.uuid4())
        self.repository_name = repository_name
        self.registry_id = registry_id
        self.part_sizes: list[int] = []
        self.size = 0


class LayerUploads(EmbeddedECRCore):
    """ECR's layer calls: the bytes go to the blob store, the repository keeps digests and sizes."""

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
