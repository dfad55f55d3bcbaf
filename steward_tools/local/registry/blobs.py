"""Blob HEAD and GET (a 307 to the signed download URL, as ECR redirects to S3), and DELETE,
which ECR does not offer: layers go when no image needs them."""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from moto.ecr.exceptions import RepositoryNotFoundException

from ..ecr_errors import LayerInaccessibleException, LayersNotFoundException
from ..ecr_layers import BLOB_URL_PREFIX, DOWNLOAD_URL_TTL_SECONDS, url_signer
from .context import Call, check_digest
from .errors import blob_unknown, name_unknown, unsupported
from .http import Response

PULL_CHECK = "ecr:BatchCheckLayerAvailability"
PULL_DOWNLOAD = "ecr:GetDownloadUrlForLayer"


def head_blob(call: Call, digest: str) -> Response:
    call.allow(PULL_CHECK)
    check_digest(digest)
    backend = call.backend()
    with backend._lock:
        size = call.repository().layers.get(digest)
    if size is None:
        raise blob_unknown(digest)
    return Response(
        200,
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
            ("Docker-Content-Digest", digest),
        ],
        [b""],
    )


def get_blob(call: Call, digest: str) -> Response:
    call.allow(PULL_DOWNLOAD)
    check_digest(digest)
    backend = call.backend()
    try:
        url = backend.get_download_url_for_layer(call.name, digest)["downloadUrl"]
        parts = urlsplit(url)
        path_and_query = f"{parts.path}?{parts.query}"
    except RepositoryNotFoundException:
        raise name_unknown(call.name, call.account) from None
    except LayersNotFoundException:
        raise blob_unknown(digest) from None
    except LayerInaccessibleException:
        # The ECR API serves only layers an image references; the distribution spec has a
        # pushed blob readable at once (docs/registry.md, "Deviations"), so sign it here.
        path_and_query = _signed_path(call, digest)
    # Same server, but under the address the client used (it may not know 127.0.0.1).
    location = f"http://{call.request.host}{path_and_query}"
    return Response.empty(307, [("Location", location), ("Docker-Content-Digest", digest)])


def _signed_path(call: Call, digest: str) -> str:
    """The download path GetDownloadUrlForLayer would sign, for an unreferenced layer."""
    expires = int(time.time()) + DOWNLOAD_URL_TTL_SECONDS
    signature = url_signer().signature(call.account, call.region, call.name, digest, expires)
    path = "/".join(
        (call.account, call.region, quote(call.name, safe="/"), quote(digest, safe=":"))
    )
    return f"{BLOB_URL_PREFIX}{path}?expires={expires}&signature={signature}"


def delete_blob(call: Call, digest: str) -> Response:
    call.allow("ecr:BatchDeleteImage")
    check_digest(digest)
    raise unsupported(
        "Amazon ECR has no blob delete: a layer is removed when no image references it"
    )
