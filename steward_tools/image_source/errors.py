"""Why a local image source cannot be read: unreadable, corrupt, or not saying which image."""

from __future__ import annotations


class ImageSourceError(Exception):
    """The source is not a readable image, or does not hold the image asked for."""


class CorruptBlob(ImageSourceError):
    """A blob's bytes do not match the digest or size its descriptor promises."""

    def __init__(self, digest: str, location: str, problem: str) -> None:
        super().__init__(f"corrupt blob {digest} at {location}: {problem}")
        self.digest = digest
        self.location = location


class AmbiguousImage(ImageSourceError):
    """The source holds several images and nothing says which one is meant."""

    def __init__(self, source: object, candidates: list[str], ref: str | None) -> None:
        listed = "\n  ".join(candidates)
        why = f"{ref!r} matches several images" if ref else "it holds several images"
        super().__init__(f"{source}: {why}; pick one with --ref NAME:\n  {listed}")
        self.candidates = candidates
