"""ECR's error codes as the project's exceptions, each saying whether a retry can help."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.kernel.errors import (
    CONNECTION_ERRORS,
    SERVER_CODES,
    THROTTLING_CODES,
    AwsCallError,
    is_transient,
)


class RegistryError(AwsCallError):
    """An ECR call failed. `code` is ECR's error code; `transient` says whether to retry later.
    One branch of the project's AWS error taxonomy (`chalicelib.kernel.errors`)."""

    transient = False

    def __init__(
        self, code: str, message: str, operation: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, message, operation, details, service="ecr")


class RepositoryNotFound(RegistryError):
    pass


class RepositoryAlreadyExists(RegistryError):
    pass


class ImageNotFound(RegistryError):
    pass


class LayersNotFound(RegistryError):
    pass


class ReferencedImagesNotFound(RegistryError):
    pass


class TagImmutable(RegistryError):
    """The tag exists on another digest and the repository does not let it move."""


class InvalidParameter(RegistryError):
    pass


class InvalidLayer(RegistryError):
    """The digest ECR computed for an uploaded layer is not the one asked for."""


class Throttled(RegistryError):
    transient = True


class RegistryUnavailable(RegistryError):
    transient = True


class AccessDenied(RegistryError):
    pass


_ERRORS: dict[str, type[RegistryError]] = {
    "RepositoryNotFoundException": RepositoryNotFound,
    "RepositoryAlreadyExistsException": RepositoryAlreadyExists,
    "ImageNotFoundException": ImageNotFound,
    "LayersNotFoundException": LayersNotFound,
    "ReferencedImagesNotFoundException": ReferencedImagesNotFound,
    "ImageTagAlreadyExistsException": TagImmutable,
    "InvalidParameterException": InvalidParameter,
    "InvalidLayerException": InvalidLayer,
    "AccessDeniedException": AccessDenied,
    **{code: Throttled for code in THROTTLING_CODES},
    **{code: RegistryUnavailable for code in SERVER_CODES},
}


def _translate(error: Exception, operation: str) -> RegistryError:
    """Map a botocore failure to the project's exception for that ECR error code."""

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "Unknown")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        cls = _ERRORS.get(code)
        if cls is None:
            cls = RegistryUnavailable if status >= 500 or is_transient(error) else RegistryError
        details = {
            k: v for k, v in error.response.items() if k not in ("Error", "ResponseMetadata")
        }
        return cls(code, info.get("Message", ""), operation, details)
    if isinstance(error, ParamValidationError):
        return InvalidParameter("InvalidParameterException", str(error), operation)
    if isinstance(error, CONNECTION_ERRORS):
        # Dropped, closed, reset or timed-out connections: ConnectionClosedError derives from
        # HTTPClientError, not botocore's ConnectionError, and was once taken as permanent.
        return RegistryUnavailable(type(error).__name__, str(error), operation)
    return RegistryError(type(error).__name__, str(error), operation)
