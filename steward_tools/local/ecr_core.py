"""The embedded ECR backend's core: its image model (`EmbeddedImage`, and what ECR derives from a
manifest), the lock every read-modify-write of repository state holds, and the lookups the calls
share. The calls live in one module per kind (`ecr_images`, `ecr_layers`), mixed into
`steward_tools.local.ecr.EmbeddedECRBackend`."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any, cast

import moto.ecr.urls
from moto.ecr.exceptions import InvalidParameterException
from moto.ecr.models import ECRBackend, Image, Repository, RepoTagMutability

from .ecr_errors import LayersNotFoundException, ReferencedImagesNotFoundException
from .validation import check_repository_name

INVALID_MANIFEST = (
    "Invalid parameter at 'ImageManifest' failed to satisfy constraint: 'Invalid JSON syntax'"
)


class EmbeddedImage(Image):
    """An image whose digest is the sha256 of its manifest bytes, with ECR's ImageDetail fields."""

    def __init__(
        self,
        *,
        account_id: str,
        registry_id: str,
        repository_name: str,
        manifest: str,
        media_type: str,
        digest: str,
        tag: str | None,
        size: int,
        artifact_media_type: str | None,
        subject_digest: str | None,
        blobs: frozenset[str],
        children: tuple[str, ...],
    ) -> None:
        super().__init__(
            account_id=account_id,
            tag=tag,  # type: ignore[arg-type]  # moto's hint says str; it handles None
            manifest=manifest,
            repository=repository_name,
            image_manifest_mediatype=media_type,
            digest=digest,
            registry_id=registry_id,
        )
        # moto stores whole epoch seconds; ECR keeps sub-second resolution.
        self.image_pushed_at = datetime.now(UTC)  # type: ignore[assignment]
        self.image_status = "ACTIVE"
        self.artifact_media_type = artifact_media_type
        self.subject_manifest_digest = subject_digest
        self.last_recorded_pull_time: datetime | None = None
        # Layer and config digests this manifest needs (what GetDownloadUrlForLayer may serve).
        self.referenced_blobs = blobs
        # Digests of the manifests an index lists (what BatchDeleteImage must protect).
        self.child_digests = children
        self._size = size

    def get_image_digest(self) -> str:
        return str(self._image_digest)

    def get_image_size_in_bytes(self) -> int:
        return self._size

    def remove_tag(self, tag: str) -> None:
        # moto leaves the removed tag as `image_tag` when it was the last one.
        if tag in self.image_tags:
            self.image_tags.remove(tag)
        self.image_tag = self.image_tags[-1] if self.image_tags else None  # type: ignore[assignment]


class _Analysis:
    def __init__(self) -> None:
        self.size = 0
        self.artifact_media_type: str | None = None
        self.subject_digest: str | None = None
        self.blobs: frozenset[str] = frozenset()
        self.children: tuple[str, ...] = ()


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Exclusion filters are ECR wildcards (only `*` is special), not regular expressions.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _descriptor_digest(descriptor: Any) -> str:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise InvalidParameterException(INVALID_MANIFEST)
    return str(descriptor["digest"])


class EmbeddedECRCore(ECRBackend):
    """moto's ECR with the lock, name check, lookups and manifest analysis every call shares."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        # moto's server is threaded; every read-modify-write of repository state holds this.
        self._lock = threading.RLock()

    @property
    def _url_module(self) -> Any:
        # moto derives the urls module from the backend's module name; ours lives elsewhere.

        return moto.ecr.urls

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _by_digest(repo: Repository, digest: str) -> EmbeddedImage | None:
        found = next((i for i in repo.images if i.get_image_digest() == digest), None)
        return cast("EmbeddedImage | None", found)

    @staticmethod
    def _by_tag(repo: Repository, tag: str) -> EmbeddedImage | None:
        found = next((i for i in repo.images if tag in i.image_tags), None)
        return cast("EmbeddedImage | None", found)

    @staticmethod
    def _referencing_indexes(repo: Repository, digest: str) -> list[str]:
        return [
            i.get_image_digest() for i in repo.images if digest in getattr(i, "child_digests", ())
        ]

    @staticmethod
    def tag_is_immutable(repo: Repository, tag: str) -> bool:
        """Whether `tag`, once set, may not move to another image in `repo`."""
        mode = repo.image_tag_mutability
        filters = repo.image_tag_mutability_exclusion_filters or []
        excluded = any(_wildcard(f["filter"]).fullmatch(tag) for f in filters)
        if mode == RepoTagMutability.IMMUTABLE:
            return True
        if mode == RepoTagMutability.IMMUTABLE_WITH_EXCLUSION:
            return not excluded
        if mode == RepoTagMutability.MUTABLE_WITH_EXCLUSION:
            return excluded
        return False

    def _get_repository(self, name: str, registry_id: str | None = None) -> Repository:
        check_repository_name(name)
        return super()._get_repository(name, registry_id)

    def _analyse(self, repo: Repository, manifest: dict[str, Any]) -> _Analysis:
        out = _Analysis()
        subject = manifest.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            out.subject_digest = subject["digest"]
        artifact_type = manifest.get("artifactType")

        if isinstance(manifest.get("manifests"), list):
            children = tuple(_descriptor_digest(d) for d in manifest["manifests"])
            found = {d: self._by_digest(repo, d) for d in dict.fromkeys(children)}
            missing = [d for d, image in found.items() if image is None]
            if missing:
                raise ReferencedImagesNotFoundException(
                    f"The manifest list references images that do not exist in the repository "
                    f"with name '{repo.name}' in the registry with id '{repo.registry_id}': "
                    f"[{', '.join(missing)}]"
                )
            # ECR: the size of a manifest list is the largest of its manifests.
            sizes = [i.get_image_size_in_bytes() for i in found.values() if i is not None]
            out.size = max(sizes, default=0)
            out.children = children
            out.artifact_media_type = artifact_type if isinstance(artifact_type, str) else None
            return out

        descriptors: list[dict[str, Any]] = []
        if "config" in manifest or "layers" in manifest:
            config = manifest.get("config")
            if config is not None:
                descriptors.append(config)
            layers = manifest.get("layers") or []
            if not isinstance(layers, list):
                raise InvalidParameterException(INVALID_MANIFEST)
            descriptors.extend(layers)
            if isinstance(artifact_type, str):
                out.artifact_media_type = artifact_type
            elif isinstance(config, dict) and isinstance(config.get("mediaType"), str):
                # ECR reports the config media type here for every image, not just artifacts.
                out.artifact_media_type = config["mediaType"]
        elif isinstance(manifest.get("fsLayers"), list):
            # Docker schema 1: layers are `blobSum`s and there is no config blob.
            descriptors = [
                {"digest": layer.get("blobSum") if isinstance(layer, dict) else None}
                for layer in manifest["fsLayers"]
            ]

        needed: dict[str, int] = {}
        for descriptor in descriptors:
            digest = _descriptor_digest(descriptor)
            if descriptor.get("urls"):
                # Foreign (non-distributable) layers live elsewhere; ECR does not require them.
                continue
            declared = descriptor.get("size")
            needed[digest] = int(declared) if isinstance(declared, int) else 0
        missing = [d for d in needed if d not in repo.layers]
        if missing:
            raise LayersNotFoundException(
                f"Layers with digests '[{', '.join(missing)}]' required for pushing image into "
                f"repository with name '{repo.name}' in the registry with id "
                f"'{repo.registry_id}' do not exist"
            )
        out.size = sum(repo.layers[d] for d in needed)
        out.blobs = frozenset(needed)
        return out
