"""What belongs to an image and what a destination already has, read over the registry protocol
(`/v2`) of any registry: manifests by digest (exact bytes), an index's children, cosign sidecar
tags by name, OCI referrers from the referrers API (or its fallback tag); at the destination HEAD
requests only."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from chalicelib.ecr.errors import ImageNotFound
from chalicelib.oci.manifests import Manifest, short_digest
from chalicelib.oci.referrers import COSIGN_KINDS, cosign_tag
from chalicelib.registry_client.blobs import head_blob
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.manifests import RawManifest, get_manifest, head_manifest
from chalicelib.registry_client.referrers import list_referrers
from chalicelib.registry_client.transport import RegistryClient
from chalicelib.replication.source import DestinationState, SourceImage, source_image

HEAD_CONCURRENCY = 8


def _manifest(raw: RawManifest) -> Manifest:
    return Manifest(digest=raw.digest, media_type=raw.media_type, body=raw.body.decode())


def fetch(client: RegistryClient, repository: str, reference: str) -> Manifest:
    try:
        return _manifest(get_manifest(client, repository, reference))
    except RegistryHTTPError as error:
        if error.status == 404:
            raise ImageNotFound(
                "ImageNotFoundException", f"{reference} not in {repository}", "GET manifest"
            ) from error
        raise


def read_source_v2(client: RegistryClient, repository: str, digest: str) -> SourceImage:
    """The image's manifests (exact bytes), children, referrers and blobs, read at the source by
    digest: each manifest's cosign tags asked for by name (HEAD; a 404 means none) and its OCI
    referrers from the referrers API, never the repository's tag list, so a job costs the same
    in a repository of any size."""
    manifests: dict[str, Manifest] = {}
    why: dict[str, str] = {digest: "the image"}
    children: dict[str, list[str]] = {}
    attached: dict[str, list[str]] = {}
    sidecars: dict[str, str] = {}
    wanted = [digest]
    with ThreadPoolExecutor(max_workers=len(COSIGN_KINDS)) as pool:
        while wanted:
            manifest = fetch(client, repository, wanted.pop(0))
            manifests[manifest.digest] = manifest
            short = short_digest(manifest.digest)

            def want(d: str, reason: str, edges: dict[str, list[str]]) -> None:
                edges.setdefault(manifest.digest, []).append(d)  # noqa: B023 - used at once
                if d not in why:
                    why[d] = reason
                    wanted.append(d)

            tags = [cosign_tag(manifest.digest, kind) for kind in COSIGN_KINDS]
            named = pool.map(lambda tag: head_manifest(client, repository, tag), tags)
            referrers = list_referrers(client, repository, manifest.digest)
            for child in manifest.children():
                want(child.digest, f"listed by index {short}", children)
            for kind, tag, sidecar in zip(COSIGN_KINDS, tags, named, strict=True):
                if sidecar is not None:
                    sidecars[tag] = sidecar
                    want(sidecar, f"cosign .{kind} of {short}", attached)
            for referrer in referrers:
                if isinstance(referrer.get("digest"), str):
                    want(referrer["digest"], f"OCI referrer of {short}", attached)

    return source_image(repository, digest, manifests, why, children, attached, sidecars)


def read_destination_v2(
    client: RegistryClient,
    repository: str,
    source: SourceImage,
    tags: Iterable[str],
    *,
    repository_exists: bool = True,
) -> DestinationState:
    """Which manifests, tags and blobs the destination has: HEAD requests, a few at once. A
    blob is only asked about when a manifest that needs it is missing (a registry keeps the
    blobs of every manifest it holds)."""
    if not repository_exists:
        return DestinationState(repository_exists=False, missing_blobs=set(source.blobs))
    pairs = [(source.digest, tag) for tag in tags]
    pairs += [(digest, tag) for tag, digest in source.sidecar_tags.items()]
    with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY) as pool:
        digests = [m.digest for m in source.manifests]
        found = pool.map(lambda d: head_manifest(client, repository, d), digests)
        present = {d for d, got in zip(digests, found, strict=True) if got == d}
        named = pool.map(lambda p: head_manifest(client, repository, p[1]), pairs)
        tagged = {p for p, got in zip(pairs, named, strict=True) if got == p[0]}
        needed: dict[str, int] = {}
        for manifest in source.manifests:
            if manifest.digest not in present and not manifest.is_index:
                needed.update(
                    {b.digest: b.size for b in manifest.blobs() if b.digest in source.blobs}
                )
        order = list(needed)
        sizes = pool.map(lambda d: head_blob(client, repository, d), order)
        missing = {d for d, size in zip(order, sizes, strict=True) if size is None}
    return DestinationState(
        repository_exists=True, manifests=present, tagged=tagged, missing_blobs=missing
    )
