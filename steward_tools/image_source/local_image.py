"""What a local image source holds: the image read from it (manifests verified, blobs located),
blob readers that verify each blob's bytes as they are read, and the choice of the one image meant
when a source holds several."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, cast

from pydantic import BaseModel, PrivateAttr

from chalicelib.oci.manifests import HasManifest, Manifest
from steward_tools.image_source.archive import Source
from steward_tools.image_source.errors import AmbiguousImage, CorruptBlob, ImageSourceError

ProgressCallback = Callable[[str, int], None]
SourceFormat = Literal["oci-layout", "oci-archive", "docker-archive"]


def new_hasher(digest: str) -> Any:
    """A hash object of the algorithm `digest` names (sha256, sha512)."""
    return hashlib.new(digest.split(":", 1)[0])


class _VerifyingReader:
    """Passes a blob's bytes through, failing before the last byte if they are not the blob.

    The check runs when the declared size is reached, inside the read that returns the final
    bytes, so the gateway never uploads the last part nor completes the upload of a bad blob.
    """

    def __init__(
        self,
        inner: IO[bytes],
        blob: LocalBlob,
        where: str,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._inner = inner
        self._blob = blob
        self._where = where
        self._on_progress = on_progress
        self._hash = new_hasher(blob.digest)
        self._count = 0
        self._verified = False

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self._hash.update(data)
            self._count += len(data)
            if self._count > self._blob.size:
                self._fail(f"longer than the {self._blob.size} bytes its descriptor says")
            if self._count == self._blob.size:
                self._verify()
            if self._on_progress is not None:
                self._on_progress(self._blob.digest, self._count)
        elif not self._verified:
            if self._count < self._blob.size:
                self._fail(f"{self._count} bytes, its descriptor says {self._blob.size}")
            self._verify()
        return data

    def _verify(self) -> None:
        actual = f"{self._blob.digest.split(':', 1)[0]}:{self._hash.hexdigest()}"
        if actual != self._blob.digest:
            self._fail(f"content hashes to {actual}")
        self._verified = True

    def _fail(self, problem: str) -> None:
        raise CorruptBlob(self._blob.digest, self._where, problem)


class LocalBlob(BaseModel):
    """A config or layer of a local image, and where in the source its bytes are."""

    digest: str
    size: int
    media_type: str
    location: str


class LocalImage(HasManifest, BaseModel):
    """An image read from a local source, ready to push: manifests verified, blobs located."""

    source: Path
    source_format: SourceFormat
    names: list[str] = []
    manifest: Manifest
    # Push order: every child before the index that lists it; the top-level manifest is last.
    manifests: list[Manifest]
    blobs: dict[str, LocalBlob]
    _files: Source = PrivateAttr()

    def blobs_of(self, manifest: Manifest) -> list[LocalBlob]:
        """The config and layers one image manifest needs (none for an index)."""
        found = (self.blobs.get(d.digest) for d in manifest.blobs())
        return list({blob.digest: blob for blob in found if blob is not None}.values())

    @contextmanager
    def open_blob(
        self, digest: str, on_progress: ProgressCallback | None = None
    ) -> Iterator[IO[bytes]]:
        """A reader of one blob that raises CorruptBlob if its bytes are not that blob."""
        blob = self.blobs[digest]
        with self._files.open(blob.location) as handle:
            reader = _VerifyingReader(handle, blob, self._files.where(blob.location), on_progress)
            yield cast(IO[bytes], reader)


class Candidate(NamedTuple):
    """An image a source lists, by what identifies it and the names it goes by."""

    key: str  # what makes two entries the same image (a digest, or a config path)
    names: list[str]
    entry: Any

    def label(self) -> str:
        return f"{', '.join(self.names) or '(no name)'} -> {self.key}"


def _ref_matches(ref: str, candidate: Candidate) -> bool:
    if ref == candidate.key:
        return True
    for name in candidate.names:
        if ref == name or name.endswith("/" + ref):
            return True
        tail = name.rsplit(":", 1)
        if len(tail) == 2 and "/" not in tail[1] and tail[1] == ref:  # a bare tag
            return True
    return False


def choose(source: Source, candidates: list[Candidate], ref: str | None) -> Candidate:
    """The one image meant: matched by ref when given, else the only one there is."""
    if not candidates:
        raise ImageSourceError(f"{source}: holds no images")
    chosen = [c for c in candidates if ref is None or _ref_matches(ref, c)]
    if not chosen:
        listed = "\n  ".join(c.label() for c in candidates)
        raise ImageSourceError(f"{source}: no image matches {ref!r}; it holds:\n  {listed}")
    if len({c.key for c in chosen}) > 1:
        raise AmbiguousImage(source, [c.label() for c in chosen], ref)
    # The same image under several names: keep every name it goes by.
    names = list(dict.fromkeys(name for c in chosen for name in c.names))
    return chosen[0]._replace(names=names)
