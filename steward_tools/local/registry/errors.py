"""The distribution spec's error bodies, and the ECR exceptions they stand for.

Every refusal is `{"errors": [{"code", "message", "detail"}]}` with the spec's code
(https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#error-codes).
"""

from __future__ import annotations

import json
from typing import Any

# The spec's codes, with the status each is usually sent with.
BLOB_UNKNOWN = "BLOB_UNKNOWN"
BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
DIGEST_INVALID = "DIGEST_INVALID"
MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
MANIFEST_INVALID = "MANIFEST_INVALID"
MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
NAME_INVALID = "NAME_INVALID"
NAME_UNKNOWN = "NAME_UNKNOWN"
SIZE_INVALID = "SIZE_INVALID"
UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
UNSUPPORTED = "UNSUPPORTED"
TOOMANYREQUESTS = "TOOMANYREQUESTS"
TAG_INVALID = "TAG_INVALID"  # not in the spec's table; docker's and ECR's immutable-tag answer


class RegistryError(Exception):
    """A refusal with its HTTP status and spec error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or []

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]}).encode()


def name_unknown(repository: str, registry_id: str) -> RegistryError:
    # ECR's message for RepositoryNotFoundException, which is what a /v2 push to a missing
    # repository meets: ECR creates none (unless a creation template applies).
    return RegistryError(
        404,
        NAME_UNKNOWN,
        f"The repository with name '{repository}' does not exist in the registry with id "
        f"'{registry_id}'",
    )


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError(404, BLOB_UNKNOWN, "blob unknown to registry", {"digest": digest})


def manifest_unknown(reference: str) -> RegistryError:
    return RegistryError(
        404, MANIFEST_UNKNOWN, f"Requested image not found: {reference}", {"reference": reference}
    )


def upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError(
        404, BLOB_UPLOAD_UNKNOWN, "blob upload unknown to registry", {"uuid": upload_id}
    )


def unsupported(message: str = "The operation is unsupported.") -> RegistryError:
    return RegistryError(405, UNSUPPORTED, message)
