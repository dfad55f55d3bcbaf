"""Legacy `docker save` tarballs: manifest.json names the images; the chosen one's config and
layers are hashed (a layer streamed, never whole in memory) and a Docker V2 manifest is built over
them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from chalicelib.oci.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST_V2,
    Manifest,
    digest_of,
)
from steward_tools.image_source.archive import Source, read_json
from steward_tools.image_source.errors import CorruptBlob, ImageSourceError
from steward_tools.image_source.local_image import Candidate, LocalBlob, LocalImage, choose

CHUNK_SIZE = 1024 * 1024
MAX_CONFIG_BYTES = 32 * 1024 * 1024
_HEX_NAME_RE = re.compile(r"(?:^|/)(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$")
_GZIP_MAGIC = b"\x1f\x8b"


class _StreamHash(NamedTuple):
    digest: str
    size: int
    head: bytes


def _hash_stream(source: Source, name: str) -> _StreamHash:
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


def load_docker_archive(source: Source, path: Path, ref: str | None) -> LocalImage:
    entries = read_json(source, "manifest.json")
    if not isinstance(entries, list):
        raise ImageSourceError(f"{source.where('manifest.json')}: not a list of images")
    candidates = []
    for raw in entries:
        if not isinstance(raw, dict) or not isinstance(raw.get("Config"), str):
            raise ImageSourceError(f"{source.where('manifest.json')}: entry without a Config")
        key = _digest_in_name(raw["Config"]) or raw["Config"]
        candidates.append(Candidate(key, list(raw.get("RepoTags") or []), raw))
    chosen = choose(source, candidates, ref)
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
