"""Test-only helpers for images built with steward_tools.samples (as `steward sample-image` is)."""

from __future__ import annotations

from pathlib import Path

from chalicelib.ecr.gateway import Registry
from steward_tools.push import LocalImage
from steward_tools.samples import Built, blob_file


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


MiB = 1024 * 1024


def blob_bytes(image: LocalImage, digest: str) -> bytes:
    with image.open_blob(digest) as reader:
        return reader.read()


def docker_layer_digests(image: LocalImage) -> list[str]:
    return [layer["digest"] for layer in image.manifest.document["layers"]]
