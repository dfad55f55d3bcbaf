"""Images: describe and list them, read and put manifests (exact bytes), delete them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

from chalicelib.ecr import readcache
from chalicelib.ecr.core import (
    BATCH_IMAGE_IDS,
    PAGE_SIZE,
    REFERRERS_PAGE,
    GatewayCore,
    _batches,
)
from chalicelib.ecr.errors import (
    ImageNotFound,
    RegistryError,
    TagImmutable,
)
from chalicelib.ecr.models import (
    DeleteOutcome,
    ImageDetail,
    ManifestsRead,
    PutOutcome,
)
from chalicelib.oci.manifests import ACCEPTED_MEDIA_TYPES, Manifest, media_type_of


class ImageCalls(GatewayCore):
    @staticmethod
    def _image(repository: str, raw: dict[str, Any]) -> ImageDetail:
        return ImageDetail(
            repository=repository,
            digest=raw["imageDigest"],
            tags=raw.get("imageTags", []),
            pushed_at=raw["imagePushedAt"],
            size=raw.get("imageSizeInBytes"),
            media_type=raw.get("imageManifestMediaType"),
            artifact_media_type=raw.get("artifactMediaType"),
            subject_digest=raw.get("subjectManifestDigest"),
            status=raw.get("imageStatus", "ACTIVE"),
            last_pulled_at=raw.get("lastRecordedPullTime"),
        )

    def iter_images(
        self,
        repository: str,
        *,
        tag_status: Literal["TAGGED", "UNTAGGED", "ANY"] = "ANY",
        fresh: bool = False,
    ) -> Iterator[ImageDetail]:
        """Every image in the repository, a page of 1,000 a call. Within one event
        (`readcache.shared_reads`) a listing is read once unless `fresh` asks to read it again."""
        cache = readcache.active()
        if cache is None:
            yield from self._describe_pages(repository, tag_status)
            return
        key = (id(self), repository)
        kept = None if fresh else cache.listing(key, tag_status)
        if kept is None:
            kept = list(self._describe_pages(repository, tag_status))
            cache.listed(key, tag_status, kept)
        yield from kept

    def _describe_pages(self, repository: str, tag_status: str) -> Iterator[ImageDetail]:
        for page in self._pages(
            "describe_images",
            repositoryName=repository,
            maxResults=PAGE_SIZE,
            filter={"tagStatus": tag_status},
        ):
            yield from (self._image(repository, d) for d in page.get("imageDetails", []))

    def describe_image(
        self, repository: str, *, digest: str | None = None, tag: str | None = None
    ) -> ImageDetail:
        cache = readcache.active()
        key = (id(self), repository)
        kept = cache.image(key, digest, tag) if cache is not None else None
        if kept is not None:
            return kept
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag or ""}
        response = self._call("describe_images", repositoryName=repository, imageIds=[image_id])
        image = self._image(repository, response["imageDetails"][0])
        if cache is not None:
            cache.described(key, image)
        return image

    def get_manifests(
        self, repository: str, image_ids: Iterable[dict[str, str]]
    ) -> tuple[list[Manifest], list[dict[str, Any]]]:
        """Manifests by image id (digest or tag), 100 a call; returns (found, failures)."""
        ids = list(image_ids)
        cache = readcache.active()
        key = (id(self), repository)
        if cache is not None:
            # Manifests are content-addressed: one fetched by digest is never stale. Only asks
            # by digest alone are answered here (a tag asked for says where the tag is now).
            kept = cache.manifests.get(key, {})
            if ids and all(set(i) == {"imageDigest"} and i["imageDigest"] in kept for i in ids):
                return [kept[i["imageDigest"]] for i in ids], []
        answered, failures = self._batch_get_image(repository, ids)
        found = list({m.digest: m for _, m in answered}.values())  # a digest asked for twice
        return found, failures

    def read_manifests(
        self, repository: str, *, digests: Iterable[str] = (), tags: Iterable[str] = ()
    ) -> ManifestsRead:
        """Manifests by digest and by tag together, 100 ids a call. A tag that names no image is
        left out of `by_tag` (its failure, `ImageNotFound`, is expected); every other failure is
        returned."""
        ids = [{"imageDigest": d} for d in digests] + [{"imageTag": t} for t in tags]
        answered, failures = self._batch_get_image(repository, ids)
        read = ManifestsRead()
        for image_id, manifest in answered:
            if "imageTag" in image_id:
                read.by_tag[image_id["imageTag"]] = manifest
            else:
                read.by_digest[manifest.digest] = manifest
        read.failures = [
            f
            for f in failures
            if not ("imageTag" in f.get("imageId", {}) and f.get("failureCode") == "ImageNotFound")
        ]
        return read

    def _batch_get_image(
        self, repository: str, ids: list[dict[str, str]]
    ) -> tuple[list[tuple[dict[str, str], Manifest]], list[dict[str, Any]]]:
        """batch-get-image, 100 ids a call: each manifest found with the id ECR answered it for
        (the digest, and the tag when asked by tag), and the failures."""
        answered: list[tuple[dict[str, str], Manifest]] = []
        failures: list[dict[str, Any]] = []
        for batch in _batches(ids, BATCH_IMAGE_IDS):
            response = self._call(
                "batch_get_image",
                repositoryName=repository,
                imageIds=batch,
                acceptedMediaTypes=ACCEPTED_MEDIA_TYPES,
            )
            for image in response.get("images", []):
                body = image["imageManifest"]
                manifest = Manifest(
                    digest=image["imageId"]["imageDigest"],
                    media_type=image.get("imageManifestMediaType") or media_type_of(body) or "",
                    body=body,
                )
                answered.append((image["imageId"], manifest))
            failures.extend(response.get("failures", []))
        cache = readcache.active()
        if cache is not None:
            cache.fetched((id(self), repository), [m for _, m in answered])
        return answered, failures

    def iter_referrers(self, repository: str, digest: str) -> Iterator[str]:
        """The digests of the artifacts whose `subject` is `digest` (list-image-referrers, 50 a
        page). ECR lists only ACTIVE artifacts unless asked: those are the ones that can be
        pulled."""
        for page in self._pages(
            "list_image_referrers",
            repositoryName=repository,
            subjectId={"imageDigest": digest},
            maxResults=REFERRERS_PAGE,
        ):
            yield from (r["digest"] for r in page.get("referrers", []))

    def get_manifest(
        self, repository: str, *, digest: str | None = None, tag: str | None = None
    ) -> Manifest:
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag or ""}
        found, failures = self.get_manifests(repository, [image_id])
        if not found:
            reason = failures[0].get("failureReason", "") if failures else ""
            raise ImageNotFound(
                "ImageNotFoundException", reason or str(image_id), "batch_get_image"
            )
        return found[0]

    def put_manifest(
        self, repository: str, manifest: Manifest, tag: str | None = None
    ) -> PutOutcome:
        """put-image with the exact bytes. "Already exists" and "tag already here" are success."""
        params: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": manifest.body,
            "imageManifestMediaType": manifest.media_type,
            "imageDigest": manifest.digest,
        }
        if tag:
            params["imageTag"] = tag
        try:
            response = self._call("put_image", **params)
        except TagImmutable:
            current = self._digest_of_tag(repository, tag)
            if current == manifest.digest:
                return PutOutcome(status="unchanged", digest=manifest.digest, tag=tag)
            raise
        except RegistryError as error:
            if error.code == "ImageAlreadyExistsException":
                self._tag_landed(repository, manifest.digest, tag)
                return PutOutcome(status="unchanged", digest=manifest.digest, tag=tag)
            raise
        self._tag_landed(repository, manifest.digest, tag)
        return PutOutcome(
            status="created", digest=response["image"]["imageId"]["imageDigest"], tag=tag
        )

    def _tag_landed(self, repository: str, digest: str, tag: str | None) -> None:
        cache = readcache.active()
        if cache is not None and tag:
            cache.tag_put((id(self), repository), digest, tag)

    def _digest_of_tag(self, repository: str, tag: str | None) -> str | None:
        if not tag:
            return None
        try:
            return self.describe_image(repository, tag=tag).digest
        except ImageNotFound:
            return None

    def delete_images(self, repository: str, image_ids: Iterable[dict[str, str]]) -> DeleteOutcome:
        """batch-delete-image, 100 a call; per-image failures are returned, never dropped."""
        outcome = DeleteOutcome()
        cache = readcache.active()
        if cache is not None:
            cache.forget((id(self), repository))
        for batch in _batches(list(image_ids), BATCH_IMAGE_IDS):
            response = self._call("batch_delete_image", repositoryName=repository, imageIds=batch)
            outcome.deleted.extend(response.get("imageIds", []))
            outcome.failures.extend(response.get("failures", []))
        return outcome
