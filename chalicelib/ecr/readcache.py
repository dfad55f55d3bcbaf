"""One read of a repository per event, shared by every reaction to it.

Tagging, the gate and replication all react to one push, and each used to read the image and
the repository for itself (a converged push cost 4 ECR calls, a tagged push described the image
twice). Inside `shared_reads()` the gateway keeps what it read: the repository, its image
listings, the images it described, and the manifests it fetched (content-addressed, so they never
go stale). Its own writes update what it keeps (a put tag moves in the listing; a deletion drops
the repository's listings), so a later reaction sees the state the earlier one left. A reaction
that must see what others wrote meanwhile asks for a fresh read (`iter_images(fresh=True)`), which
replaces what was kept.

Outside `shared_reads()` nothing is kept: a scheduled sweep or a batch job always reads anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chalicelib.ecr.models import ImageDetail, RepositoryInfo
from chalicelib.oci.manifests import Manifest

# (gateway, repository): a gateway is one registry (account, region, credentials).
_Key = tuple[int, str]


class ReadCache:
    """What one event's reactions have read, per gateway and repository."""

    def __init__(self) -> None:
        self.repositories: dict[_Key, RepositoryInfo] = {}
        # tag status ("ANY" or "TAGGED") -> the listing, in describe-images order
        self.listings: dict[_Key, dict[str, list[ImageDetail]]] = {}
        self.images: dict[_Key, dict[str, ImageDetail]] = {}
        self.manifests: dict[_Key, dict[str, Manifest]] = {}

    # reads ------------------------------------------------------------------------------------

    def listing(self, key: _Key, tag_status: str) -> list[ImageDetail] | None:
        listings = self.listings.get(key, {})
        if tag_status in listings:
            return list(listings[tag_status])
        if tag_status == "TAGGED" and "ANY" in listings:
            return [i for i in listings["ANY"] if i.tags]
        if tag_status == "UNTAGGED" and "ANY" in listings:
            return [i for i in listings["ANY"] if not i.tags]
        return None

    def image(self, key: _Key, digest: str | None, tag: str | None) -> ImageDetail | None:
        images = self.images.get(key, {})
        if digest:
            return images.get(digest)
        return next((i for i in images.values() if tag in i.tags), None) if tag else None

    # what was read ----------------------------------------------------------------------------

    def listed(self, key: _Key, tag_status: str, images: list[ImageDetail]) -> None:
        # A fresh listing supersedes every older one of the repository.
        self.listings[key] = {tag_status: list(images)}
        known = self.images.setdefault(key, {})
        for image in images:
            known[image.digest] = image
        if tag_status in ("ANY", "TAGGED"):
            # Tags move: an image described earlier but missing from a fresh tagged listing no
            # longer holds the tags it was described with.
            listed = {i.digest for i in images}
            for digest, image in list(known.items()):
                if digest not in listed and image.tags:
                    del known[digest]

    def described(self, key: _Key, image: ImageDetail) -> None:
        self.images.setdefault(key, {})[image.digest] = image

    def fetched(self, key: _Key, manifests: list[Manifest]) -> None:
        kept = self.manifests.setdefault(key, {})
        for manifest in manifests:
            kept[manifest.digest] = manifest

    # what was written -------------------------------------------------------------------------

    def tag_put(self, key: _Key, digest: str, tag: str) -> None:
        """`tag` now points at `digest`: move it in everything kept."""
        images = self.images.get(key, {})
        for held in list(images.values()):
            if tag in held.tags and held.digest != digest:
                images[held.digest] = held.model_copy(
                    update={"tags": [t for t in held.tags if t != tag]}
                )
        target = images.get(digest)
        if target is not None and tag not in target.tags:
            images[digest] = target.model_copy(update={"tags": [*target.tags, tag]})
        listings = self.listings.get(key)
        if not listings:
            return
        if target is None:
            # The image was never read: its listing entry cannot be made up.
            del self.listings[key]
            return
        for status, listing in listings.items():
            updated = [images.get(i.digest, i) for i in listing]
            if status == "TAGGED":
                updated = [i for i in updated if i.tags]
                if all(i.digest != digest for i in updated):
                    updated.append(images[digest])
            listings[status] = updated

    def forget(self, key: _Key) -> None:
        """After a deletion: what was read of the repository's images may be gone."""
        self.listings.pop(key, None)
        self.images.pop(key, None)


_current: ContextVar[ReadCache | None] = ContextVar("ecr_read_cache", default=None)


def active() -> ReadCache | None:
    return _current.get()


@contextmanager
def shared_reads() -> Iterator[ReadCache]:
    """Keep and share ECR reads for the duration of the block (one event)."""
    token = _current.set(ReadCache())
    try:
        yield _current.get() or ReadCache()
    finally:
        _current.reset(token)
