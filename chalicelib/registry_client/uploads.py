"""Blob uploads: start (or mount from another repository of the same registry), send parts with
`Content-Range`, ask where an interrupted upload stands (`Range`), finish with the digest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin

from chalicelib.registry_client.auth import scope
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.transport import RegistryClient

OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True)
class Upload:
    repository: str
    location: str  # absolute URL of the upload session

    def scopes(self) -> tuple[str, ...]:
        return (scope(self.repository, "pull", "push"),)


def start_upload(
    client: RegistryClient, repository: str, *, mount: str | None = None, source: str | None = None
) -> Upload | None:
    """A new upload session; None when the registry mounted `mount` from `source` instead."""
    scopes = [scope(repository, "pull", "push")]
    query: dict[str, str] = {}
    if mount and source:
        query = {"mount": mount, "from": source}
        scopes.append(scope(source, "pull"))
    url = client.url(f"/v2/{repository}/blobs/uploads/", query or None)
    response = client.request(
        "POST",
        url,
        scopes=tuple(scopes),
        body=b"",
        headers=OCTETS,
        expect=(201, 202),
        operation="initiate_layer_upload",
    )
    if response.status == 201:
        return None
    return Upload(repository, _location(url, response.headers.get("Location")))


def upload_offset(client: RegistryClient, upload: Upload) -> int:
    """How many bytes the registry holds of the upload (its `Range: 0-<last>`)."""
    response = client.request(
        "GET", upload.location, scopes=upload.scopes(), expect=(204, 200), redirect=False
    )
    return _range_end(response.headers.get("Range"))


def send_part(
    client: RegistryClient, upload: Upload, body: Iterable[bytes], first: int, length: int
) -> Upload:
    """PATCH `length` bytes at `first` (streamed from `body`); the session's next location."""
    client.authorize(upload.scopes())  # a streamed body cannot be sent twice for a challenge
    response = client.request(
        "PATCH",
        upload.location,
        scopes=upload.scopes(),
        headers={
            **OCTETS,
            "Content-Range": f"{first}-{first + length - 1}",
            "Content-Length": str(length),
        },
        body=body,
        expect=(202, 204),
        operation="upload_layer_part",
        redirect=False,
    )
    got = _range_end(response.headers.get("Range"))
    if response.headers.get("Range") and got != first + length:
        raise RegistryHTTPError(416, "BLOB_UPLOAD_INVALID", f"registry holds {got} bytes")
    return Upload(upload.repository, _location(upload.location, response.headers.get("Location")))


def finish_upload(client: RegistryClient, upload: Upload, digest: str) -> None:
    separator = "&" if "?" in upload.location else "?"
    client.request(
        "PUT",
        upload.location + separator + urlencode({"digest": digest}),
        scopes=upload.scopes(),
        headers=OCTETS,
        body=b"",
        expect=(201, 204),
        operation="complete_layer_upload",
        redirect=False,
    )


def _location(base: str, location: str | None) -> str:
    if not location:
        raise RegistryHTTPError(502, "BLOB_UPLOAD_INVALID", "upload answer without Location")
    return urljoin(base, location)


def _range_end(header: str | None) -> int:
    """`0-1023` → 1024 bytes held; none → 0."""
    if not header:
        return 0
    _, _, last = header.replace("bytes=", "").partition("-")
    return int(last) + 1 if last.strip() else 0
