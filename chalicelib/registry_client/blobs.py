"""Blobs: HEAD (present, and its size) and a streaming GET, from an offset when resuming."""

from __future__ import annotations

import urllib3

from chalicelib.registry_client.auth import scope
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.transport import RegistryClient


def head_blob(client: RegistryClient, repository: str, digest: str) -> int | None:
    """The blob's size when the repository has it, else None."""
    try:
        response = client.request(
            "HEAD",
            client.url(f"/v2/{repository}/blobs/{digest}"),
            scopes=(scope(repository, "pull"),),
            expect=(200,),
            operation="batch_check_layer_availability",
        )
    except RegistryHTTPError as error:
        if error.status == 404:
            return None
        raise
    length = response.headers.get("Content-Length")
    return int(length) if length is not None else -1


def open_blob(
    client: RegistryClient, repository: str, digest: str, offset: int = 0
) -> urllib3.BaseHTTPResponse:
    """A streaming response of the blob's bytes from `offset` (a 206 when resuming)."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    response = client.request(
        "GET",
        client.url(f"/v2/{repository}/blobs/{digest}"),
        scopes=(scope(repository, "pull"),),
        headers=headers,
        stream=True,
        expect=(200, 206),
        operation="get_download_url_for_layer",
    )
    if offset and response.status != 206:
        response.release_conn()
        raise RegistryHTTPError(response.status, "RANGE_UNSUPPORTED", "no partial content")
    return response
