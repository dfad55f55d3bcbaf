"""Test-only helpers for images built with steward_tools.samples (as `steward sample-image` is)."""

from __future__ import annotations

from pathlib import Path

from chalicelib.ecr.gateway import Registry
from chalicelib.oci.referrers import cosign_tag
from steward_tools.image_source.local_image import LocalImage
from steward_tools.samples import (
    Built,
    blob_file,
    build_image,
    build_index,
    build_referrer,
    build_signature,
)


def corrupt_blob(layout: Path, digest: str) -> Path:
    """Flip one byte of a blob in an OCI layout directory (same size, wrong digest)."""
    blob = blob_file(layout, digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    return blob


# --- straight into a registry -------------------------------------------------------------


def push_built(registry: Registry, built: Built, repository: str, tag: str | None = None) -> str:
    """Upload every blob and put every manifest (children by digest, the top one tagged).

    For tests that just need an image present; returns the top-level digest.
    """
    for data in built.blobs.values():
        registry.upload_bytes(repository, data)
    for manifest in built.manifests:
        registry.put_manifest(
            repository, manifest, tag if manifest.digest == built.digest else None
        )
    return built.digest


def push_signed_index_among(
    registry: Registry, repository: str, others: int
) -> tuple[str, set[str]]:
    """An index with a cosign signature and an SBOM, pushed among `others` unrelated images
    (each signed too); returns the index's digest and the digests that belong to it."""
    registry.create_repository(repository)
    for n in range(others):
        other = build_image([64], seed=1000 + n)
        push_built(registry, other, repository, tag=f"0.{n}")
        push_built(
            registry, build_signature(other, seed=2000 + n), repository, cosign_tag(other.digest)
        )
    index = build_index([build_image([96], seed=13), build_image([128], seed=14)])
    signature = build_signature(index, seed=15)
    sbom = build_referrer(index, seed=16)
    push_built(registry, index, repository, tag="3.0.0")
    push_built(registry, signature, repository, tag=cosign_tag(index.digest))
    push_built(registry, sbom, repository)
    return index.digest, {*(m.digest for m in index.manifests), signature.digest, sbom.digest}


MiB = 1024 * 1024


def blob_bytes(image: LocalImage, digest: str) -> bytes:
    with image.open_blob(digest) as reader:
        return reader.read()


def docker_layer_digests(image: LocalImage) -> list[str]:
    return [layer["digest"] for layer in image.manifest.document["layers"]]
