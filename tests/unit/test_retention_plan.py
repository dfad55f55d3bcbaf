"""The retention planner on describe-images data: rules, precedence, the graph, batching."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.ecr.models import ImageDetail
from chalicelib.oci.manifests import OCI_INDEX, OCI_MANIFEST, Manifest, digest_of
from chalicelib.policy.retention import RetentionSettings
from chalicelib.retention.apply import deletion_batches
from chalicelib.retention.plan import InUse, plan_retention

REPO = "team/app"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def digest(name: str) -> str:
    return digest_of(name.encode())


def image(name: str, days_old: float, *tags: str, **fields: Any) -> ImageDetail:
    return ImageDetail(
        repository=REPO,
        digest=digest(name),
        tags=list(tags),
        pushed_at=NOW - timedelta(days=days_old),
        media_type=fields.pop("media_type", OCI_MANIFEST),
        **fields,
    )


def index(
    name: str, days_old: float, children: list[str], *tags: str
) -> tuple[ImageDetail, Manifest]:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest(c), "size": 1} for c in children
            ],
        }
    )
    detail = image(name, days_old, *tags, media_type=OCI_INDEX)
    return detail, Manifest(digest=detail.digest, media_type=OCI_INDEX, body=body)


def plan(
    rules: list[dict[str, Any]],
    images: list[ImageDetail],
    manifests: dict[str, Manifest] | None = None,
    **kw: Any,
) -> Any:
    settings = RetentionSettings.model_validate(
        {"rules": rules, "max_deletion_share": 1, **kw.pop("settings", {})}
    )
    return plan_retention(settings, REPO, images, manifests or {}, NOW, **kw)


def actions(p: Any) -> dict[str, str]:
    names = {digest(n): n for n in NAMES}
    return {names.get(d.digest, d.digest): d.action for d in p.decisions}


NAMES = [f"i{n}" for n in range(20)] + ["idx", "idx2", "a", "b", "c", "sig", "sbom", "orphan"]


def test_keep_newest_per_pattern_deletes_the_rest_of_that_pattern_only() -> None:
    images = [image(f"i{n}", 10 - n, f"v{n}") for n in range(5)] + [image("i9", 30, "dev-1")]
    p = plan(
        [{"kind": "keep_newest", "repositories": ["team/*"], "tags": "v*", "count": 2}], images
    )
    assert actions(p) == {
        "i0": "delete",
        "i1": "delete",
        "i2": "delete",
        "i3": "keep",
        "i4": "keep",
        "i9": "keep",
    }
    assert p.decision(digest("i4")).reason == "rules[0] keep_newest: #1 of the newest 2 v*"
    assert p.decision(digest("i1")).reason == "rules[0] keep_newest: beyond the newest 2 v* (#4)"
    assert p.decision(digest("i9")).reason == "no rule expires it"


def test_keep_semver_beats_expiry_and_ranks_by_version_not_push_time() -> None:
    images = [
        image("i0", 40, "2.0.0"),
        image("i1", 20, "1.9.0"),
        image("i2", 10, "1.10.0"),
        image("i3", 5, "3.0.0-rc.1"),
    ]
    p = plan(
        [
            {"kind": "keep_semver", "repositories": ["*"], "count": 2},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "*", "older_than_days": 1},
        ],
        images,
    )
    assert actions(p) == {"i0": "keep", "i1": "delete", "i2": "keep", "i3": "delete"}


def test_a_kept_index_keeps_its_children_and_referrers_and_orphans_go() -> None:
    idx, idx_manifest = index("idx", 50, ["a", "b"], "1.0.0")
    idx2, idx2_manifest = index("idx2", 40, ["b", "c"], "pr-1")
    sig = image("sig", 40, f"sha256-{idx.digest[7:]}.sig")
    sbom = image("sbom", 40, subject_digest=digest("idx2"))
    ghost = digest("gone")
    orphan = image("orphan", 1, f"sha256-{ghost[7:]}.sig")
    images = [idx, idx2, image("a", 50), image("b", 50), image("c", 40), sig, sbom, orphan]
    p = plan(
        [
            {"kind": "always_keep", "repositories": ["*"], "tags": "1.*"},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1},
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 1},
        ],
        images,
        {idx.digest: idx_manifest, idx2.digest: idx2_manifest},
    )
    assert actions(p) == {
        "idx": "keep",
        "a": "keep",
        "b": "keep",
        "sig": "keep",
        "idx2": "delete",
        "c": "delete",
        "sbom": "delete",
        "orphan": "delete",
    }
    assert p.decision(digest("b")).reason.startswith("child of ")
    assert ", kept: rules[0] always_keep: tag 1.0.0 matches 1.*" in p.decision(digest("b")).reason
    # Untagged children are not "untagged images": they go with their index.
    assert p.decision(digest("a")).rule is None
    assert p.decision(digest("orphan")).reason.startswith("orphan: its subject")
    batches = deletion_batches(p)
    position = {d: n for n, batch in enumerate(batches) for d in batch}
    assert position[digest("idx2")] < position[digest("c")]
    assert position[digest("idx2")] < position[digest("sbom")]


def test_in_use_by_a_child_digest_keeps_the_whole_unit() -> None:
    idx, manifest = index("idx", 50, ["a"], "pr-1")
    p = plan(
        [{"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1}],
        [idx, image("a", 50)],
        {idx.digest: manifest},
        in_use=InUse(by_digest={digest("a"): "running ECS task t-1"}),
    )
    assert actions(p) == {"idx": "keep", "a": "keep"}
    assert p.decision(idx.digest).protection == "in use by digest: running ECS task t-1"


def test_batches_hold_100_and_never_put_a_child_with_its_index() -> None:
    images: list[ImageDetail] = []
    manifests: dict[str, Manifest] = {}
    for n in range(150):
        detail, manifest = index(f"x{n}", 10, [f"x{n}-c"], f"pr-{n}")
        images += [detail, image(f"x{n}-c", 10)]
        manifests[detail.digest] = manifest
    p = plan(
        [{"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1}],
        images,
        manifests,
    )
    batches = deletion_batches(p)
    assert [len(b) for b in batches] == [100, 100, 100]
    seen: set[str] = set()
    for batch in batches:
        for d in batch:
            assert all(parent in seen for parent in p.after.get(d, ())), "child before its index"
        seen.update(batch)


def test_grace_period_counts_from_the_first_mark() -> None:
    images = [image("i0", 10, "pr-1")]
    rules = [{"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1}]
    fresh = plan(rules, images, settings={"grace_period_days": 3})
    assert fresh.decision(digest("i0")).deferred == (
        "grace period: first marked 2026-06-01 00:00, deletable after 2026-06-04 00:00"
    )
    assert fresh.marked_units() == {digest("i0")}
    due = plan(
        rules,
        images,
        settings={"grace_period_days": 3},
        marks={digest("i0"): NOW - timedelta(days=3)},
    )
    assert [d.digest for d in due.deletions] == [digest("i0")]


def test_keep_semver_follows_semver_precedence_with_prereleases() -> None:
    tags = ["1.0.0-alpha.1", "1.0.0-beta.11", "1.0.0-beta.2", "1.0.0-rc.1", "0.9.9"]
    images = [image(f"i{n}", 10 - n, tag) for n, tag in enumerate(tags)]
    p = plan(
        [
            {"kind": "keep_semver", "repositories": ["*"], "count": 2, "prereleases": True},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "*", "older_than_days": 1},
        ],
        images,
    )
    assert actions(p) == {
        "i0": "delete",
        "i1": "keep",
        "i2": "delete",
        "i3": "keep",
        "i4": "delete",
    }


# --- caps, dry runs, protections and every reason, exactly ------------------------------------

UNTAGGED_AFTER_1 = [{"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 1}]


def test_the_cap_stops_a_run_that_would_delete_too_much() -> None:
    images = [image(f"i{n}", 10 + n) for n in range(4)] + [image("i9", 1, "v1")]
    p = plan(UNTAGGED_AFTER_1, images, settings={"max_deletions": 3})
    why = (
        "cap: this run would delete 4 of 5 images; the cap is 3 "
        "(max_deletions 3, max_deletion_share 1)"
    )
    assert (p.cap, p.capped, p.images, p.repository, p.now) == (3, why, 5, REPO, NOW)
    assert p.deletions == []
    assert {d.deferred for d in p.decisions if d.action == "delete"} == {why}
    assert p.decision(digest("i9")).deferred is None
    # The share counts too: half of 5 images is 2.
    shared = plan(UNTAGGED_AFTER_1, images, settings={"max_deletion_share": 0.5})
    assert shared.cap == 2 and shared.capped is not None
    assert "(max_deletions 1000, max_deletion_share 0.5)" in shared.capped
    # Within the cap nothing is held back.
    assert plan(UNTAGGED_AFTER_1, images, settings={"max_deletions": 4}).capped is None


def test_oldest_first_deletes_whole_units_up_to_the_cap() -> None:
    idx, manifest = index("idx", 40, ["a"])
    images = [idx, image("a", 40), image("i1", 30), image("i2", 20), image("i9", 1, "v1")]
    p = plan(
        UNTAGGED_AFTER_1,
        images,
        {idx.digest: manifest},
        settings={"max_deletions": 3, "on_cap": "oldest_first"},
    )
    # The oldest unit (an index and its child) and the next image fit; the newest waits.
    assert sorted(d.digest for d in p.deletions) == sorted([idx.digest, digest("a"), digest("i1")])
    assert p.decision(digest("i2")).deferred == p.capped
    assert p.marked_units() == {idx.digest, digest("i1"), digest("i2")}


@pytest.mark.parametrize(
    ("rules", "kw", "why"),
    [
        (UNTAGGED_AFTER_1, {"dry_run": True}, "dry run"),
        (UNTAGGED_AFTER_1, {"settings": {"dry_run": True}}, "dry run"),
        (
            [{**UNTAGGED_AFTER_1[0], "dry_run": True, "description": "try it"}],
            {},
            "dry run (rules[0] expire_untagged (try it))",
        ),
    ],
)
def test_a_dry_run_defers_every_deletion_and_says_which(
    rules: list[dict[str, Any]], kw: dict[str, Any], why: str
) -> None:
    p = plan(rules, [image("i0", 10), image("i1", 10, "v1")], **kw)
    assert p.decision(digest("i0")).action == "delete"
    assert p.decision(digest("i0")).deferred == why
    assert p.decision(digest("i1")).deferred is None
    assert p.deletions == []


def test_a_dry_rule_defers_only_its_own_deletions() -> None:
    rules = [
        {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1},
        {**UNTAGGED_AFTER_1[0], "dry_run": True},
    ]
    p = plan(rules, [image("i0", 10), image("i1", 10, "pr-1")])
    assert p.decision(digest("i0")).deferred == "dry run (rules[1] expire_untagged)"
    assert [d.digest for d in p.deletions] == [digest("i1")]


def test_in_use_tags_and_gate_promotions_protect_with_their_source() -> None:
    images = [image(f"i{n}", 10, f"pr-{n}") for n in range(5)]
    rules = [{"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1}]
    p = plan(
        rules,
        images,
        in_use=InUse(by_tag={"pr-0": "Lambda function f", "gone": "ECS task t"}),
        promoted={
            digest("i1"): NOW - timedelta(days=3),  # exactly at the horizon: within
            digest("i2"): NOW - timedelta(days=3, seconds=1),
            digest("elsewhere"): NOW,
        },
        settings={"in_use": {"gate_promoted_days": 3}},
    )
    assert p.decision(digest("i0")).protection == "in use as :pr-0: Lambda function f"
    assert p.decision(digest("i0")).reason == "in use as :pr-0: Lambda function f"
    assert p.decision(digest("i1")).protection == "gate promoted 2026-05-29 00:00 (within 3 days)"
    assert actions(p) == {
        "i0": "keep",
        "i1": "keep",
        "i2": "delete",
        "i3": "delete",
        "i4": "delete",
    }
    # With gate_promoted_days 0 (the default) promotions protect nothing.
    off = plan(rules, images, promoted={digest("i1"): NOW})
    assert off.decision(digest("i1")).action == "delete"


def test_expiry_is_strictly_older_than_and_says_how_old() -> None:
    rules = [
        {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 2},
        {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 2},
    ]
    second = 1 / 86400
    images = [
        image("i0", 2, "pr-0"),
        image("i1", 2 + second, "pr-1", "other"),
        image("i2", 2),
        image("i3", 3),
    ]
    p = plan(rules, images)
    assert actions(p) == {"i0": "keep", "i1": "delete", "i2": "keep", "i3": "delete"}
    assert p.decision(digest("i1")).reason == (
        "rules[0] expire_tagged: tag pr-1 matches pr-*, pushed 2d ago (> 2d)"
    )
    assert p.decision(digest("i1")).rule == "rules[0] expire_tagged"
    assert (
        p.decision(digest("i3")).reason
        == "rules[1] expire_untagged: untagged, pushed 3d ago (> 2d)"
    )
    hours = plan([{**rules[1], "older_than_days": 0}], [image("i4", 5 / 24)])
    assert hours.decision(digest("i4")).reason == (
        "rules[0] expire_untagged: untagged, pushed 5h ago (> 0d)"
    )


def test_keep_semver_names_each_release_kept_and_prefers_releases() -> None:
    images = [
        image("i0", 9, "latest", "2.0.0"),
        image("i1", 8, "2.0.0-rc.1"),
        image("i2", 7, "v1.5.0", "1.5.0"),
        image("i3", 6, "1.0.0-2"),
        image("i4", 5, "1.0.0-alpha"),
    ]
    p = plan(
        [
            {"kind": "keep_semver", "repositories": ["*"], "count": 3, "prereleases": True},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "*", "older_than_days": 1},
        ],
        images,
    )
    keep = "rules[0] keep_semver: release"
    # A release outranks its own prerelease; equal versions keep the first tag.
    assert p.decision(digest("i0")).reason == f"{keep} 2.0.0 is #1 of the top 3"
    assert p.decision(digest("i1")).reason == f"{keep} 2.0.0-rc.1 is #2 of the top 3"
    assert p.decision(digest("i2")).reason == f"{keep} v1.5.0 is #3 of the top 3"
    assert [actions(p)[f"i{n}"] for n in range(5)] == ["keep"] * 3 + ["delete"] * 2
    # Among prereleases an alphanumeric identifier outranks a numeric one.
    pre = plan(
        [
            {"kind": "keep_semver", "repositories": ["*"], "count": 1, "prereleases": True},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "*", "older_than_days": 1},
        ],
        images[3:],
    )
    assert actions(pre) == {"i3": "delete", "i4": "keep"}


def test_members_say_whose_fate_they_share_and_orphans_name_their_subject() -> None:
    idx, manifest = index("idx", 40, ["a"], "pr-1")
    kept, kept_manifest = index("idx2", 40, ["b"], "1.0.0")
    ghost = digest("gone")
    orphan = image("orphan", 1, f"sha256-{ghost[7:]}.sig")
    sbom = image("sbom", 40, subject_digest=kept.digest)
    unread = image("c", 40, "pr-2", media_type=OCI_INDEX)
    p = plan(
        [
            {"kind": "always_keep", "repositories": ["*"], "tags": "1.*"},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1},
        ],
        [idx, image("a", 40), kept, image("b", 40), orphan, sbom, unread],
        {idx.digest: manifest, kept.digest: kept_manifest},
    )
    child = p.decision(digest("a"))
    assert (child.action, child.role, child.unit, child.rule) == (
        "delete",
        "child",
        idx.digest,
        "rules[1] expire_tagged",
    )
    assert child.reason == f"child of {idx.digest[7:19]}, deleted with it"
    kept_child = p.decision(digest("b"))
    assert (kept_child.action, kept_child.unit, kept_child.rule) == ("keep", kept.digest, None)
    assert kept_child.reason == (
        f"child of {kept.digest[7:19]}, kept: rules[0] always_keep: tag 1.0.0 matches 1.*"
    )
    assert p.decision(sbom.digest).reason == (
        f"referrer of {kept.digest[7:19]}, kept: rules[0] always_keep: tag 1.0.0 matches 1.*"
    )
    assert p.decision(sbom.digest).role == "referrer"
    assert p.decision(orphan.digest).reason == f"orphan: its subject {ghost[7:19]} is gone"
    assert p.decision(idx.digest).role == "index"
    assert p.notes == [
        "1 index manifests could not be read; their children look untagged, and ECR refuses "
        "to delete a child its index still lists"
    ]
    assert p.marked_units() == {idx.digest, orphan.digest, unread.digest}
