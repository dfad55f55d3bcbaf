"""Content-addressed layer storage on disk for the embedded ECR.

ECR keeps layer bytes in S3 and hands out presigned URLs; locally the bytes live in files under
one root: ``<root>/<account>/<region>/sha256/<hex>`` for committed blobs (one file per registry,
shared by every repository that holds the layer) and ``<root>/<account>/<region>/uploads/<id>``
for uploads in progress. Which repository holds which layer is the ECR backend's business, not
the store's. Everything is streamed in 1 MiB chunks: a layer is never held in memory whole.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")


class BlobStore:
    """Layer files per account and region, addressed by ``sha256:<hex>`` digest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Guards commit/clear; appends to one upload are serialised by the ECR backend.
        self._lock = threading.Lock()

    # -- paths -------------------------------------------------------------------------------

    def _registry_dir(self, account: str, region: str) -> Path:
        # Account and region come from request signatures; never let them escape the root.
        if not _ACCOUNT_RE.match(account) or not _REGION_RE.match(region):
            raise ValueError(f"invalid registry {account}/{region}")
        return self.root / account / region

    def blob_path(self, account: str, region: str, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise ValueError(f"unsupported digest {digest!r}")
        return self._registry_dir(account, region) / "sha256" / digest.split(":", 1)[1]

    def upload_path(self, account: str, region: str, upload_id: str) -> Path:
        # str(UUID(...)) normalises and rejects anything that is not a UUID (no path tricks).
        return self._registry_dir(account, region) / "uploads" / str(uuid.UUID(upload_id))

    # -- uploads -----------------------------------------------------------------------------

    def begin_upload(self, account: str, region: str, upload_id: str) -> None:
        path = self.upload_path(account, region, upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def upload_size(self, account: str, region: str, upload_id: str) -> int:
        return self.upload_path(account, region, upload_id).stat().st_size

    def append_part(self, account: str, region: str, upload_id: str, data: bytes) -> int:
        """Append a part to an upload; returns the upload's new size in bytes."""
        path = self.upload_path(account, region, upload_id)
        with path.open("ab") as handle:
            handle.write(data)
            return handle.tell()

    def digest_upload(self, account: str, region: str, upload_id: str) -> tuple[str, int]:
        """sha256 digest and size of an upload, computed by streaming the file."""
        return _digest_file(self.upload_path(account, region, upload_id))

    def commit_upload(self, account: str, region: str, upload_id: str, digest: str) -> None:
        """Move a verified upload to its content address (or drop it if already stored)."""
        source = self.upload_path(account, region, upload_id)
        target = self.blob_path(account, region, digest)
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                # Same digest, same bytes: another repository of the registry already has it.
                source.unlink(missing_ok=True)
            else:
                os.replace(source, target)

    def discard_upload(self, account: str, region: str, upload_id: str) -> None:
        self.upload_path(account, region, upload_id).unlink(missing_ok=True)

    # -- blobs -------------------------------------------------------------------------------

    def has_blob(self, account: str, region: str, digest: str) -> bool:
        try:
            return self.blob_path(account, region, digest).is_file()
        except ValueError:
            return False

    def blob_size(self, account: str, region: str, digest: str) -> int:
        return self.blob_path(account, region, digest).stat().st_size

    def open_blob(self, account: str, region: str, digest: str) -> BinaryIO:
        return self.blob_path(account, region, digest).open("rb")

    def put_blob(self, account: str, region: str, data: bytes) -> str:
        """Store small bytes directly (seeding tests and emulators); returns the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self.blob_path(account, region, digest)
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                tmp = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
        return digest

    def clear(self) -> None:
        """Remove every blob and upload, keeping the root directory."""
        with self._lock:
            for child in self.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def iter_file(handle: BinaryIO, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Yield ``length`` bytes (all to EOF if None) from ``start`` in CHUNK_SIZE pieces."""
    try:
        handle.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _digest_file(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


class BlobUrlSigner:
    """HMAC signatures for the download URLs that stand in for ECR's presigned S3 URLs."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(
        self, account: str, region: str, repository: str, digest: str, expires: int
    ) -> str:
        message = "\n".join((account, region, repository, digest, str(expires))).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(
        self, account: str, region: str, repository: str, digest: str, expires: int, signature: str
    ) -> bool:
        expected = self.signature(account, region, repository, digest, expires)
        return hmac.compare_digest(expected, signature)
