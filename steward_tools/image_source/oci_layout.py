"""OCI image layouts, as a directory or an archive: index.json names the images, and every
manifest below the one chosen is read and checked against its digest, its blobs located."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chalicelib.oci.manifests import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST_V2,
    NON_DISTRIBUTABLE_LAYER_PREFIXES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
)
from steward_tools.image_source.archive import MAX_MANIFEST_BYTES, Source, read_json
from steward_tools.image_source.errors import CorruptBlob, ImageSourceError
from steward_tools.image_source.local_image import (
    Candidate,
    LocalBlob,
    LocalImage,
    SourceFormat,
    choose,
    new_hasher,
)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"  # docker save (25+) names images with it
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def blob_path(digest: str) -> str:
    """Where an OCI layout keeps a blob: blobs/<algorithm>/<hex>."""
    if not _DIGEST_RE.match(digest):
        raise ImageSourceError(f"unsupported or malformed digest {digest!r}")
    algorithm, hex_digest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hex_digest}"


def _digest_like(digest: str, data: bytes) -> str:
    """The digest of `data` in the algorithm `digest` uses."""
    hasher = new_hasher(digest)
    hasher.update(data)
    return f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"


def _infer_manifest_media_type(document: dict[str, Any]) -> str:
    if "manifests" in document:
        return OCI_INDEX
    config = document.get("config")
    if isinstance(config, dict) and config.get("mediaType") == DOCKER_CONFIG:
        return DOCKER_MANIFEST_V2
    return OCI_MANIFEST


def _read_manifest(source: Source, descriptor: Descriptor, parent: str) -> Manifest:
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
    source: Source,
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


def load_oci_layout(source: Source, path: Path, fmt: SourceFormat, ref: str | None) -> LocalImage:
    if source.exists("oci-layout"):
        layout = read_json(source, "oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ImageSourceError(f"{source}: unsupported OCI layout version {version!r}")
    index = read_json(source, "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageSourceError(f"{source.where('index.json')}: no 'manifests' list")
    candidates = []
    for raw in index["manifests"]:
        descriptor = Descriptor.model_validate(raw)
        annotations = descriptor.annotations or {}
        names = [
            annotations[key] for key in (REF_NAME, CONTAINERD_IMAGE_NAME) if key in annotations
        ]
        candidates.append(Candidate(descriptor.digest, names, descriptor))
    chosen = choose(source, candidates, ref)
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
