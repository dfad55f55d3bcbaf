"""The /v2 routes, served by a WSGI middleware in front of moto on the embedded AWS port.

Every request is authenticated before anything in it is looked at; a refusal is always the
spec's error JSON, never a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from . import blobs, manifests, referrers, tags, uploads
from .auth import authenticate
from .context import Call
from .errors import UNSUPPORTED, RegistryError, unsupported
from .http import Request, Response

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Handler = Callable[..., Response]

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_NAME = r"(?P<name>[^?#]+?)"
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (
        re.compile(rf"^/v2/{_NAME}/blobs/uploads/?$"),
        {"POST": uploads.start_upload},
    ),
    (
        re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<upload_id>[^/]+)$"),
        {
            "PATCH": uploads.patch_upload,
            "PUT": uploads.put_upload,
            "GET": uploads.upload_status,
            "DELETE": uploads.cancel_upload,
        },
    ),
    (
        re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>[^/]+)$"),
        {"HEAD": blobs.head_blob, "GET": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        re.compile(rf"^/v2/{_NAME}/manifests/(?P<reference>[^/]+)$"),
        {
            "HEAD": manifests.head_manifest,
            "GET": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(rf"^/v2/{_NAME}/tags/list$"), {"GET": tags.list_tags}),
    (re.compile(rf"^/v2/{_NAME}/referrers/(?P<digest>[^/]+)$"), {"GET": referrers.list_referrers}),
]


def route(request: Request) -> Response:
    principal = authenticate(request)
    if request.path in ("/v2", "/v2/"):
        if request.method not in ("GET", "HEAD"):
            raise unsupported()
        return Response.data(200, b"{}", "application/json")
    for pattern, handlers in _ROUTES:
        match = pattern.match(request.path)
        if match is None:
            continue
        handler = handlers.get(request.method)
        if handler is None:
            raise unsupported(f"{request.method} is not supported here")
        arguments = match.groupdict()
        call = Call(request, principal, arguments.pop("name"))
        return handler(call, **arguments)
    raise RegistryError(404, UNSUPPORTED, "no such registry endpoint", {"path": request.path})


class RegistryMiddleware:
    """Serves ``/v2`` (the OCI distribution API over the embedded ECR); passes the rest on."""

    def __init__(self, app: WSGIApp, *, account: str, region: Callable[[], str]) -> None:
        self.app = app
        self.account = account
        self.region = region

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        signed = str(environ.get("HTTP_AUTHORIZATION", "")).startswith("AWS4-HMAC-SHA256")
        if (path != "/v2" and not path.startswith("/v2/")) or signed:
            # A SigV4-signed /v2 request is an AWS API call (API Gateway v2's /v2/apis...).
            return self.app(environ, start_response)
        request = Request(environ, self.account, self.region())
        try:
            response = route(request)
        except RegistryError as error:
            body = error.body()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *error.headers,
            ]
            response = Response(error.status, headers, [body])
        except Exception:
            # A bug must not leak a traceback to the client: log it, answer the spec's way.
            logger.exception("registry: %s %s failed", request.method, path)
            body = RegistryError(500, "UNKNOWN", "internal error").body()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
            response = Response(500, headers, [body])
        headers = [API_VERSION, *response.headers]
        start_response(f"{response.status} {_REASONS.get(response.status, 'OK')}", headers)
        if request.method == "HEAD":
            return [b""]
        return response.body


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
}
