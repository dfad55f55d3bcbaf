"""Manifests by tag or digest: GET keeps the exact bytes (the digest holds), HEAD says which
digest a tag names, PUT sends the bytes as they are with their media type."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.oci.manifests import ACCEPTED_MEDIA_TYPES, OCI_EMPTY, digest_of, media_type_of
from chalicelib.registry_client.auth import scope
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.transport import RegistryClient

ACCEPT = ", ".join([*ACCEPTED_MEDIA_TYPES, OCI_EMPTY])


@dataclass(frozen=True)
class RawManifest:
    digest: str
    media_type: str
    body: bytes


def get_manifest(client: RegistryClient, repository: str, reference: str) -> RawManifest:
    """The manifest exactly as stored; a digest reference is verified against the bytes."""
    response = client.request(
        "GET",
        client.url(f"/v2/{repository}/manifests/{reference}"),
        scopes=(scope(repository, "pull"),),
        headers={"Accept": ACCEPT},
        operation="batch_get_image",
    )
    body = response.data
    digest = digest_of(body)
    if reference.startswith("sha256:") and digest != reference:
        raise RegistryHTTPError(0, "DIGEST_INVALID", f"{reference} served bytes of {digest}")
    media_type = (
        response.headers.get("Content-Type", "").split(";")[0].strip()
        or media_type_of(body.decode())
        or ""
    )
    declared = media_type_of(body.decode())
    return RawManifest(digest, declared or media_type, body)


def head_manifest(client: RegistryClient, repository: str, reference: str) -> str | None:
    """The digest the reference names in the repository, or None when it names nothing."""
    try:
        response = client.request(
            "HEAD",
            client.url(f"/v2/{repository}/manifests/{reference}"),
            scopes=(scope(repository, "pull"),),
            headers={"Accept": ACCEPT},
            operation="batch_get_image",
        )
    except RegistryHTTPError as error:
        if error.status == 404:
            return None
        raise
    found = response.headers.get("Docker-Content-Digest")
    if found:
        return str(found)
    return get_manifest(client, repository, reference).digest  # a registry that omits it


@dataclass(frozen=True)
class PutResult:
    digest: str
    subject_indexed: bool  # the registry answered OCI-Subject: its referrers API lists it


def put_manifest(
    client: RegistryClient, repository: str, reference: str, body: bytes, media_type: str
) -> PutResult:
    response = client.request(
        "PUT",
        client.url(f"/v2/{repository}/manifests/{reference}"),
        scopes=(scope(repository, "pull", "push"),),
        headers={"Content-Type": media_type},
        body=body,
        expect=(201, 200, 202),
        operation="put_image",
    )
    digest = response.headers.get("Docker-Content-Digest") or digest_of(body)
    return PutResult(str(digest), bool(response.headers.get("OCI-Subject")))
