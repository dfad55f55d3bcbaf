"""What belongs to an image at the source (exact manifest bytes, an index's children, cosign
sidecars, OCI referrers) and what the destination already has."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from chalicelib.ecr.errors import (
    ImageNotFound,
    RegistryError,
    RepositoryNotFound,
)
from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import Manifest, short_digest
from chalicelib.oci.referrers import COSIGN_KINDS, cosign_tag


class SourceImage(BaseModel):
    """Everything that belongs to one image, in put order (children and subjects first)."""

    repository: str
    digest: str
    manifests: list[Manifest]
    why: dict[str, str]  # digest → why it belongs to the image
    blobs: dict[str, int]  # digest → size, over every image manifest
    sidecar_tags: dict[str, str] = Field(default_factory=dict)  # cosign tag → its digest


class DestinationState(BaseModel):
    repository_exists: bool
    manifests: set[str] = Field(default_factory=set)
    tagged: set[tuple[str, str]] = Field(default_factory=set)  # (digest, tag) already in place
    missing_blobs: set[str] = Field(default_factory=set)


def read_source(registry: Registry, repository: str, digest: str) -> SourceImage:
    """The image's manifests (exact bytes), children, referrers and blobs, read at the source by
    digest: each round asks batch-get-image for the manifests found so far and their cosign
    tags together, and list-image-referrers for their OCI referrers. Nothing else in the
    repository is read, so a job costs the same in a repository of any size."""
    manifests: dict[str, Manifest] = {}
    why: dict[str, str] = {digest: "the image"}
    children: dict[str, list[str]] = {}
    attached: dict[str, list[str]] = {}
    sidecars: dict[str, str] = {}
    known: dict[str, Manifest] = {}  # sidecars read by tag, before their round
    wanted = [digest]
    while wanted:
        tags = [cosign_tag(d, kind) for d in wanted for kind in COSIGN_KINDS]
        unread = [d for d in wanted if d not in known]
        read = registry.read_manifests(repository, digests=unread, tags=tags)
        missing = set(unread) - set(read.by_digest)
        reason = read.failures[0].get("failureReason", "") if read.failures else ""
        if missing:
            raise ImageNotFound(
                "ImageNotFoundException",
                f"{', '.join(sorted(missing))} not in {repository} {reason}".strip(),
                "batch_get_image",
            )
        if read.failures:  # a sidecar tag ECR could not read (KMS, say) must not be dropped
            code = str(read.failures[0].get("failureCode", "BatchGetImageFailure"))
            raise RegistryError(code, f"{repository}: {reason}", "batch_get_image")
        found = [known.pop(d) if d in known else read.by_digest[d] for d in wanted]
        wanted = []

        def want(d: str, reason: str, parent: str, edges: dict[str, list[str]]) -> None:
            edges.setdefault(parent, []).append(d)
            if d not in why:
                why[d] = reason
                wanted.append(d)  # noqa: B023 - called only within this round

        for manifest in found:
            manifests[manifest.digest] = manifest
            short = short_digest(manifest.digest)
            for child in manifest.children():
                want(child.digest, f"listed by index {short}", manifest.digest, children)
            for kind in COSIGN_KINDS:
                tag = cosign_tag(manifest.digest, kind)
                sidecar = read.by_tag.get(tag)
                if sidecar is not None:
                    sidecars[tag] = sidecar.digest
                    known.setdefault(sidecar.digest, sidecar)
                    want(sidecar.digest, f"cosign .{kind} of {short}", manifest.digest, attached)
            for referrer in registry.iter_referrers(repository, manifest.digest):
                want(referrer, f"OCI referrer of {short}", manifest.digest, attached)

    return source_image(repository, digest, manifests, why, children, attached, sidecars)


def source_image(
    repository: str,
    digest: str,
    manifests: dict[str, Manifest],
    why: dict[str, str],
    children: dict[str, list[str]],
    attached: dict[str, list[str]],
    sidecars: dict[str, str],
) -> SourceImage:
    """The image as both source readers found it: its manifests in put order and the blobs
    they need (each once)."""
    order = put_order(digest, manifests, children, attached)
    blobs: dict[str, int] = {}
    for manifest in order:
        if manifest.is_index:
            continue
        for blob in manifest.blobs():
            if not blob.urls:  # non-distributable layers stay where their urls say
                blobs.setdefault(blob.digest, blob.size)
    return SourceImage(
        repository=repository,
        digest=digest,
        manifests=order,
        why=why,
        blobs=blobs,
        sidecar_tags=sidecars,
    )


def read_destination(
    registry: Registry, repository: str, source: SourceImage, tags: Iterable[str]
) -> DestinationState:
    """Which of the image's manifests, tags and blobs the destination repository already has."""
    try:
        registry.describe_repository(repository)
    except RepositoryNotFound:
        return DestinationState(repository_exists=False, missing_blobs=set(source.blobs))
    pairs = [(source.digest, tag) for tag in tags]
    pairs += [(digest, tag) for tag, digest in source.sidecar_tags.items()]
    ids = [{"imageDigest": m.digest} for m in source.manifests]
    ids += [{"imageDigest": d, "imageTag": t} for d, t in pairs]
    found, failures = registry.get_manifests(repository, ids)
    present = {m.digest for m in found}
    failed_tags = {f.get("imageId", {}).get("imageTag") for f in failures}
    tagged = {(d, t) for d, t in pairs if d in present and t not in failed_tags}
    missing = set(registry.missing_layers(repository, source.blobs)) if source.blobs else set()
    return DestinationState(
        repository_exists=True, manifests=present, tagged=tagged, missing_blobs=missing
    )


def put_order(
    digest: str,
    manifests: dict[str, Manifest],
    children: dict[str, list[str]],
    attached: dict[str, list[str]],
) -> list[Manifest]:
    """The order to put an image's manifests in at a destination: an index's children before the
    index, and a manifest's referrers after it (each needs what it points at to be there)."""
    order: list[Manifest] = []
    placed: set[str] = set()

    def place(d: str) -> None:
        if d in placed:
            return
        placed.add(d)
        for child in children.get(d, []):
            place(child)
        order.append(manifests[d])
        for referrer in attached.get(d, []):
            place(referrer)

    place(digest)
    return order
