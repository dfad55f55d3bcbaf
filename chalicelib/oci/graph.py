"""The image graph of one repository: indexes and their children, subjects and their referrers.

Built from describe-images data plus the manifests of the indexes only: a referrer names its
subject in `subjectManifestDigest` (OCI 1.1) or in cosign's `sha256-<hex>.sig|.att|.sbom` tag, so
only an index has to be fetched to learn its children. An index with its children and referrers
is one *unit*, known by its top-level digest (the root).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from chalicelib.oci.manifests import INDEX_MEDIA_TYPES, Manifest
from chalicelib.oci.referrers import cosign_subject


class StoredImage(Protocol):
    """What the graph needs of an image in a repository (describe-images data has it all)."""

    @property
    def digest(self) -> str: ...
    @property
    def media_type(self) -> str | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def subject_digest(self) -> str | None: ...


Image = TypeVar("Image", bound=StoredImage)


def is_index(image: StoredImage) -> bool:
    return image.media_type in INDEX_MEDIA_TYPES


def index_children(manifest: Manifest) -> list[str]:
    """The digests an index lists (raw JSON: no model per descriptor, it runs 100k times)."""
    document = json.loads(manifest.body)
    entries = document.get("manifests") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)
    ]


class ImageGraph(Generic[Image]):
    """Who points at whom among the images present in one repository."""

    def __init__(self, images: Iterable[Image], index_manifests: Mapping[str, Manifest]):
        self.images: dict[str, Image] = {image.digest: image for image in images}
        # index → children present; child → indexes present that list it
        self.children: dict[str, list[str]] = {}
        self.indexes_of: dict[str, list[str]] = {}
        # referrer → the subject it names (present or not); subject → referrers present
        self.subject_of: dict[str, str] = {}
        self.referrers: dict[str, list[str]] = {}
        # indexes whose manifest could not be read: their children are unknown
        self.unread_indexes: list[str] = []
        for digest, image in self.images.items():
            if is_index(image):
                manifest = index_manifests.get(digest)
                if manifest is None:
                    self.unread_indexes.append(digest)
                    continue
                present = [c for c in index_children(manifest) if c in self.images and c != digest]
                self.children[digest] = present
                for child in present:
                    self.indexes_of.setdefault(child, []).append(digest)
            subject = image.subject_digest or _cosign_subject_of(image)
            if subject and subject != digest:
                self.subject_of[digest] = subject
                if subject in self.images:
                    self.referrers.setdefault(subject, []).append(digest)

    def parents(self, digest: str) -> list[str]:
        """Present images this one depends on: the indexes listing it, the subject it refers to."""
        found = list(self.indexes_of.get(digest, ()))
        subject = self.subject_of.get(digest)
        if subject in self.images:
            found.append(subject)
        return found

    def dependents(self, digest: str) -> list[str]:
        """Present images that go with this one: its children, then its referrers."""
        return [*self.children.get(digest, ()), *self.referrers.get(digest, ())]

    def roots(self) -> list[str]:
        """Top-level images: nothing present lists them or is their subject."""
        images, indexes_of, subject_of = self.images, self.indexes_of, self.subject_of
        return [
            d
            for d in images
            if d not in indexes_of and (d not in subject_of or subject_of[d] not in images)
        ]

    def is_orphan(self, digest: str) -> bool:
        """A referrer (signature, attestation, SBOM) whose subject is no longer here."""
        subject = self.subject_of.get(digest)
        return subject is not None and subject not in self.images

    def members(self, root: str) -> list[str]:
        """The root and everything that goes with it (children, referrers, theirs), once each."""
        seen = {root}
        order = [root]
        stack = [root]
        while stack:
            for dependent in self.dependents(stack.pop()):
                if dependent not in seen:
                    seen.add(dependent)
                    order.append(dependent)
                    stack.append(dependent)
        return order


def _cosign_subject_of(image: StoredImage) -> str | None:
    for tag in image.tags:
        subject = cosign_subject(tag)
        if subject:
            return subject
    return None
