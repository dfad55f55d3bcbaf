"""The embedded ECR's response handlers, for the actions moto lacks or answers unlike ECR, and
`install()`, which makes moto build `EmbeddedECRBackend`s and answer with these handlers."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any, cast

from moto.core.responses import ActionResult
from moto.ecr.exceptions import InvalidParameterException
from moto.ecr.models import Image, ecr_backends
from moto.ecr.responses import ECRResponse

from . import scanning, session_policies
from .account_settings import RESPONSE_HANDLERS as ACCOUNT_SETTING_HANDLERS
from .ecr import EmbeddedECRBackend
from .ecr_images import IMAGE_DIGEST_RE, image_id_of
from .governance import RESPONSE_HANDLERS as GOVERNANCE_HANDLERS
from .lifecycle_preview import RESPONSE_HANDLERS as LIFECYCLE_HANDLERS
from .pagination import paginate
from .tokens import RESPONSE_HANDLERS as TOKEN_HANDLERS


def _status_filter_allows(image_filter: dict[str, Any]) -> bool:
    # Every image here is ACTIVE (no archive storage class locally).
    return image_filter.get("imageStatus", "ACTIVE") in ("ACTIVE", "ANY")


def _tag_filter(images: Iterable[Image], tag_status: str) -> list[Image]:
    if tag_status == "TAGGED":
        return [i for i in images if i.image_tags]
    if tag_status == "UNTAGGED":
        return [i for i in images if not i.image_tags]
    return list(images)


def _backend(response: ECRResponse) -> EmbeddedECRBackend:
    return cast(EmbeddedECRBackend, response.ecr_backend)


def _put_image(self: ECRResponse) -> ActionResult:
    tag = self._get_param("imageTag")
    image = _backend(self).put_image(
        repository_name=self._get_param("repositoryName"),
        image_manifest=self._get_param("imageManifest"),
        image_tag=tag,
        image_manifest_mediatype=self._get_param("imageManifestMediaType"),
        digest=self._get_param("imageDigest"),
        registry_id=self._get_param("registryId"),
    )
    return ActionResult(
        {
            "image": {
                "registryId": image.registry_id,
                "repositoryName": image.repository_name,
                "imageId": image_id_of(image.get_image_digest(), tag),
                "imageManifest": image.image_manifest,
                "imageManifestMediaType": image.image_manifest_media_type,
            }
        }
    )


def _batch_get_image(self: ECRResponse) -> ActionResult:
    return ActionResult(
        _backend(self).batch_get_image(
            self._get_param("repositoryName"),
            self._get_param("registryId"),
            self._get_param("imageIds"),
            accepted_media_types=self._get_param("acceptedMediaTypes"),
        )
    )


def _describe_images(self: ECRResponse) -> ActionResult:
    image_ids = self._get_param("imageIds")
    max_results = self._get_param("maxResults")
    next_token = self._get_param("nextToken")
    image_filter = self._get_param("filter") or {}
    if image_ids and (max_results is not None or next_token):
        raise InvalidParameterException(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'imageIds cannot be "
            "used together with maxResults or nextToken'"
        )
    images = list(
        self.ecr_backend.describe_images(
            self._get_param("repositoryName"), self._get_param("registryId"), image_ids
        )
    )
    token = None
    if not image_ids:
        images = _tag_filter(images, image_filter.get("tagStatus", "ANY"))
        images = images if _status_filter_allows(image_filter) else []
        images, token = paginate(images, max_results, next_token)
    details = []
    for image in images:
        detail = copy.copy(image)
        if not detail.image_tags:
            # ECR leaves imageTags out for an untagged image rather than sending [].
            del detail.image_tags
        details.append(detail)
    return ActionResult({"imageDetails": details, "nextToken": token})


def _list_images(self: ECRResponse) -> ActionResult:
    image_filter = self._get_param("filter") or {}
    images = self.ecr_backend.list_images(
        self._get_param("repositoryName"),
        self._get_param("registryId"),
        tag_status=image_filter.get("tagStatus", "ANY"),
    )
    if not _status_filter_allows(image_filter):
        images = []
    ids = [
        image_id_of(image.get_image_digest(), tag)
        for image in images
        for tag in cast("list[str | None]", image.image_tags or [None])
    ]
    page, token = paginate(ids, self._get_param("maxResults"), self._get_param("nextToken"))
    return ActionResult({"imageIds": page, "nextToken": token})


# ListImageReferrers' page: 20 unless maxResults says (botocore checks its 1..50).
REFERRERS_PAGE = 20


def _list_image_referrers(self: ECRResponse) -> ActionResult:
    subject = self._get_param("subjectId") or {}
    digest = subject.get("imageDigest") or ""
    if not IMAGE_DIGEST_RE.match(digest):
        raise InvalidParameterException("Invalid parameter at 'subjectId': invalid image digest")
    image_filter = self._get_param("filter") or {}
    found = _backend(self).list_image_referrers(
        self._get_param("repositoryName"), self._get_param("registryId"), digest
    )
    kinds = image_filter.get("artifactTypes")
    if kinds:
        found = [d for d in found if d.get("artifactType") in kinds]
    # Every image here is ACTIVE (no archive storage class locally); ACTIVE is the default.
    if image_filter.get("artifactStatus", "ACTIVE") not in ("ACTIVE", "ANY"):
        found = []
    page, token = paginate(
        [{**d, "artifactStatus": "ACTIVE"} for d in found],
        self._get_param("maxResults") or REFERRERS_PAGE,
        self._get_param("nextToken"),
    )
    return ActionResult({"referrers": page, "nextToken": token})


def _describe_repositories(self: ECRResponse) -> ActionResult:
    """Pages as ECR's do (moto returned every repository and ignored maxResults): the sweep walks
    the registry a page per invocation."""
    names = self._get_param("repositoryNames")
    if names and (self._get_param("nextToken") or self._get_param("maxResults")):
        raise InvalidParameterException(
            "Cannot specify repositoryNames together with nextToken or maxResults"
        )
    repositories = self.ecr_backend.describe_repositories(
        repository_names=names, registry_id=self._get_param("registryId")
    )
    page, token = paginate(
        list(repositories), self._get_param("maxResults"), self._get_param("nextToken")
    )
    return ActionResult({"repositories": page, "failures": [], "nextToken": token})


def _get_download_url_for_layer(self: ECRResponse) -> ActionResult:
    host = self.headers.get("Host") if self.headers else None
    return ActionResult(
        _backend(self).get_download_url_for_layer(
            self._get_param("repositoryName"),
            self._get_param("layerDigest"),
            registry_id=self._get_param("registryId"),
            base_url=f"http://{host}" if host else None,
        )
    )


_RESPONSE_HANDLERS = {
    "put_image": _put_image,
    "batch_get_image": _batch_get_image,
    "describe_images": _describe_images,
    "list_images": _list_images,
    "list_image_referrers": _list_image_referrers,
    "describe_repositories": _describe_repositories,
    "get_download_url_for_layer": _get_download_url_for_layer,
    **GOVERNANCE_HANDLERS,  # repository settings (steward_tools/local/governance.py)
    **scanning.RESPONSE_HANDLERS,  # image scanning (steward_tools/local/scanning.py)
    **LIFECYCLE_HANDLERS,  # lifecycle preview and policy (steward_tools/local/lifecycle_preview.py)
    **TOKEN_HANDLERS,  # get-authorization-token (steward_tools/local/tokens.py)
    **ACCOUNT_SETTING_HANDLERS,  # BLOB_MOUNTING etc. (steward_tools/local/account_settings.py)
}
_install_lock = threading.Lock()


def install() -> None:
    """Make moto build `EmbeddedECRBackend`s and answer with our handlers. Idempotent."""
    with _install_lock:
        if ecr_backends.backend is not EmbeddedECRBackend:
            ecr_backends.backend = EmbeddedECRBackend
            # Backends already built from moto's class would keep answering: drop them.
            ecr_backends.clear()
        for name, handler in _RESPONSE_HANDLERS.items():
            # moto dispatches JSON actions to the snake_case method of the same name.
            if ECRResponse.__dict__.get(name) is not handler:
                setattr(ECRResponse, name, handler)
        # A vended credential may do on the control API only what its session policy allows.
        session_policies.install()


def is_installed() -> bool:
    return (
        ecr_backends.backend is EmbeddedECRBackend
        and session_policies.is_installed()
        and all(
            ECRResponse.__dict__.get(name) is handler
            for name, handler in _RESPONSE_HANDLERS.items()
        )
    )
