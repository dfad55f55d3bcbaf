"""Put a local image into ECR: an OCI layout, an OCI archive, or a legacy `docker save` tarball.

The image is read by `steward_tools.image_source.load_image`. Pushing (`push_image`) takes the
path a docker client takes into ECR: for each image manifest, ask which blobs the repository
lacks, upload only those (streamed, one part in memory, each digest checked as its bytes go by),
then put-image with the exact manifest bytes. An index's children are put first, by digest, and
only the top-level manifest gets the tag.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from chalicelib.ecr.gateway import Registry
from steward_tools.image_source import load_image
from steward_tools.image_source.errors import ImageSourceError
from steward_tools.image_source.local_image import LocalImage, ProgressCallback


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
