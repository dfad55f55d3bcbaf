"""One blob from one registry to another in one streaming pass: HEAD already done by the caller,
mount when both ends are the same registry, else parts streamed from the source's GET straight
into PATCH requests while the bytes are hashed. Memory holds one read piece per blob in flight.

A part that breaks (either connection) is resumed where the registry says the upload stands
(`GET` of the upload: `Range`), re-reading the source from there with an HTTP range; the hash
resumes from a saved state at the last part boundary at or before that point, so the digest is
still verified over every byte. The digest and size are checked before the upload is finished:
the registry never completes a blob whose bytes were wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3

from chalicelib.registry_client.blobs import open_blob
from chalicelib.registry_client.errors import BlobDigestMismatch, RegistryHTTPError
from chalicelib.registry_client.transport import RegistryClient, stream_chunks
from chalicelib.registry_client.uploads import (
    Upload,
    finish_upload,
    send_part,
    start_upload,
    upload_offset,
)

READ_PIECE = 256 * 1024
# Bytes a PATCH carries. Every part but the last must be at least 5 MiB (ECR's minimum); a
# broken part costs at most this much again.
PART_SIZE = 64 * 1024 * 1024
ATTEMPTS = 4


@dataclass
class BlobCopy:
    moved: int = 0  # bytes read from the source and sent (a resumed part counts again)
    mounted: bool = False
    resumes: int = 0


class _Pieces:
    """A source stream handed out in exact lengths, hashing every byte as it passes."""

    def __init__(self, chunks: Iterator[bytes], hasher: Any, on_bytes: Callable[[int], None]):
        self._chunks = chunks
        self._carry = b""
        self.hasher = hasher
        self._on_bytes = on_bytes
        self.read = 0

    def take(self, length: int, send: bool = True) -> Iterator[bytes]:
        left = length
        while left > 0:
            piece = self._carry or next(self._chunks, b"")
            self._carry = b""
            if not piece:
                raise BlobDigestMismatch(f"the source ended {left} bytes early")
            if len(piece) > left:
                piece, self._carry = piece[:left], piece[left:]
            left -= len(piece)
            self.hasher.update(piece)
            self.read += len(piece)
            if send:
                self._on_bytes(len(piece))
                yield piece

    def skip(self, length: int) -> None:
        for _ in self.take(length, send=False):
            pass


def _retryable(error: BaseException) -> bool:
    if isinstance(error, BlobDigestMismatch):
        return False
    if isinstance(error, RegistryHTTPError):
        if error.status == 401:  # a token expired during a long upload: resume with a new one
            return True
        return error.transient or (error.status in (400, 404, 416) and "UPLOAD" in error.code)
    return isinstance(error, OSError | urllib3.exceptions.HTTPError)


class UploadSessions(Protocol):
    """Where unfinished uploads are remembered between jobs (a job that timed out or crashed):
    the next attempt resumes the upload instead of starting it again."""

    def get(self, repository: str, digest: str) -> str | None: ...
    def put(self, repository: str, digest: str, location: str) -> None: ...
    def forget(self, repository: str, digest: str) -> None: ...


def _remembered(
    destination: RegistryClient, repository: str, digest: str, sessions: UploadSessions | None
) -> tuple[Upload, int] | None:
    """A session an earlier job left unfinished, and how much of it the registry holds."""
    location = sessions.get(repository, digest) if sessions else None
    if location is None:
        return None
    upload = Upload(repository, location)
    try:
        return upload, upload_offset(destination, upload)
    except (RegistryHTTPError, OSError, urllib3.exceptions.HTTPError):
        return None  # expired or unknown: a new upload


def copy_blob(
    source: RegistryClient,
    source_repository: str,
    destination: RegistryClient,
    destination_repository: str,
    digest: str,
    size: int,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    part_size: int | None = None,
    attempts: int | None = None,
    sessions: UploadSessions | None = None,
) -> BlobCopy:
    part_size = part_size or PART_SIZE
    attempts = attempts or ATTEMPTS
    result = BlobCopy()
    checkpoints: dict[int, Any] = {0: hashlib.sha256()}  # part boundary → hash state there
    held = 0  # bytes the registry holds of the upload
    found = _remembered(destination, destination_repository, digest, sessions)
    if found is not None:
        # An earlier job's upload: its bytes are read and hashed again (not sent again).
        (upload, held), result.resumes = found, 1
    else:
        same_registry = source.endpoint.identity == destination.endpoint.identity
        mount = same_registry and source_repository != destination_repository
        started = start_upload(
            destination,
            destination_repository,
            mount=digest if mount else None,
            source=source_repository if mount else None,
        )
        if started is None:
            result.mounted = True
            return result
        upload = started

    def remember(current: Upload) -> None:
        if sessions is not None:
            sessions.put(destination_repository, digest, current.location)

    remember(upload)
    for attempt in range(attempts):
        try:
            upload = _send_from(
                source,
                source_repository,
                destination,
                upload,
                digest,
                size,
                held,
                checkpoints,
                result,
                on_bytes,
                part_size,
                remember,
            )
            finish_upload(destination, upload, digest)
            if sessions is not None:
                sessions.forget(destination_repository, digest)
            return result
        except BaseException as error:
            if not _retryable(error) or attempt == attempts - 1:
                raise
            result.resumes += 1
            try:
                held = upload_offset(destination, upload)
            except RegistryHTTPError as lost:
                if lost.status != 404:
                    raise
                new = start_upload(destination, destination_repository)
                assert new is not None
                upload, held = new, 0
                remember(upload)
    raise AssertionError("unreachable")


def _send_from(
    source: RegistryClient,
    source_repository: str,
    destination: RegistryClient,
    upload: Upload,
    digest: str,
    size: int,
    held: int,
    checkpoints: dict[int, Any],
    result: BlobCopy,
    on_bytes: Callable[[int], None],
    part_size: int,
    remember: Callable[[Upload], None],
) -> Upload:
    start = max(offset for offset in checkpoints if offset <= held)
    response = open_blob(source, source_repository, digest, offset=start)
    chunks = stream_chunks(response, READ_PIECE)
    try:
        counted = on_bytes

        def moved(n: int) -> None:
            result.moved += n
            counted(n)

        pieces = _Pieces(chunks, checkpoints[start].copy(), moved)
        pieces.skip(held - start)  # bytes the registry kept of a broken part: hashed, not sent
        position = held
        while position < size:
            length = min(part_size, size - position)
            upload = send_part(destination, upload, pieces.take(length), position, length)
            remember(upload)  # a registry may move the session's location with every part
            position += length
            checkpoints[position] = pieces.hasher.copy()
        actual = "sha256:" + pieces.hasher.hexdigest()
        if actual != digest or position != size:
            raise BlobDigestMismatch(f"blob {digest} ({size} bytes) hashes to {actual}")
        if next(chunks, b""):
            raise BlobDigestMismatch(f"blob {digest} is longer than its {size} bytes")
        return upload
    finally:
        chunks.close()  # type: ignore[attr-defined]
