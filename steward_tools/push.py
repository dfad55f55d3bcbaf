"""Put a local image into ECR: an OCI layout, an OCI archive, or a legacy `docker save` tarball.

Reading is pure (`load_image`): it walks the source, checks every manifest against its digest and
notes where each blob lives, without reading a layer into memory. Pushing (`push_image`) takes
the path a docker client takes into ECR: for each image manifest, ask which blobs the repository
lacks, upload only those (streamed, one part in memory, each digest checked as its bytes go by),
then put-image with the exact manifest bytes. An index's children are put first, by digest, and
only the top-level manifest gets the tag.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, cast

from pydantic import BaseModel, PrivateAttr

from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST_V2,
    NON_DISTRIBUTABLE_LAYER_PREFIXES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    HasManifest,
    Manifest,
    digest_of,
)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"  # docker save (25+) names images with it
CHUNK_SIZE = 1024 * 1024
# ECR refuses larger manifests; anything bigger in a layout is not a manifest we can push.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 32 * 1024 * 1024
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_HEX_NAME_RE = re.compile(r"(?:^|/)(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$")
_GZIP_MAGIC = b"\x1f\x8b"

ProgressCallback = Callable[[str, int], None]
SourceFormat = Literal["oci-layout", "oci-archive", "docker-archive"]


# --- errors -------------------------------------------------------------------------------


class ImageSourceError(Exception):
    """The source is not a readable image, or does not hold the image asked for."""


class CorruptBlob(ImageSourceError):
    """A blob's bytes do not match the digest or size its descriptor promises."""

    def __init__(self, digest: str, location: str, problem: str) -> None:
        super().__init__(f"corrupt blob {digest} at {location}: {problem}")
        self.digest = digest
        self.location = location


class AmbiguousImage(ImageSourceError):
    """The source holds several images and nothing says which one is meant."""

    def __init__(self, source: object, candidates: list[str], ref: str | None) -> None:
        listed = "\n  ".join(candidates)
        why = f"{ref!r} matches several images" if ref else "it holds several images"
        super().__init__(f"{source}: {why}; pick one with --ref NAME:\n  {listed}")
        self.candidates = candidates


# --- where the bytes live: a directory or a tar archive -------------------------------------


class _Source(ABC):
    """Files of an image source, by their slash-separated path inside it."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def open(self, name: str) -> AbstractContextManager[IO[bytes]]: ...

    def read(self, name: str, limit: int) -> bytes:
        """The whole file, refusing one larger than `limit` (only manifests and configs)."""
        if self.size(name) > limit:
            raise ImageSourceError(f"{name} in {self}: larger than {limit} bytes")
        with self.open(name) as handle:
            data: bytes = handle.read()
            return data

    def where(self, name: str) -> str:
        return f"{name} in {self}"


class _DirectorySource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path | None:
        parts = name.split("/")
        # Names come from manifest.json and descriptors: never let them leave the directory.
        if name.startswith("/") or ".." in parts:
            return None
        return self.root.joinpath(*parts)

    def exists(self, name: str) -> bool:
        path = self._path(name)
        return path is not None and path.is_file()

    def size(self, name: str) -> int:
        path = self._path(name)
        if path is None or not path.is_file():
            raise ImageSourceError(f"{self.where(name)}: no such file")
        return path.stat().st_size

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        path = self._path(name)
        if path is None or not path.is_file():
            raise ImageSourceError(f"{self.where(name)}: no such file")
        with path.open("rb") as handle:
            yield handle

    def where(self, name: str) -> str:
        return str(self.root / name)


def _normalise_member(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


class _TarSource(_Source):
    """A tar archive, indexed once; each open re-opens the archive and streams one member."""

    MAX_LINK_DEPTH = 32

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: dict[str, tarfile.TarInfo] = {}
        self._links: dict[str, str] = {}
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                name = _normalise_member(info.name)
                if info.isfile():
                    self._files[name] = info
                    self._links.pop(name, None)
                elif info.issym():
                    # docker save links a layer it already wrote instead of writing it twice.
                    target = posixpath.join(posixpath.dirname(name), info.linkname)
                    self._links[name] = posixpath.normpath(target)
                    self._files.pop(name, None)
                elif info.islnk():
                    self._links[name] = _normalise_member(info.linkname)
                    self._files.pop(name, None)

    def __str__(self) -> str:
        return str(self.path)

    def _member(self, name: str) -> tarfile.TarInfo | None:
        for _ in range(self.MAX_LINK_DEPTH):
            if name in self._files:
                return self._files[name]
            if name not in self._links:
                return None
            name = self._links[name]
        return None

    def exists(self, name: str) -> bool:
        return self._member(name) is not None

    def size(self, name: str) -> int:
        member = self._member(name)
        if member is None:
            raise ImageSourceError(f"{self.where(name)}: no such member")
        return member.size

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self._member(name)
        if member is None:
            raise ImageSourceError(f"{self.where(name)}: no such member")
        with tarfile.open(self.path, "r:*") as archive:
            # A TarInfo carries its data offset, so this seeks straight to the member.
            handle = archive.extractfile(member)
            if handle is None:
                raise ImageSourceError(f"{self.where(name)}: not a regular file")
            with handle:
                yield handle


def _open_source(path: Path) -> tuple[_Source, bool]:
    """The source and whether it is an archive."""
    if path.is_dir():
        return _DirectorySource(path), False
    if not path.exists():
        raise ImageSourceError(f"{path}: no such file or directory")
    if not tarfile.is_tarfile(path):
        raise ImageSourceError(f"{path}: neither an OCI layout directory nor a tar archive")
    try:
        return _TarSource(path), True
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ImageSourceError(f"{path}: unreadable tar archive: {error}") from error


# --- digests, verified as bytes are read ----------------------------------------------------


def _hasher(digest: str) -> Any:
    """A hash object of the algorithm `digest` names (sha256, sha512)."""
    return hashlib.new(digest.split(":", 1)[0])


def _digest_like(digest: str, data: bytes) -> str:
    """The digest of `data` in the algorithm `digest` uses."""
    hasher = _hasher(digest)
    hasher.update(data)
    return f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"


def blob_path(digest: str) -> str:
    """Where an OCI layout keeps a blob: blobs/<algorithm>/<hex>."""
    if not _DIGEST_RE.match(digest):
        raise ImageSourceError(f"unsupported or malformed digest {digest!r}")
    algorithm, hex_digest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hex_digest}"


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
        self._hash = _hasher(blob.digest)
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


class _StreamHash(NamedTuple):
    digest: str
    size: int
    head: bytes


def _hash_stream(source: _Source, name: str) -> _StreamHash:
    """sha256 and size of a file, read in chunks; `head` is its first bytes (to sniff gzip)."""
    sha = hashlib.sha256()
    size = 0
    head = b""
    with source.open(name) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            if not head:
                head = chunk[:16]
            sha.update(chunk)
            size += len(chunk)
    return _StreamHash("sha256:" + sha.hexdigest(), size, head)


# --- what a source holds --------------------------------------------------------------------


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
    _files: _Source = PrivateAttr()

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


# --- choosing the image -------------------------------------------------------------------


class _Candidate(NamedTuple):
    key: str  # what makes two entries the same image (a digest, or a config path)
    names: list[str]
    entry: Any

    def label(self) -> str:
        return f"{', '.join(self.names) or '(no name)'} -> {self.key}"


def _ref_matches(ref: str, candidate: _Candidate) -> bool:
    if ref == candidate.key:
        return True
    for name in candidate.names:
        if ref == name or name.endswith("/" + ref):
            return True
        tail = name.rsplit(":", 1)
        if len(tail) == 2 and "/" not in tail[1] and tail[1] == ref:  # a bare tag
            return True
    return False


def _choose(source: _Source, candidates: list[_Candidate], ref: str | None) -> _Candidate:
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


# --- OCI layouts (directory or archive) ----------------------------------------------------


def _read_json(source: _Source, name: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
    try:
        return json.loads(source.read(name, limit))
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageSourceError(f"{source.where(name)}: not valid JSON: {error}") from error


def _infer_manifest_media_type(document: dict[str, Any]) -> str:
    if "manifests" in document:
        return OCI_INDEX
    config = document.get("config")
    if isinstance(config, dict) and config.get("mediaType") == DOCKER_CONFIG:
        return DOCKER_MANIFEST_V2
    return OCI_MANIFEST


def _read_manifest(source: _Source, descriptor: Descriptor, parent: str) -> Manifest:
    """A manifest blob, checked against its descriptor's digest and size."""
    location = blob_path(descriptor.digest)
    if not source.exists(location):
        raise ImageSourceError(
            f"{source}: manifest {descriptor.digest} (listed by {parent}) is missing, "
            f"expected at {location}"
        )
    data = source.read(location, MAX_MANIFEST_BYTES)
    where = source.where(location)
    actual = _digest_like(descriptor.digest, data)
    if actual != descriptor.digest:
        raise CorruptBlob(descriptor.digest, where, f"content hashes to {actual}")
    if "size" in descriptor.model_fields_set and len(data) != descriptor.size:
        raise CorruptBlob(
            descriptor.digest, where, f"{len(data)} bytes, its descriptor says {descriptor.size}"
        )
    try:
        body = data.decode("utf-8")
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise CorruptBlob(descriptor.digest, where, f"not a JSON manifest: {error}") from error
    if not isinstance(document, dict):
        raise CorruptBlob(descriptor.digest, where, "not a JSON object")
    declared = document.get("mediaType")
    media_type = (
        declared
        if isinstance(declared, str) and declared
        else descriptor.mediaType or _infer_manifest_media_type(document)
    )
    return Manifest(digest=descriptor.digest, media_type=media_type, body=body)


def _is_non_distributable(media_type: str) -> bool:
    return media_type.startswith(NON_DISTRIBUTABLE_LAYER_PREFIXES)


def _walk(
    source: _Source,
    descriptor: Descriptor,
    parent: str,
    manifests: dict[str, Manifest],
    blobs: dict[str, LocalBlob],
) -> Manifest:
    """Read a manifest and, for an index, every manifest below it; children land first."""
    if descriptor.digest in manifests:
        return manifests[descriptor.digest]
    manifest = _read_manifest(source, descriptor, parent)
    if manifest.is_index:
        for child in manifest.children():
            _walk(source, child, manifest.digest, manifests, blobs)
    else:
        for blob in manifest.blobs():
            location = blob_path(blob.digest)
            if not source.exists(location):
                if _is_non_distributable(blob.mediaType):
                    continue  # fetched from its urls; registries need not hold it
                raise ImageSourceError(
                    f"{source}: blob {blob.digest} ({blob.mediaType or 'no media type'}) "
                    f"of manifest {manifest.digest} is missing, expected at {location}"
                )
            size = source.size(location)
            if "size" in blob.model_fields_set and size != blob.size:
                raise CorruptBlob(
                    blob.digest,
                    source.where(location),
                    f"{size} bytes, its descriptor says {blob.size}",
                )
            blobs.setdefault(
                blob.digest,
                LocalBlob(
                    digest=blob.digest, size=size, media_type=blob.mediaType, location=location
                ),
            )
    manifests[manifest.digest] = manifest
    return manifest


def _load_oci(source: _Source, path: Path, fmt: SourceFormat, ref: str | None) -> LocalImage:
    if source.exists("oci-layout"):
        layout = _read_json(source, "oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ImageSourceError(f"{source}: unsupported OCI layout version {version!r}")
    index = _read_json(source, "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageSourceError(f"{source.where('index.json')}: no 'manifests' list")
    candidates = []
    for raw in index["manifests"]:
        descriptor = Descriptor.model_validate(raw)
        annotations = descriptor.annotations or {}
        names = [
            annotations[key] for key in (REF_NAME, CONTAINERD_IMAGE_NAME) if key in annotations
        ]
        candidates.append(_Candidate(descriptor.digest, names, descriptor))
    chosen = _choose(source, candidates, ref)
    manifests: dict[str, Manifest] = {}
    blobs: dict[str, LocalBlob] = {}
    top = _walk(source, chosen.entry, "index.json", manifests, blobs)
    image = LocalImage(
        source=path,
        source_format=fmt,
        names=chosen.names,
        manifest=top,
        manifests=list(manifests.values()),
        blobs=blobs,
    )
    image._files = source
    return image


# --- legacy docker save -------------------------------------------------------------------


def build_docker_manifest(config: LocalBlob, layers: list[LocalBlob]) -> Manifest:
    """A Docker V2 schema 2 manifest over blobs whose digests and sizes are known."""

    def descriptor(blob: LocalBlob) -> dict[str, Any]:
        return {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}

    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_V2,
        "config": descriptor(config),
        "layers": [descriptor(layer) for layer in layers],
    }
    # Docker's own indentation; the digest is of exactly these bytes.
    body = json.dumps(document, indent=3)
    return Manifest(digest=digest_of(body.encode()), media_type=DOCKER_MANIFEST_V2, body=body)


def _digest_in_name(name: str) -> str | None:
    """docker save names a config after its digest (<hex>.json); docker 25+ every blob."""
    found = _HEX_NAME_RE.search(name)
    return f"sha256:{found.group(1)}" if found else None


def _load_docker_archive(source: _Source, path: Path, ref: str | None) -> LocalImage:
    entries = _read_json(source, "manifest.json")
    if not isinstance(entries, list):
        raise ImageSourceError(f"{source.where('manifest.json')}: not a list of images")
    candidates = []
    for raw in entries:
        if not isinstance(raw, dict) or not isinstance(raw.get("Config"), str):
            raise ImageSourceError(f"{source.where('manifest.json')}: entry without a Config")
        key = _digest_in_name(raw["Config"]) or raw["Config"]
        candidates.append(_Candidate(key, list(raw.get("RepoTags") or []), raw))
    chosen = _choose(source, candidates, ref)
    entry = chosen.entry

    config_location = entry["Config"]
    config_bytes = source.read(config_location, MAX_CONFIG_BYTES)
    config_digest = digest_of(config_bytes)
    named = _digest_in_name(config_location)
    if named is not None and named != config_digest:
        raise CorruptBlob(
            named, source.where(config_location), f"content hashes to {config_digest}"
        )
    try:
        config_document = json.loads(config_bytes)
    except ValueError as error:
        raise CorruptBlob(
            config_digest, source.where(config_location), f"not a JSON image config: {error}"
        ) from error
    config = LocalBlob(
        digest=config_digest,
        size=len(config_bytes),
        media_type=DOCKER_CONFIG,
        location=config_location,
    )
    rootfs = config_document.get("rootfs") if isinstance(config_document, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None

    layer_locations = entry.get("Layers") or []
    layers = []
    for position, location in enumerate(layer_locations):
        if not source.exists(location):
            raise ImageSourceError(f"{source}: layer {location} listed in manifest.json is missing")
        hashed = _hash_stream(source, location)
        named = _digest_in_name(location)
        if named is not None and named != hashed.digest:
            raise CorruptBlob(named, source.where(location), f"content hashes to {hashed.digest}")
        compressed = hashed.head.startswith(_GZIP_MAGIC)
        # Uncompressed, a layer's digest is its diff_id: the config says what it must be.
        if (
            not compressed
            and isinstance(diff_ids, list)
            and len(diff_ids) == len(layer_locations)
            and diff_ids[position] != hashed.digest
        ):
            raise CorruptBlob(
                diff_ids[position],
                source.where(location),
                f"content hashes to {hashed.digest} (rootfs.diff_ids[{position}] of the config)",
            )
        layers.append(
            LocalBlob(
                digest=hashed.digest,
                size=hashed.size,
                media_type=DOCKER_LAYER_GZIP if compressed else DOCKER_LAYER,
                location=location,
            )
        )
    manifest = build_docker_manifest(config, layers)
    blobs = {blob.digest: blob for blob in [config, *layers]}
    image = LocalImage(
        source=path,
        source_format="docker-archive",
        names=chosen.names,
        manifest=manifest,
        manifests=[manifest],
        blobs=blobs,
    )
    image._files = source
    return image


def load_image(source: Path, ref: str | None = None) -> LocalImage:
    """Read an image from an OCI layout directory, an OCI archive or a docker-save tarball.

    `ref` picks the image when the source holds several: an `org.opencontainers.image.ref.name`
    or `io.containerd.image.name` annotation, a docker RepoTag (or just its tag), or a digest
    (for a docker-save tarball, the image id).
    """
    path = Path(source)
    files, is_archive = _open_source(path)
    # docker save (25+) writes both; index.json is the complete, exact description.
    if files.exists("index.json"):
        return _load_oci(files, path, "oci-archive" if is_archive else "oci-layout", ref)
    if files.exists("manifest.json"):
        return _load_docker_archive(files, path, ref)
    raise ImageSourceError(f"{path}: no index.json (OCI layout) nor manifest.json (docker save)")


# --- pushing: the part that calls ECR -----------------------------------------------------


class PushResult(BaseModel):
    """What a push did: the top-level digest, and how much ECR already had."""

    repository: str
    tag: str | None
    digest: str
    media_type: str
    # put-image calls made; `manifests_unchanged` of them found the manifest already there.
    manifests_pushed: int = 0
    manifests_unchanged: int = 0
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    bytes_uploaded: int = 0


def _check_pushable(image: LocalImage) -> None:
    empty = [blob.digest for blob in image.blobs.values() if blob.size == 0]
    if empty:
        # ECR's upload API has no way to send zero bytes (a part must hold one byte at least).
        raise ImageSourceError(f"{image.source}: empty blobs cannot be pushed to ECR: {empty}")


def push_local_image(
    registry: Registry,
    image: LocalImage,
    repository: str,
    tag: str | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_missing: Callable[[int], None] | None = None,
) -> PushResult:
    """Push an image already read by `load_image`. See `push_image`."""
    result = PushResult(
        repository=repository, tag=tag, digest=image.digest, media_type=image.media_type
    )
    _check_pushable(image)
    in_repository: set[str] = set()  # blobs checked present or uploaded during this push
    for manifest in image.manifests:
        needed = [blob for blob in image.blobs_of(manifest) if blob.digest not in in_repository]
        if needed:
            missing = set(registry.missing_layers(repository, [blob.digest for blob in needed]))
            if on_missing is not None:
                on_missing(sum(blob.size for blob in needed if blob.digest in missing))
            for blob in needed:
                if blob.digest in missing:
                    with image.open_blob(blob.digest, on_progress) as reader:
                        registry.upload_blob(repository, reader, blob.digest)
                    result.blobs_uploaded += 1
                    result.bytes_uploaded += blob.size
                else:
                    result.blobs_skipped += 1
                in_repository.add(blob.digest)
        is_top = manifest.digest == image.digest
        outcome = registry.put_manifest(repository, manifest, tag if is_top else None)
        result.manifests_pushed += 1
        result.manifests_unchanged += int(outcome.status == "unchanged")
    return result


def push_image(
    registry: Registry,
    source: Path,
    repository: str,
    tag: str | None,
    *,
    ref: str | None = None,
    create: bool = False,
    on_progress: ProgressCallback | None = None,
    on_missing: Callable[[int], None] | None = None,
) -> PushResult:
    """Put a local image into an ECR repository, uploading only the blobs it lacks.

    The source is read and its manifests verified before ECR is called, so a bad source never
    creates a repository. `create` creates a missing repository; without it the gateway's
    RepositoryNotFound propagates. `on_progress(digest, bytes_read)` is called as each uploaded
    blob is read, with the bytes of that blob read so far; `on_missing(nbytes)` as the bytes
    ECR lacks are found (before they are uploaded), for a progress total.
    """
    image = load_image(source, ref=ref)
    _check_pushable(image)
    if create:
        registry.ensure_repository(repository)
    return push_local_image(
        registry, image, repository, tag, on_progress=on_progress, on_missing=on_missing
    )
