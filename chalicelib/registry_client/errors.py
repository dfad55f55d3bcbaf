"""Errors a registry answers, in the distribution spec's `{"errors": [{"code", "message"}]}`."""

from __future__ import annotations

import json


class RegistryHTTPError(Exception):
    """A registry refused a request: the HTTP status and the spec's first error code."""

    def __init__(self, status: int, code: str, message: str, url: str = "") -> None:
        super().__init__(f"{status} {code}: {message} ({url})" if url else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.url = url

    @property
    def transient(self) -> bool:
        return self.status in (408, 429, 500, 502, 503, 504)

    @classmethod
    def from_body(cls, status: int, body: bytes, url: str) -> RegistryHTTPError:
        code, message = f"HTTP_{status}", body[:200].decode("utf-8", "replace")
        try:
            first = json.loads(body)["errors"][0]
            code, message = str(first.get("code", code)), str(first.get("message", ""))
        except (ValueError, KeyError, IndexError, TypeError):
            pass
        return cls(status, code, message, url)


class BlobDigestMismatch(RegistryHTTPError):
    """Bytes read do not hash to the digest (or size) that names them: never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "DIGEST_INVALID", message)
