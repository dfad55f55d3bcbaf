"""Referrers of a manifest: the OCI 1.1 referrers API, else the fallback tag index
(`chalicelib.oci.referrers.referrers_tag`), which this module also keeps up to date on a
registry that does not index `subject` itself."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.oci.manifests import OCI_INDEX
from chalicelib.oci.referrers import referrers_tag
from chalicelib.registry_client.auth import scope
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.manifests import get_manifest, put_manifest
from chalicelib.registry_client.transport import RegistryClient


def list_referrers(client: RegistryClient, repository: str, digest: str) -> list[dict[str, Any]]:
    """The descriptors of the manifests whose `subject` is `digest`."""
    try:
        response = client.request(
            "GET",
            client.url(f"/v2/{repository}/referrers/{digest}"),
            scopes=(scope(repository, "pull"),),
            headers={"Accept": OCI_INDEX},
        )
        return list(json.loads(response.data).get("manifests") or [])
    except RegistryHTTPError as error:
        if error.status not in (404, 405):
            raise
    return _fallback_index(client, repository, digest).get("manifests") or []


def _fallback_index(client: RegistryClient, repository: str, digest: str) -> dict[str, Any]:
    try:
        found = get_manifest(client, repository, referrers_tag(digest))
    except RegistryHTTPError as error:
        if error.status == 404:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        raise
    document: dict[str, Any] = json.loads(found.body)
    return document


def add_to_fallback_index(
    client: RegistryClient, repository: str, subject: str, descriptor: dict[str, Any]
) -> None:
    """List `descriptor` in the subject's fallback tag index (a registry without the API)."""
    index = _fallback_index(client, repository, subject)
    entries = index.setdefault("manifests", [])
    if any(e.get("digest") == descriptor["digest"] for e in entries):
        return
    entries.append(descriptor)
    body = json.dumps(index, separators=(",", ":")).encode()
    put_manifest(client, repository, referrers_tag(subject), body, OCI_INDEX)
