"""The per-event read cache: what the gateway keeps is what ECR holds after its own writes."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.ecr.models import ImageDetail
from chalicelib.ecr.readcache import ReadCache, active, shared_reads

KEY = (1, "team/app")
WHEN = datetime(2026, 11, 29, tzinfo=UTC)


def image(digest: str, *tags: str) -> ImageDetail:
    return ImageDetail(repository="team/app", digest=digest, tags=list(tags), pushed_at=WHEN)


def test_a_put_tag_moves_in_the_listing_and_an_emptied_image_leaves_the_tagged_listing() -> None:
    cache = ReadCache()
    cache.listed(KEY, "TAGGED", [image("sha256:a", "1.0.0", "latest"), image("sha256:b", "1.1.0")])
    cache.tag_put(KEY, "sha256:b", "latest")
    listing = {i.digest: set(i.tags) for i in cache.listing(KEY, "TAGGED") or []}
    assert listing == {"sha256:a": {"1.0.0"}, "sha256:b": {"1.1.0", "latest"}}
    assert cache.image(KEY, None, "latest") == cache.image(KEY, "sha256:b", None)

    cache.listed(KEY, "TAGGED", [image("sha256:a", "1.0.0")])
    cache.tag_put(KEY, "sha256:b", "x")  # b was never read in this listing
    assert cache.listing(KEY, "TAGGED") is None  # dropped rather than made up


def test_a_full_listing_answers_for_tagged_and_a_deletion_forgets() -> None:
    cache = ReadCache()
    cache.listed(KEY, "ANY", [image("sha256:a", "1.0.0"), image("sha256:c")])
    assert [i.digest for i in cache.listing(KEY, "TAGGED") or []] == ["sha256:a"]
    assert [i.digest for i in cache.listing(KEY, "UNTAGGED") or []] == ["sha256:c"]
    cache.forget(KEY)
    assert cache.listing(KEY, "ANY") is None and cache.image(KEY, "sha256:a", None) is None


def test_reads_are_kept_only_inside_an_event() -> None:
    assert active() is None
    with shared_reads() as cache:
        assert active() is cache
    assert active() is None
