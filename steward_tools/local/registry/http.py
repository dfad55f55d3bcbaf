"""The bits of HTTP the registry handlers share: the request, the response, streamed bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..blobs import CHUNK_SIZE
from .errors import BLOB_UPLOAD_INVALID, RegistryError

# `<account>.dkr.ecr.<region>.<anything>` names another registry of the embedded backend.
_ECR_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]{1,32})\.")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Iterable[bytes] = ()

    @classmethod
    def empty(cls, status: int, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, [*(headers or []), ("Content-Length", "0")], [b""])

    @classmethod
    def data(
        cls,
        status: int,
        body: bytes,
        content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        out = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])]
        return cls(status, out, [body])


class Request:
    """One /v2 request: method, path, query, headers and the registry its Host names."""

    def __init__(self, environ: dict[str, Any], default_account: str, default_region: str) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path = str(environ.get("PATH_INFO", ""))
        self.query: dict[str, list[str]] = parse_qs(
            str(environ.get("QUERY_STRING", "")), keep_blank_values=True
        )
        self.host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost")
        match = _ECR_HOST.match(self.host)
        self.account = match["account"] if match else default_account
        self.region = match["region"] if match else default_region

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            value = self.environ.get(key)
        else:
            value = self.environ.get(f"HTTP_{key}")
        return str(value) if value not in (None, "") else None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def has_body(self) -> bool:
        if self.environ.get("wsgi.input_terminated"):
            return True  # chunked transfer encoding: length unknown until read
        return self.content_length > 0

    @property
    def content_length(self) -> int:
        try:
            return max(int(self.environ.get("CONTENT_LENGTH") or 0), 0)
        except ValueError:
            raise RegistryError(400, BLOB_UPLOAD_INVALID, "malformed Content-Length") from None

    def chunks(self) -> Iterator[bytes]:
        """The request body in pieces of at most CHUNK_SIZE, never whole in memory. (A refusal
        may leave it unread: werkzeug's server closes every connection after one response.)"""
        stream = self.environ["wsgi.input"]
        if self.environ.get("wsgi.input_terminated"):
            while chunk := stream.read(CHUNK_SIZE):
                yield chunk
            return
        remaining = self.content_length
        while remaining > 0:
            chunk = stream.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise RegistryError(
                    400, BLOB_UPLOAD_INVALID, "the body ended before its Content-Length"
                )
            remaining -= len(chunk)
            yield chunk

    def read_body(self, limit: int) -> bytes:
        """A small body (a manifest) whole; RegistryError 413 past `limit` bytes."""
        parts: list[bytes] = []
        size = 0
        for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise RegistryError(
                    413, "SIZE_INVALID", f"the body exceeds {limit} bytes", {"limit": limit}
                )
            parts.append(chunk)
        return b"".join(parts)
