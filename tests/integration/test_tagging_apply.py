"""Applying tagging plans against the embedded ECR endpoint."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.settings import get_settings
from chalicelib.oci.manifests import OCI_INDEX
from chalicelib.policy.tagging import TaggingRule
from chalicelib.tagging.apply import TaggingResult, apply_tagging_plan
from chalicelib.tagging.plan import plan_tags
from chalicelib.tagging.react import tag_pushed_image
from chalicelib.tagging.writers import AliasWriters
from steward_tools.samples import build_image, build_index
from tests.imagefactory import push_built

REPO = "team-a/app"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
READS = ("describe_repositories", "describe_images")
ALIASES = TaggingRule(repositories=["team-a/*"], semver_aliases=True, latest=True)


def tags_by_digest(registry: Registry, repository: str = REPO) -> dict[str, list[str]]:
    return {i.digest: sorted(i.tags) for i in registry.iter_images(repository, tag_status="TAGGED")}


def outcomes(result: TaggingResult) -> dict[str, str]:
    return {t.tag: t.outcome for t in result.tags}


def writes(calls: Counter[str]) -> int:
    return sum(n for operation, n in calls.items() if operation not in READS)


def push(registry: Registry, tag: str, seed: int, repository: str = REPO) -> str:
    return push_built(registry, build_image([256], seed=seed), repository, tag)


def on_push(
    registry: Registry, rules: list[TaggingRule], digest: str, tag: str | None
) -> TaggingResult:
    return tag_pushed_image(registry, rules, REPO, digest, tag, now=NOW)


@pytest.fixture
def repo(registry: Registry) -> Registry:
    registry.create_repository(REPO)
    return registry


def test_release_push_gets_its_aliases_on_the_same_digest(repo: Registry) -> None:
    digest = push(repo, "1.2.3", seed=1)
    before = repo.get_manifest(REPO, digest=digest)
    repo.calls.clear()

    result = on_push(repo, [ALIASES], digest, "1.2.3")

    assert outcomes(result) == {"1.2": "applied", "1": "applied", "latest": "applied"}
    assert tags_by_digest(repo) == {digest: ["1", "1.2", "1.2.3", "latest"]}
    for alias in ("1.2", "1", "latest"):
        assert repo.get_manifest(REPO, tag=alias) == before  # same bytes, type and digest


def test_ecr_calls_per_retagged_tag(repo: Registry) -> None:
    digest = push(repo, "1.2.3", seed=1)
    repo.calls.clear()

    result = on_push(repo, [ALIASES], digest, "1.2.3")

    retagged = len(result.tags_with("applied"))
    assert retagged == 3
    # One listing, one batch-get for every manifest, one put per tag, and the fresh listing
    # that confirms the aliases (convergence). New tags need no describe-repositories: only a
    # tag that moves depends on the repository's tag mutability.
    assert repo.calls == Counter(describe_images=2, batch_get_image=1, put_image=3)
    assert writes(repo.calls) <= 2 * retagged


def test_applying_the_same_plan_twice_puts_nothing_the_second_time(repo: Registry) -> None:
    old = push(repo, "1.2.3", seed=1)
    on_push(repo, [ALIASES], old, "1.2.3")
    new = push(repo, "1.2.4", seed=2)
    info = repo.describe_repository(REPO)
    images = list(repo.iter_images(REPO, tag_status="TAGGED"))
    plan = plan_tags([ALIASES], info, images, new, "1.2.4", NOW)
    assert [(d.tag, d.action, d.current_digest) for d in plan.decisions] == [
        ("1.2", "put", old),
        ("1", "put", old),
        ("latest", "put", old),
    ]

    first = apply_tagging_plan(repo, plan)
    repo.calls.clear()
    second = apply_tagging_plan(repo, plan)

    assert set(first.tags_with("applied")) == {"1.2", "1", "latest"}
    assert set(second.tags_with("unchanged")) == {"1.2", "1", "latest"}
    assert repo.calls == Counter(batch_get_image=1)
    assert tags_by_digest(repo) == {old: ["1.2.3"], new: ["1", "1.2", "1.2.4", "latest"]}


def test_a_duplicate_event_reads_and_writes_nothing(repo: Registry) -> None:
    digest = push(repo, "1.2.3", seed=1)
    on_push(repo, [ALIASES], digest, "1.2.3")
    repo.calls.clear()

    again = on_push(repo, [ALIASES], digest, "1.2.3")

    assert outcomes(again) == {"1.2": "unchanged", "1": "unchanged", "latest": "unchanged"}
    assert writes(repo.calls) == 0


def test_oci_index_is_retagged_with_its_media_type_and_digest(repo: Registry) -> None:
    index = build_index(
        [build_image([128], seed=3), build_image([128], seed=4, architecture="arm64")]
    )
    digest = push_built(repo, index, REPO, "2.0.0")

    result = on_push(repo, [ALIASES], digest, "2.0.0")

    assert outcomes(result) == {"2.0": "applied", "2": "applied", "latest": "applied"}
    latest = repo.get_manifest(REPO, tag="latest")
    assert (latest.digest, latest.media_type, latest.body) == (
        digest,
        OCI_INDEX,
        index.manifest.body,
    )
    (detail,) = [i for i in repo.iter_images(REPO, tag_status="TAGGED") if i.digest == digest]
    assert detail.media_type == OCI_INDEX
    assert sorted(detail.tags) == ["2", "2.0", "2.0.0", "latest"]


def test_immutable_repository_reports_blocked_and_puts_nothing(registry: Registry) -> None:
    registry.create_repository(REPO, tag_mutability="IMMUTABLE")
    old = push(registry, "1.2.3", seed=1)
    # New tags are allowed in an immutable repository: the first release gets its aliases.
    assert set(on_push(registry, [ALIASES], old, "1.2.3").tags_with("applied")) == {
        "1.2",
        "1",
        "latest",
    }
    new = push(registry, "1.2.4", seed=2)
    registry.calls.clear()

    result = on_push(registry, [ALIASES], new, "1.2.4")

    assert outcomes(result) == {"1.2": "blocked", "1": "blocked", "latest": "blocked"}
    assert result.tags[0].reason.startswith(
        f"blocked: repository is IMMUTABLE and 1.2 points at {old[:19]}"
    )
    assert writes(registry.calls) == 0
    assert tags_by_digest(registry) == {old: ["1", "1.2", "1.2.3", "latest"], new: ["1.2.4"]}


def test_tag_made_immutable_after_planning_comes_back_blocked(registry: Registry) -> None:
    info = registry.create_repository(REPO, tag_mutability="IMMUTABLE")
    old = push(registry, "1.2.3", seed=1)
    on_push(registry, [ALIASES], old, "1.2.3")
    new = push(registry, "1.2.4", seed=2)
    # Plan as if the repository were still mutable: ECR refuses at put time (a race).
    stale = info.model_copy(update={"tag_mutability": "MUTABLE"})
    images = list(registry.iter_images(REPO, tag_status="TAGGED"))
    plan = plan_tags([ALIASES], stale, images, new, "1.2.4", NOW)
    assert [d.action for d in plan.decisions] == ["put", "put", "put"]
    registry.calls.clear()

    result = apply_tagging_plan(registry, plan)

    assert outcomes(result) == {"1.2": "blocked", "1": "blocked", "latest": "blocked"}
    assert "cannot be overwritten because the repository is immutable" in result.tags[0].reason
    assert registry.calls["put_image"] == 3  # one attempt each, never retried
    assert tags_by_digest(registry)[old] == ["1", "1.2", "1.2.3", "latest"]


def test_dry_run_plans_and_applies_nothing(repo: Registry) -> None:
    digest = push(repo, "1.2.3", seed=1)
    repo.calls.clear()

    result = tag_pushed_image(repo, [ALIASES], REPO, digest, "1.2.3", now=NOW, dry_run=True)

    assert result.dry_run
    assert outcomes(result) == {"1.2": "planned", "1": "planned", "latest": "planned"}
    assert result.tags[0].reason == "1.2 → 1.2.3: highest 1.2.x release"
    assert writes(repo.calls) == 0
    assert tags_by_digest(repo) == {digest: ["1.2.3"]}


def test_events_out_of_order_converge(repo: Registry) -> None:
    higher = push(repo, "1.4.5", seed=1)
    lower = push(repo, "1.4.2", seed=2)
    # 1.4.2's event is handled first, 1.4.5's later, then 1.4.2's again.
    on_push(repo, [ALIASES], lower, "1.4.2")
    on_push(repo, [ALIASES], higher, "1.4.5")
    last = on_push(repo, [ALIASES], lower, "1.4.2")

    assert outcomes(last) == {"1.4": "unchanged", "1": "unchanged", "latest": "unchanged"}
    assert tags_by_digest(repo) == {higher: ["1", "1.4", "1.4.5", "latest"], lower: ["1.4.2"]}


def test_echo_events_of_the_applied_tags_derive_nothing(repo: Registry) -> None:
    rules = [
        TaggingRule(
            repositories=["*"],
            templates=["sha-{digest:12}", "{tag}-{date}"],
            copies=[{"from_regex": "(.*)", "to": "copy-{1}"}],
        )
    ]
    digest = push(repo, "main", seed=1)
    pushed_on = next(repo.iter_images(REPO, tag_status="TAGGED")).pushed_at.astimezone(UTC)
    first = on_push(repo, rules, digest, "main")
    put = first.tags_with("applied")
    assert put == [f"sha-{digest[7:19]}", f"main-{pushed_on:%Y%m%d}", "copy-main"]

    # ECR emits a PUSH event for each of those puts: none may seed another tag.
    for tag in put:
        echo = on_push(repo, rules, digest, tag)
        assert echo.tags == []
        assert "is derived from" in echo.notes[0]
    assert tags_by_digest(repo) == {digest: sorted(["main", *put])}


def test_image_deleted_before_apply_is_reported_not_raised(repo: Registry) -> None:
    digest = push(repo, "1.2.3", seed=1)
    info = repo.describe_repository(REPO)
    plan = plan_tags(
        [ALIASES], info, list(repo.iter_images(REPO, tag_status="TAGGED")), digest, "1.2.3", NOW
    )
    repo.delete_images(REPO, [{"imageDigest": digest}])

    result = apply_tagging_plan(repo, plan)

    assert set(outcomes(result).values()) == {"blocked"}
    assert "no longer in the repository" in result.tags[0].reason


def test_digest_only_push_makes_no_call(repo: Registry) -> None:
    digest = push_built(repo, build_image([64], seed=9), REPO)
    repo.calls.clear()

    result = on_push(repo, [ALIASES], digest, None)

    assert result.tags == []
    assert repo.calls == Counter()


def test_a_write_raced_by_another_writer_is_read_again_and_corrected(repo: Registry) -> None:
    """A (2.4.0) reads; meanwhile 2.4.1 is pushed and its reaction puts `2.4` on it; then A
    writes its older plan. A's writers counter changed, so A reads again and puts `2.4` back."""
    writers = AliasWriters(get_settings().sweep_table)
    older = push(repo, "2.4.0", seed=40)
    newer_build = build_image([256], seed=41)
    put_manifest = repo.put_manifest
    raced: list[str] = []

    def racing_put(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(newer_build.manifest.digest)
            push_built(repo, newer_build, REPO, "2.4.1")
            tag_pushed_image(repo, [ALIASES], REPO, raced[0], "2.4.1", now=NOW, writers=writers)
        return put_manifest(*args, **kwargs)

    repo.put_manifest = racing_put  # type: ignore[method-assign]
    result = tag_pushed_image(repo, [ALIASES], REPO, older, "2.4.0", now=NOW, writers=writers)

    newer = raced[0]
    assert {"2.4", "2", "latest"} <= set(tags_by_digest(repo)[newer])
    assert "re-read" in " ".join(result.notes) or "planned again" in " ".join(result.notes)


def test_an_unraced_write_is_not_read_again(repo: Registry) -> None:
    writers = AliasWriters(get_settings().sweep_table)
    digest = push(repo, "3.0.0", seed=50)
    repo.calls.clear()

    tag_pushed_image(repo, [ALIASES], REPO, digest, "3.0.0", now=NOW, writers=writers)

    assert repo.calls["describe_images"] == 1
    assert set(tags_by_digest(repo)[digest]) == {"3.0.0", "3.0", "3", "latest"}


def test_without_the_counter_a_write_is_always_read_again(repo: Registry) -> None:
    unreachable = AliasWriters("no-such-table")
    digest = push(repo, "3.1.0", seed=51)
    repo.calls.clear()

    tag_pushed_image(repo, [ALIASES], REPO, digest, "3.1.0", now=NOW, writers=unreachable)

    assert repo.calls["describe_images"] == 2
