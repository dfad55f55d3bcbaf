"""Blob uploads: monolithic (POST or PUT with the body), chunked (PATCH with Content-Range) and
streamed (PATCH without), status, cancel, and cross-repository mount.

An upload is an ECR layer upload (InitiateLayerUpload's upload id, kept in the repository like
the API's), its bytes appended to the blob store's upload file as they arrive and hashed on the
way, so a blob of any size costs a fixed amount of memory and is read once. Each PATCH is one
layer part: every part but the last must be at least 5 MiB, ECR's minimum part size (advertised
with `OCI-Chunk-Min-Length`); a streamed PATCH may be any size, as docker sends whole layers so.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ..account_settings import settings_of
from ..ecr_layers import MIN_PART_BYTES, blob_store
from .blobs import PULL_DOWNLOAD
from .context import Call, check_digest
from .errors import (
    BLOB_UPLOAD_INVALID,
    DIGEST_INVALID,
    SIZE_INVALID,
    RegistryError,
    upload_unknown,
)
from .http import Response

INITIATE = "ecr:InitiateLayerUpload"
UPLOAD_PART = "ecr:UploadLayerPart"
COMPLETE = "ecr:CompleteLayerUpload"
# ECR's quota "Maximum layer size": 52,000 MiB.
MAX_LAYER_BYTES = 52_000 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


@dataclass
class _Progress:
    """What the registry adds to an ECR upload: the running digest and the part sizes."""

    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    parts: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_progress: dict[str, _Progress] = {}
_progress_lock = threading.Lock()


def _location(call: Call, upload_id: str) -> str:
    return f"/v2/{call.name}/blobs/uploads/{upload_id}"


def _status_headers(call: Call, upload_id: str, size: int) -> list[tuple[str, str]]:
    headers = [("Location", _location(call, upload_id)), ("Docker-Upload-UUID", upload_id)]
    if size:
        headers.append(("Range", f"0-{size - 1}"))
    return headers


def _start(call: Call) -> str:
    backend = call.backend()
    with backend._lock:
        call.repository()  # NAME_UNKNOWN: ECR creates no repository on push
        upload_id = str(backend.initiate_layer_upload(call.name)["uploadId"])
    with _progress_lock:
        _progress[upload_id] = _Progress()
    return upload_id


def _find(call: Call, upload_id: str) -> _Progress:
    backend = call.backend()
    with backend._lock:
        repo = call.repository()
        known = upload_id in repo.uploads
    progress = _progress.get(upload_id)
    if not known or progress is None:
        raise upload_unknown(upload_id)
    return progress


def _forget(call: Call, upload_id: str) -> None:
    backend = call.backend()
    with backend._lock:
        repo = backend.repositories.get(call.name)
        if repo is not None:
            repo.uploads.pop(upload_id, None)
    with _progress_lock:
        _progress.pop(upload_id, None)
    blob_store().discard_upload(call.account, call.region, upload_id)


def _append(call: Call, upload_id: str, progress: _Progress, start: int | None) -> None:
    """Write the request body at the end of the upload as one part (its lock held)."""
    if start is not None and start != progress.size:
        raise RegistryError(
            416,
            BLOB_UPLOAD_INVALID,
            f"the chunk starts at byte {start}; the upload has {progress.size} bytes",
            headers=_status_headers(call, upload_id, progress.size),
        )
    if progress.parts and progress.parts[-1] < MIN_PART_BYTES:
        # The last part turned out not to be the final one.
        raise RegistryError(
            416,
            SIZE_INVALID,
            "Layer parts must be at least 5 MiB in size.",
            {"minimum": MIN_PART_BYTES, "part": progress.parts[-1]},
            headers=_status_headers(call, upload_id, progress.size),
        )
    path = blob_store().upload_path(call.account, call.region, upload_id)
    written = 0
    hasher = progress.hasher.copy()
    with path.open("r+b") as handle:
        handle.seek(progress.size)
        try:
            for chunk in call.request.chunks():
                written += len(chunk)
                if progress.size + written > MAX_LAYER_BYTES:
                    raise RegistryError(
                        413, SIZE_INVALID, "the layer exceeds ECR's maximum layer size (52,000 MiB)"
                    )
                hasher.update(chunk)
                handle.write(chunk)
        except BaseException:
            # A failed or cut-off part leaves the upload as it was, so the client can resume.
            handle.truncate(progress.size)
            raise
    if written:
        progress.hasher = hasher
        progress.size += written
        progress.parts.append(written)
        backend = call.backend()
        with backend._lock:
            upload: Any = backend.repositories[call.name].uploads.get(upload_id)
            if upload is not None:  # keep the API's view (UploadLayerPart) consistent
                upload.size = progress.size
                upload.part_sizes.append(written)


def _content_range(call: Call) -> tuple[int, int] | None:
    header = call.request.header("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if not match or int(match[2]) < int(match[1]):
        raise RegistryError(
            416, BLOB_UPLOAD_INVALID, "malformed Content-Range", {"Content-Range": header}
        )
    first, last = int(match[1]), int(match[2])
    length = call.request.header("Content-Length")
    if length is not None and int(length) != last - first + 1:
        raise RegistryError(416, BLOB_UPLOAD_INVALID, "Content-Range does not match Content-Length")
    return first, last


def _complete(call: Call, upload_id: str, progress: _Progress, digest: str) -> Response:
    """CompleteLayerUpload's checks and commit, with the digest computed on the way in."""
    if any(size < MIN_PART_BYTES for size in progress.parts[:-1]):
        _forget(call, upload_id)
        raise RegistryError(
            400,
            SIZE_INVALID,
            "Layer parts must be at least 5 MiB in size.",
            {"minimum": MIN_PART_BYTES},
        )
    computed = "sha256:" + progress.hasher.hexdigest()
    if computed != digest:
        _forget(call, upload_id)
        raise RegistryError(
            400,
            DIGEST_INVALID,
            f"the calculated digest {computed} does not match the provided digest {digest}",
            {"digest": digest},
        )
    backend = call.backend()
    store = blob_store()
    with backend._lock:
        repo = call.repository()
        if repo.uploads.pop(upload_id, None) is None:
            raise upload_unknown(upload_id)
        if digest in repo.layers:
            # LayerAlreadyExistsException to the API; a client pushing again just succeeds.
            store.discard_upload(call.account, call.region, upload_id)
        else:
            store.commit_upload(call.account, call.region, upload_id, digest)
            repo.layers[digest] = progress.size
    with _progress_lock:
        _progress.pop(upload_id, None)
    return Response.empty(
        201, [("Location", f"/v2/{call.name}/blobs/{digest}"), ("Docker-Content-Digest", digest)]
    )


def _mount(call: Call, digest: str, source: str) -> Response | None:
    """ECR mounts a blob only when the registry's BLOB_MOUNTING setting is ENABLED and an image
    in the source repository references it; otherwise the client gets a fresh upload (202).
    (https://docs.aws.amazon.com/AmazonECR/latest/userguide/blob-mounting.html)"""
    backend = call.backend()
    if settings_of(backend)["BLOB_MOUNTING"] != "ENABLED":
        return None
    try:
        call.allow(PULL_DOWNLOAD, repository=source)
    except RegistryError:
        return None
    with backend._lock:
        target = call.repository()
        origin = backend.repositories.get(source)
        if origin is None or digest not in origin.layers:
            return None
        if not any(digest in getattr(i, "referenced_blobs", ()) for i in origin.images):
            return None
        target.layers.setdefault(digest, origin.layers[digest])
    return Response.empty(
        201, [("Location", f"/v2/{call.name}/blobs/{digest}"), ("Docker-Content-Digest", digest)]
    )


def start_upload(call: Call) -> Response:
    call.allow(INITIATE)
    digest = call.request.param("digest")
    mount, source = call.request.param("mount"), call.request.param("from")
    if mount and source:
        check_digest(mount)
        mounted = _mount(call, mount, source)
        if mounted is not None:
            return mounted
    if digest is not None:
        # Monolithic upload in one POST.
        call.allow(UPLOAD_PART, COMPLETE)
        check_digest(digest)
        upload_id = _start(call)
        progress = _progress[upload_id]
        with progress.lock:
            try:
                _append(call, upload_id, progress, None)
                return _complete(call, upload_id, progress, digest)
            except BaseException:
                _forget(call, upload_id)
                raise
    upload_id = _start(call)
    headers = _status_headers(call, upload_id, 0)
    headers.append(("OCI-Chunk-Min-Length", str(MIN_PART_BYTES)))
    return Response.empty(202, headers)


def _locked(call: Call, upload_id: str) -> _Progress:
    progress = _find(call, upload_id)
    if not progress.lock.acquire(blocking=False):
        raise RegistryError(
            416,
            BLOB_UPLOAD_INVALID,
            "another request is writing to this upload",
            headers=_status_headers(call, upload_id, progress.size),
        )
    return progress


def patch_upload(call: Call, upload_id: str) -> Response:
    call.allow(UPLOAD_PART)
    progress = _locked(call, upload_id)
    try:
        content_range = _content_range(call)
        _append(call, upload_id, progress, content_range[0] if content_range else None)
        return Response.empty(202, _status_headers(call, upload_id, progress.size))
    finally:
        progress.lock.release()


def put_upload(call: Call, upload_id: str) -> Response:
    call.allow(UPLOAD_PART, COMPLETE)
    digest = call.request.param("digest")
    if not digest:
        raise RegistryError(400, DIGEST_INVALID, "the digest query parameter is required")
    check_digest(digest)
    progress = _locked(call, upload_id)
    try:
        if call.request.has_body:
            content_range = _content_range(call)
            _append(call, upload_id, progress, content_range[0] if content_range else None)
        return _complete(call, upload_id, progress, digest)
    finally:
        progress.lock.release()


def upload_status(call: Call, upload_id: str) -> Response:
    call.allow(UPLOAD_PART)
    progress = _find(call, upload_id)
    return Response.empty(204, _status_headers(call, upload_id, progress.size))


def cancel_upload(call: Call, upload_id: str) -> Response:
    call.allow(UPLOAD_PART)
    _find(call, upload_id)
    _forget(call, upload_id)
    return Response.empty(204)
