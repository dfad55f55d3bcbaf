"""The ECR exceptions the embedded backend raises that moto does not define, with ECR's codes."""

from __future__ import annotations

from moto.core.exceptions import ServiceException


class ImageDigestDoesNotMatchException(ServiceException):
    code = "ImageDigestDoesNotMatchException"


class ImageTagAlreadyExistsException(ServiceException):
    code = "ImageTagAlreadyExistsException"


class LayersNotFoundException(ServiceException):
    code = "LayersNotFoundException"


class ReferencedImagesNotFoundException(ServiceException):
    code = "ReferencedImagesNotFoundException"


class LayerInaccessibleException(ServiceException):
    code = "LayerInaccessibleException"
    message = (
        "The specified layer is not available because it is not associated with an image. "
        "Unassociated image layers may be cleaned up at any time."
    )


class LayerAlreadyExistsException(ServiceException):
    code = "LayerAlreadyExistsException"


class InvalidLayerException(ServiceException):
    code = "InvalidLayerException"


class EmptyUploadException(ServiceException):
    code = "EmptyUploadException"


class LayerPartTooSmallException(ServiceException):
    code = "LayerPartTooSmallException"
    message = "Layer parts must be at least 5 MiB in size."


class InvalidLayerPartException(ServiceException):
    """Carries ``lastValidByteReceived`` so a client can resume (moto's only sets it half-way)."""

    code = "InvalidLayerPartException"

    def __init__(
        self, message: str, registry_id: str, repository_name: str, upload_id: str, last: int
    ) -> None:
        super().__init__(message)
        self.registry_id = registry_id
        self.repository_name = repository_name
        self.upload_id = upload_id
        # The model's PartSize is >= 0: report 0 for an upload that has no bytes yet.
        self.last_valid_byte_received = max(last, 0)
