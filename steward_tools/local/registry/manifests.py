"""Manifests by tag or digest: HEAD, GET (exact stored bytes), PUT (an ECR PutImage, with its
events, scan on push and rules) and DELETE (an ECR BatchDeleteImage)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from moto.ecr.exceptions import (
    ImageAlreadyExistsException,
    InvalidParameterException,
    RepositoryNotFoundException,
)

from chalicelib.oci.manifests import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
)

from ..ecr_errors import (
    ImageDigestDoesNotMatchException,
    ImageTagAlreadyExistsException,
    LayersNotFoundException,
    ReferencedImagesNotFoundException,
)
from ..ecr_images import same_media_type
from ..validation import DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED
from .context import SHA256_RE, Call, check_digest
from .errors import (
    DENIED,
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_INVALID,
    TAG_INVALID,
    RegistryError,
    manifest_unknown,
    name_unknown,
)
from .http import Request, Response

GET_IMAGE = "ecr:BatchGetImage"
PUT_IMAGE = "ecr:PutImage"
DELETE_IMAGE = "ecr:BatchDeleteImage"
MANIFEST_TYPES = frozenset(
    {
        DOCKER_MANIFEST_V1,
        DOCKER_MANIFEST_V1_SIGNED,
        DOCKER_MANIFEST_V2,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
    }
)
# ECR's imageTag is 1..300 characters (API model); the characters are the distribution spec's.
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,299}$")
# API model: imageManifest is at most 4,194,304 characters.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Service quotas: tags per image (1,000), images per repository (100,000).
MAX_TAGS_PER_IMAGE = 1000
MAX_IMAGES_PER_REPOSITORY = 100_000


def _image_id(reference: str, *, writing: bool = False) -> dict[str, str]:
    if ":" in reference:
        return {"imageDigest": check_digest(reference)}
    if not TAG_RE.match(reference):
        if not writing:
            raise manifest_unknown(reference)  # no image can carry such a tag
        raise RegistryError(400, TAG_INVALID, "invalid tag", {"tag": reference})
    return {"imageTag": reference}


def _accepted(request: Request) -> list[str] | None:
    """The manifest media types the client accepts, or None for "whatever is stored"."""
    header = request.header("Accept")
    if not header:
        return None
    offered = [part.split(";", 1)[0].strip() for part in header.split(",")]
    if any(kind in ("*/*", "application/*") for kind in offered):
        return None
    known = [kind for kind in offered if kind in MANIFEST_TYPES]
    return known or None


def _manifest_response(
    status: int, manifest: str, media_type: str, digest: str, with_body: bool
) -> Response:
    body = manifest.encode("utf-8")
    headers = [
        ("Content-Type", media_type),
        ("Content-Length", str(len(body))),
        ("Docker-Content-Digest", digest),
        ("ETag", f'"{digest}"'),
    ]
    return Response(status, headers, [body if with_body else b""])


def head_manifest(call: Call, reference: str) -> Response:
    call.allow(GET_IMAGE)
    image_id = _image_id(reference)
    backend = call.backend()
    with backend._lock:
        repo = call.repository()
        if "imageDigest" in image_id:
            image = backend._by_digest(repo, image_id["imageDigest"])
        else:
            image = backend._by_tag(repo, image_id["imageTag"])
        if image is None:
            raise manifest_unknown(reference)
        accepted = _accepted(call.request)
        media_type = str(image.image_manifest_media_type)
        if accepted and not same_media_type(media_type, accepted):
            raise manifest_unknown(reference)
        # HEAD is how clients check for a manifest; only a GET is a pull ECR records.
        return _manifest_response(
            200, image.image_manifest, media_type, image.get_image_digest(), False
        )


def get_manifest(call: Call, reference: str) -> Response:
    call.allow(GET_IMAGE)
    image_id = _image_id(reference)
    try:
        result = call.backend().batch_get_image(
            call.name, image_ids=[image_id], accepted_media_types=_accepted(call.request)
        )
    except RepositoryNotFoundException:
        raise name_unknown(call.name, call.account) from None
    if not result["images"]:
        raise manifest_unknown(reference)
    image = result["images"][0]
    manifest = image["imageManifest"]
    digest = "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()
    return _manifest_response(200, manifest, image["imageManifestMediaType"], digest, True)


def _subject(body: bytes) -> str | None:
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        return str(subject["digest"])
    return None


def put_manifest(call: Call, reference: str) -> Response:
    call.allow(PUT_IMAGE)
    image_id = _image_id(reference, writing=True)
    body = call.request.read_body(MAX_MANIFEST_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError(400, MANIFEST_INVALID, "the manifest is not UTF-8 JSON") from None
    computed = "sha256:" + hashlib.sha256(body).hexdigest()
    if "imageDigest" in image_id and image_id["imageDigest"] != computed:
        raise RegistryError(
            400,
            DIGEST_INVALID,
            f"The specified digest {image_id['imageDigest']} does not match the calculated "
            f"digest {computed} of the manifest",
            {"digest": image_id["imageDigest"]},
        )
    content_type = (call.request.header("Content-Type") or "").split(";", 1)[0].strip()
    tag = image_id.get("imageTag")
    backend = call.backend()
    with backend._lock:
        repo = call.repository()
        existing = backend._by_digest(repo, computed)
        if existing is None and len(repo.images) >= MAX_IMAGES_PER_REPOSITORY:
            raise RegistryError(403, DENIED, "the repository holds ECR's maximum of 100,000 images")
        if existing is not None and tag and len(existing.image_tags) >= MAX_TAGS_PER_IMAGE:
            raise RegistryError(
                400, TAG_INVALID, "an image may have at most 1,000 tags", {"tag": tag}
            )
        try:
            backend.put_image(
                call.name,
                text,
                tag,
                image_manifest_mediatype=content_type or None,
                digest=computed,
            )
        except ImageAlreadyExistsException:
            # The same push again: done, except that an immutable tag refuses even that
            # (docker and buildx pushes to IMMUTABLE repositories: aws/containers-roadmap#2179).
            if tag and backend.tag_is_immutable(repo, tag):
                raise _immutable(call, tag) from None
        except ImageTagAlreadyExistsException:
            raise _immutable(call, tag or "") from None
        except (LayersNotFoundException, ReferencedImagesNotFoundException) as error:
            raise RegistryError(400, MANIFEST_BLOB_UNKNOWN, error.message or str(error)) from None
        except ImageDigestDoesNotMatchException as error:
            raise RegistryError(400, DIGEST_INVALID, error.message or str(error)) from None
        except InvalidParameterException as error:
            raise RegistryError(400, MANIFEST_INVALID, error.message or str(error)) from None
    headers = [
        ("Location", f"/v2/{call.name}/manifests/{computed}"),
        ("Docker-Content-Digest", computed),
    ]
    subject = _subject(body)
    if subject and SHA256_RE.match(subject):
        # The registry indexes referrers itself (spec: OCI-Subject on the PUT response).
        headers.append(("OCI-Subject", subject))
    return Response.empty(201, headers)


def _immutable(call: Call, tag: str) -> RegistryError:
    return RegistryError(
        400,
        TAG_INVALID,
        f"The image tag '{tag}' already exists in the '{call.name}' repository and cannot be "
        "overwritten because the repository is immutable.",
        {"tag": tag},
    )


def delete_manifest(call: Call, reference: str) -> Response:
    call.allow(DELETE_IMAGE)
    image_id = _image_id(reference)
    try:
        result = call.backend().batch_delete_image(call.name, image_ids=[image_id])
    except RepositoryNotFoundException:
        raise name_unknown(call.name, call.account) from None
    for failure in result["failures"]:
        if failure["failureCode"] == "ImageReferencedByManifestList":
            raise RegistryError(409, DENIED, failure["failureReason"], {"reference": reference})
        raise manifest_unknown(reference)
    return Response.empty(202)
