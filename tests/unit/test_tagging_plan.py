"""The tagging planner: pure, no AWS."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from chalicelib.ecr.models import ImageDetail, RepositoryInfo, TagMutability
from chalicelib.oci.versions import parse_version
from chalicelib.policy.selection import rules_for
from chalicelib.policy.tagging import TaggingRule
from chalicelib.tagging.plan import TagDecision, TaggingPlan, plan_tags

REPO = "team-a/app"
PUSHED_AT = datetime(2024, 5, 6, 23, 30, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def digest(char: str) -> str:
    return "sha256:" + char * 64


def repository(
    mode: TagMutability = "MUTABLE", exclusions: list[str] | None = None
) -> RepositoryInfo:
    return RepositoryInfo(
        name=REPO,
        arn=f"arn:aws:ecr:us-east-1:123456789012:repository/{REPO}",
        registry_id="123456789012",
        uri=f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPO}",
        tag_mutability=mode,
        mutability_exclusions=exclusions or [],
    )


def images(**tags_by_digest: list[str]) -> list[ImageDetail]:
    """images(a=["1.2.3"], b=[...]): one image per keyword, the keyword is the digest's char."""
    return [
        ImageDetail(repository=REPO, digest=digest(char), tags=tags, pushed_at=PUSHED_AT)
        for char, tags in tags_by_digest.items()
    ]


def rule(**fields: object) -> TaggingRule:
    return TaggingRule.model_validate({"repositories": ["team-a/*"], **fields})


def plan(
    rules: list[TaggingRule],
    state: list[ImageDetail],
    pushed: str | None,
    on: str = "a",
    repo: RepositoryInfo | None = None,
) -> TaggingPlan:
    return plan_tags(rules, repo or repository(), state, digest(on), pushed, NOW)


def by_tag(result: TaggingPlan) -> dict[str, TagDecision]:
    return {d.tag: d for d in result.decisions}


def applied(state: list[ImageDetail], result: TaggingPlan) -> list[ImageDetail]:
    """The repository after carrying out a plan's puts (a tag lives on one digest)."""
    moves = {d.tag: d.digest for d in result.puts}
    out = []
    for image in state:
        kept = [t for t in image.tags if t not in moves]
        kept += [t for t, target in moves.items() if target == image.digest]
        out.append(image.model_copy(update={"tags": sorted(kept)}))
    return out


ALIASES = rule(semver_aliases=True, latest=True)


# --- semver aliases -----------------------------------------------------------------------------


def test_first_release_gets_minor_major_and_latest() -> None:
    result = plan([ALIASES], images(a=["1.2.3"]), "1.2.3")

    assert [(d.tag, d.digest, d.action, d.kind) for d in result.decisions] == [
        ("1.2", digest("a"), "put", "minor"),
        ("1", digest("a"), "put", "major"),
        ("latest", digest("a"), "put", "latest"),
    ]
    assert by_tag(result)["1.2"].reason == "1.2 → 1.2.3: highest 1.2.x release"
    assert by_tag(result)["latest"].reason == "latest → 1.2.3: highest release"
    assert all(d.current_digest is None for d in result.decisions)


def test_new_patch_moves_aliases_forward() -> None:
    state = images(a=["1.2.4"], b=["1.2.3", "1.2", "1", "latest"])
    result = by_tag(plan([ALIASES], state, "1.2.4"))

    assert {t: (d.action, d.digest, d.current_digest) for t, d in result.items()} == {
        "1.2": ("put", digest("a"), digest("b")),
        "1": ("put", digest("a"), digest("b")),
        "latest": ("put", digest("a"), digest("b")),
    }
    assert result["1.2"].reason == "1.2 → 1.2.4: highest 1.2.x release (was sha256:bbbbbbbbbbbb)"


def test_older_patch_moves_nothing_backwards() -> None:
    state = images(a=["1.4.2"], b=["1.4.5", "1.4", "1", "latest"])
    result = by_tag(plan([ALIASES], state, "1.4.2"))

    assert {t: d.action for t, d in result.items()} == {
        "1.4": "keep",
        "1": "keep",
        "latest": "keep",
    }
    assert all(d.digest == digest("b") for d in result.values())
    assert result["1.4"].reason == "1.4 unchanged: 1.4.5 is higher than pushed 1.4.2"


def test_older_patch_points_a_missing_alias_at_the_highest_release() -> None:
    # 1.4.5's own event was lost: the late 1.4.2 event still converges the 1.4 line.
    state = images(a=["1.4.2"], b=["1.4.5"], c=["2.0.0", "2", "2.0", "latest"])
    result = by_tag(plan([ALIASES], state, "1.4.2"))

    assert result["1.4"].action == "put"
    assert result["1.4"].digest == digest("b")
    assert result["1.4"].reason == (
        "1.4 → 1.4.5: highest 1.4.x release; 1.4.5 is higher than pushed 1.4.2"
    )
    assert result["1"].digest == digest("b")
    assert result["latest"].action == "keep"
    assert result["latest"].reason == "latest unchanged: 2.0.0 is higher than pushed 1.4.2"


def test_latest_follows_the_highest_release_not_the_newest_push() -> None:
    # A 1.x hotfix pushed after 2.0.0 must not take `latest`.
    state = images(a=["1.9.1"], b=["2.0.0", "2.0", "2", "latest"], c=["1.9.0", "1.9", "1"])
    result = by_tag(plan([ALIASES], state, "1.9.1"))

    assert result["latest"].action == "keep"
    assert result["latest"].digest == digest("b")
    assert result["1.9"].digest == result["1"].digest == digest("a")
    assert result["1"].action == "put"


def test_aliases_are_not_releases() -> None:
    assert parse_version("1.4") is None
    assert parse_version("1") is None
    assert parse_version("latest") is None
    # The applier's own put of `1.4` comes back as a push event: it derives nothing.
    state = images(a=["1.4.5", "1.4"])
    assert plan([ALIASES], state, "1.4").decisions == []


def test_events_in_any_order_and_twice_converge() -> None:
    final = images(a=["1.4.2"], b=["1.4.5"], c=["1.3.9"], d=["2.0.0-rc.1"])
    pushes = [("1.4.2", "a"), ("1.4.5", "b"), ("1.3.9", "c"), ("2.0.0-rc.1", "d")]
    outcomes = set()
    for seed in range(6):
        order = pushes * 2
        random.Random(seed).shuffle(order)
        state = final
        for tag, on in order:
            state = applied(state, plan([ALIASES], state, tag, on=on))
        outcomes.add(tuple((i.digest, tuple(i.tags)) for i in state))
    assert len(outcomes) == 1
    tags = {t: i.digest for i in state for t in i.tags}
    assert tags["1.4"] == tags["1"] == tags["latest"] == digest("b")
    assert tags["1.3"] == digest("c")
    assert "2.0" not in tags  # a pre-release takes no alias by default


def test_same_inputs_give_equal_plans_whatever_the_image_order() -> None:
    state = images(a=["1.4.2"], b=["1.4.5", "1.4"], c=["2.0.0", "latest"])
    rules = [rule(semver_aliases=True, latest=True, templates=["sha-{digest:12}"])]
    first = plan(rules, state, "1.4.2")
    assert first == plan(rules, state, "1.4.2")
    assert first == plan(rules, list(reversed(state)), "1.4.2")


# --- pre-releases and prefixes -------------------------------------------------------------------


def test_prerelease_takes_no_alias_by_default() -> None:
    state = images(a=["1.5.0-rc.1"], b=["1.4.5", "1.4", "1", "latest"])
    result = plan([ALIASES], state, "1.5.0-rc.1")

    assert result.decisions == []
    assert "pre-release" in result.notes[0]


def test_prerelease_is_ignored_when_finding_the_highest_release() -> None:
    state = images(a=["1.4.6"], b=["1.5.0-rc.1"], c=["1.4.5", "1.4", "1", "latest"])
    result = by_tag(plan([ALIASES], state, "1.4.6"))
    assert result["1"].digest == result["latest"].digest == digest("a")


def test_prerelease_aliases_when_enabled() -> None:
    rules = [rule(semver_aliases=True, latest=True, prerelease_aliases=True)]
    state = images(a=["1.5.0-rc.1"], b=["1.4.5", "1.4", "1", "latest"])
    result = by_tag(plan(rules, state, "1.5.0-rc.1"))
    assert {t: (d.action, d.digest) for t, d in result.items()} == {
        "1.5": ("put", digest("a")),
        "1": ("put", digest("a")),
        "latest": ("put", digest("a")),
    }
    # ...and the release outranks its release candidate.
    state = applied(state, plan(rules, state, "1.5.0-rc.1")) + images(c=["1.5.0"])
    result = by_tag(plan(rules, state, "1.5.0", on="c"))
    assert result["1.5"].digest == result["latest"].digest == digest("c")


def test_v_prefix_keeps_its_style() -> None:
    state = images(a=["v1.4.2"], b=["1.9.0", "1.9", "1"])
    result = by_tag(plan([ALIASES], state, "v1.4.2"))

    assert result["v1.4"].digest == digest("a")
    # The highest v1.x release is v1.4.2: unprefixed 1.9.0 is another family.
    assert result["v1"].digest == digest("a")
    assert result["v1"].reason == "v1 → v1.4.2: highest v1.x release"
    # `latest` has no prefix and ranks every release: 1.9.0 is higher.
    assert result["latest"].digest == digest("b")
    assert (
        result["latest"].reason
        == "latest → 1.9.0: highest release; 1.9.0 is higher than pushed v1.4.2"
    )
    assert "1.4" not in result


def test_match_scopes_the_releases_a_rule_ranks() -> None:
    rules = [rule(match="v*", semver_aliases=True, latest=True)]
    state = images(a=["v1.0.0"], b=["9.9.9"])
    assert by_tag(plan(rules, state, "v1.0.0"))["latest"].digest == digest("a")
    assert plan(rules, state, "9.9.9", on="b").decisions == []


# --- templates, regex groups, copies --------------------------------------------------------------


def test_templates_render_digest_date_and_version_parts() -> None:
    templates = [
        "sha-{digest:12}",
        "{date}",
        "build-{date:%Y.%m.%d}",
        "{tag}-x",
        "v{major}-{minor}-{patch}",
    ]
    result = plan([rule(templates=templates)], images(a=["1.2.3"]), "1.2.3")

    assert [(d.tag, d.digest, d.kind) for d in result.decisions] == [
        ("sha-aaaaaaaaaaaa", digest("a"), "template"),
        ("20240506", digest("a"), "template"),
        ("build-2024.05.06", digest("a"), "template"),
        ("1.2.3-x", digest("a"), "template"),
        ("v1-2-3", digest("a"), "template"),
    ]
    assert (
        result.decisions[0].reason
        == "sha-aaaaaaaaaaaa → sha256:aaaaaaaaaaaa: template 'sha-{digest:12}' on 1.2.3"
    )


def test_date_is_the_push_date_in_utc_not_now() -> None:

    # 23:30 UTC on the 6th is the 7th in UTC+2: the tag must say the 6th.
    pushed = ImageDetail(
        repository=REPO,
        digest=digest("a"),
        tags=["main"],
        pushed_at=PUSHED_AT.astimezone(timezone(timedelta(hours=2))),
    )
    result = plan([rule(templates=["main-{date}"])], [pushed], "main")
    assert result.decisions[0].tag == "main-20240506"
    # An image describe-images does not list yet: the date falls back to `now`.
    assert plan([rule(templates=["main-{date}"])], [], "main").decisions[0].tag == "main-20240601"


def test_version_placeholders_skip_a_tag_that_is_not_a_version() -> None:
    result = plan([rule(templates=["v{major}", "sha-{digest:7}"])], images(a=["main"]), "main")
    assert [d.tag for d in result.decisions] == ["sha-aaaaaaa"]
    assert "skipped: no {major} in main" in result.notes[0]


def test_regex_named_groups_feed_templates() -> None:
    rules = [
        rule(
            match_regex=r"(?P<branch>[a-z]+)-(?P<build>\d+)",
            templates=["{branch}-latest", "b{build}"],
        )
    ]
    result = plan(rules, images(a=["main-42"]), "main-42")
    assert [d.tag for d in result.decisions] == ["main-latest", "b42"]
    assert plan(rules, images(a=["Main-42"]), "Main-42").decisions == []


def test_copies() -> None:
    rules = [rule(copies=[{"from_regex": r"^release-(?P<v>.+)$", "to": "stable-{v}"}])]
    result = plan(rules, images(a=["release-7"]), "release-7")
    assert [(d.tag, d.kind, d.action) for d in result.decisions] == [("stable-7", "copy", "put")]
    assert plan(rules, images(a=["main"]), "main").decisions == []


def test_copy_follows_the_tag_as_it_is_now() -> None:
    # A late event for an image the tag has left: the copy goes where the tag is now.
    rules = [rule(copies=[{"from_regex": r"release-(.+)", "to": "stable-{1}"}])]
    state = images(a=[], b=["release-7"])
    result = plan(rules, state, "release-7", on="a")
    assert result.decisions[0].digest == digest("b")
    assert "now points at sha256:bbbbbbbbbbbb" in result.notes[0]


def test_rendered_tag_too_long_is_blocked_with_the_reason() -> None:
    long_tag = "a" * 120
    result = plan([rule(templates=["{tag}-{date}"])], images(a=[long_tag]), long_tag)
    decision = result.decisions[0]
    assert decision.action == "blocked"
    assert "129 characters, over Docker's 128" in decision.reason


def test_first_rule_wins_a_conflict() -> None:
    rules = [rule(match="main", templates=["edge"]), rule(templates=["edge"]), rule(latest=True)]
    state = images(a=["main"], b=["edge"])
    result = plan(rules, state, "main")
    assert [(d.tag, d.rule, d.action) for d in result.decisions] == [("edge", 0, "put")]
    assert [(d.tag, d.rule) for d in plan(rules, state, "1.0.0").decisions] == [
        ("edge", 1),
        ("latest", 2),
    ]


# --- loop safety ---------------------------------------------------------------------------------


def test_derived_tag_seeds_nothing() -> None:
    rules = [rule(copies=[{"from_regex": "(.*)", "to": "copy-{1}"}], templates=["sha-{digest:12}"])]
    first = plan(rules, images(a=["x"]), "x")
    assert [d.tag for d in first.decisions] == ["sha-aaaaaaaaaaaa", "copy-x"]

    # ECR emits a PUSH for each tag the applier put; none of them may cascade.
    after = images(a=["x", "copy-x", "sha-aaaaaaaaaaaa"])
    # (Any other tag of the image that derives it will do: the first in sorted order is named.)
    for tag, source in (("copy-x", "x"), ("sha-aaaaaaaaaaaa", "copy-x")):
        echo = plan(rules, after, tag)
        assert echo.decisions == []
        assert echo.derived_from == source
        assert f"{tag} is derived from {source}" in echo.notes[0]


def test_alias_echo_events_seed_nothing() -> None:
    state = images(a=["1.2.3", "1.2", "1", "latest"])
    for tag in ("1.2", "1", "latest"):
        assert plan([ALIASES], state, tag).decisions == []


def test_digest_only_push_derives_nothing() -> None:
    result = plan([ALIASES, rule(templates=["sha-{digest:12}"])], images(a=[]), None)
    assert result.decisions == []
    assert result.notes == ["pushed by digest only: derives nothing"]


def test_rules_for_selects_repositories_by_glob() -> None:
    a, everything = rule(), TaggingRule(repositories=["*"])
    assert rules_for([a, everything], "team-a/app") == [a, everything]
    assert rules_for([a, everything], "team-b/app") == [everything]
    assert (
        plan(
            [TaggingRule(repositories=["team-b/*"], latest=True)], images(a=["1.0.0"]), "1.0.0"
        ).decisions
        == []
    )


# --- immutability --------------------------------------------------------------------------------

MOVING = images(a=["1.2.4"], b=["1.2.3", "1.2", "1", "latest"])


def test_immutable_repository_blocks_moves_but_allows_new_tags() -> None:
    rules = [rule(semver_aliases=True, latest=True, templates=["sha-{digest:12}"])]
    result = by_tag(plan(rules, MOVING, "1.2.4", repo=repository("IMMUTABLE")))

    assert {t: d.action for t, d in result.items()} == {
        "1.2": "blocked",
        "1": "blocked",
        "latest": "blocked",
        "sha-aaaaaaaaaaaa": "put",
    }
    assert result["1.2"].reason == (
        "blocked: repository is IMMUTABLE and 1.2 points at sha256:bbbbbbbbbbbb "
        "(wanted 1.2 → 1.2.4: highest 1.2.x release)"
    )


def test_mutable_with_exclusion_makes_matching_tags_immutable() -> None:
    repo = repository("MUTABLE_WITH_EXCLUSION", ["1*"])
    result = by_tag(plan([ALIASES], MOVING, "1.2.4", repo=repo))
    assert {t: d.action for t, d in result.items()} == {
        "1.2": "blocked",
        "1": "blocked",
        "latest": "put",
    }
    assert result["1"].reason.startswith(
        "blocked: repository is MUTABLE_WITH_EXCLUSION, 1 matches exclusion filter '1*'"
    )


def test_immutable_with_exclusion_makes_matching_tags_mutable() -> None:
    repo = repository("IMMUTABLE_WITH_EXCLUSION", ["latest*", "1.*"])
    result = by_tag(plan([ALIASES], MOVING, "1.2.4", repo=repo))
    assert {t: d.action for t, d in result.items()} == {
        "1.2": "put",
        "1": "blocked",
        "latest": "put",
    }
    assert result["1"].reason.startswith(
        "blocked: repository is IMMUTABLE_WITH_EXCLUSION, 1 matches no exclusion filter"
    )


def test_tag_already_in_place_is_kept_even_when_immutable() -> None:
    state = images(a=["1.2.3", "1.2", "1", "latest"])
    result = plan([ALIASES], state, "1.2.3", repo=repository("IMMUTABLE"))
    assert [d.action for d in result.decisions] == ["keep", "keep", "keep"]
    assert result.decisions[0].reason == "1.2 already points at 1.2.3: highest 1.2.x release"


# --- validation ----------------------------------------------------------------------------------


def error_locs(**fields: object) -> dict[tuple[object, ...], str]:
    with pytest.raises(ValidationError) as caught:
        TaggingRule.model_validate({"repositories": ["*"], **fields})
    return {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}


def test_typo_is_refused_naming_the_field() -> None:
    assert list(error_locs(semver_alias=True)) == [("semver_alias",)]
    locs = error_locs(copies=[{"from_regex": "x", "too": "y"}])
    assert locs[("copies", 0, "too")] == "Extra inputs are not permitted"
    assert locs[("copies", 0, "to")] == "Field required"


def test_regexes_must_compile() -> None:
    assert list(error_locs(match_regex="(")) == [("match_regex",)]
    locs = error_locs(copies=[{"from_regex": "ok", "to": "x"}, {"from_regex": "[", "to": "y"}])
    assert list(locs) == [("copies", 1, "from_regex")]


def test_templates_use_known_placeholders_only() -> None:
    locs = error_locs(templates=["sha-{digest:12}", "x-{branch}"])
    assert list(locs) == [("templates",)]
    assert "templates[1]" in locs["templates",] and "{branch}" in locs["templates",]
    # A group of match_regex is a known placeholder...
    TaggingRule(repositories=["*"], match_regex=r"(?P<branch>\w+)", templates=["{branch}-x"])
    # ...and a copy's `to` may use its own from_regex groups, by name or number.
    TaggingRule(repositories=["*"], copies=[{"from_regex": r"(\w+)-(?P<n>\d+)", "to": "{1}.{n}"}])
    assert list(error_locs(copies=[{"from_regex": r"(\w+)", "to": "{2}"}])) == [("copies", 0, "to")]


@pytest.mark.parametrize(
    "template",
    [
        "-{tag}",  # must start with [A-Za-z0-9_]
        "{date:%H:%M}",  # ':' is not a tag character
        "a/{tag}",
        "x" * 129,
        "{digest:99}",
        "{tag!r}",
        "{tag:>20}",
        "{",
    ],
)
def test_templates_that_cannot_render_a_valid_tag(template: str) -> None:
    assert list(error_locs(templates=[template])) == [("templates",)]


def test_other_field_errors() -> None:
    assert list(error_locs(match="v*", match_regex="v.*")) == [("match_regex",)]
    assert list(error_locs(match_regex="(?P<tag>.*)")) == [("match_regex",)]
    with pytest.raises(ValidationError) as caught:
        TaggingRule.model_validate({"repositories": []})
    assert caught.value.errors()[0]["loc"] == ("repositories",)
