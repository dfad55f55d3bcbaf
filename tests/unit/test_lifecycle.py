"""The lifecycle evaluator against every worked example of the AWS documentation.

Examples: "Examples of lifecycle policies in Amazon ECR" (lifecycle_policy_examples), current page
and the awsdocs/amazon-ecr-user-guide snapshot (doc_source/lifecycle_policy_examples.md), with the
outcome each one documents. Images are named A, B, C… as in the documentation; "pushed N days ago"
is relative to a fixed `now`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.ecr.lifecycle_policy import LifecyclePolicyError, parse_policy
from chalicelib.ecr.models import ImageDetail
from chalicelib.lifecycle.compile import compile_retention
from chalicelib.lifecycle.evaluate import LifecycleImage, evaluate, evaluate_details, preview_result
from chalicelib.policy.retention import RetentionSettings
from chalicelib.retention.plan import plan_retention
from tests.lifecycle_rules import ARCHIVE_THEN_DELETE_RULES

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def digest(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")


def image(name: str, tags: list[str], days: float, **extra: Any) -> LifecycleImage:
    return LifecycleImage(
        digest=digest(name), tags=tuple(tags), pushed_at=NOW - timedelta(days=days), **extra
    )


def rule(priority: int, selection: dict[str, Any], action: str = "expire") -> dict[str, Any]:
    act: dict[str, Any] = {"type": action}
    if action == "transition":
        act["targetStorageClass"] = "archive"
    return {
        "rulePriority": priority,
        "description": f"Rule {priority}",
        "selection": selection,
        "action": act,
    }


def policy(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)}, indent=4)


def acted(policy_text: str, images: list[LifecycleImage], **kwargs: Any) -> dict[str, str]:
    """Name of each image the policy acts on → its action."""
    names = {i.digest: n for n, i in zip("ABCDEFGHIJ", images, strict=False)}
    plan = evaluate(parse_policy(policy_text), images, NOW, **kwargs)
    return {names[d.digest]: d.action for d in plan.decisions if d.action}


# --- "Filtering on image age" / "Filtering on image count" ----------------------------------


def test_image_age_expires_prod_images_older_than_14_days() -> None:
    # Current page: tagPatternList ["prod*"], sinceImagePushed 14 days.
    text = policy(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["prod*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
        )
    )
    images = [
        image("A", ["prod-1"], 20),
        image("B", ["production-team1"], 15),
        image("C", ["prod"], 13),
        image("D", ["dev-1"], 30),
        image("E", [], 30),
    ]
    assert acted(text, images) == {"A": "expire", "B": "expire"}


def test_image_age_snapshot_expires_untagged_images_older_than_14_days() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
        )
    )
    images = [image("A", [], 15), image("B", [], 14), image("C", ["v1"], 40)]
    # Exactly 14 days is not "older than" 14 days.
    assert acted(text, images) == {"A": "expire"}


def test_image_count_keeps_only_one_untagged_image() -> None:
    text = policy(
        rule(1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})
    )
    images = [image("A", [], 3), image("B", [], 1), image("C", [], 2), image("D", ["x"], 9)]
    assert acted(text, images) == {"A": "expire", "C": "expire"}


# --- "Filtering on multiple rules" -----------------------------------------------------------

MULTIPLE_RULES_REPOSITORY = [
    ("A", ["beta-1", "prod-1"], 10),
    ("B", ["beta-2", "prod-2"], 9),
    ("C", ["beta-3"], 8),
]


def _count_rule(priority: int, prefix: str, key: str = "tagPrefixList") -> dict[str, Any]:
    return rule(
        priority,
        {"tagStatus": "tagged", key: [prefix], "countType": "imageCountMoreThan", "countNumber": 1},
    )


@pytest.mark.parametrize("key", ["tagPrefixList", "tagPatternList"])
def test_multiple_rules_example_a_expires_only_image_a(key: str) -> None:
    # Rule 2 would mark B, but B matches rule 1's selection (prod): it is protected.
    suffix = "*" if key == "tagPatternList" else ""
    text = policy(_count_rule(1, "prod" + suffix, key), _count_rule(2, "beta" + suffix, key))
    images = [image(*spec) for spec in MULTIPLE_RULES_REPOSITORY]
    assert acted(text, images) == {"A": "expire"}


@pytest.mark.parametrize("key", ["tagPrefixList", "tagPatternList"])
def test_multiple_rules_example_b_expires_images_a_and_b(key: str) -> None:
    suffix = "*" if key == "tagPatternList" else ""
    text = policy(_count_rule(1, "beta" + suffix, key), _count_rule(2, "prod" + suffix, key))
    images = [image(*spec) for spec in MULTIPLE_RULES_REPOSITORY]
    assert acted(text, images) == {"A": "expire", "B": "expire"}


# --- "Filtering on multiple tags in a single rule" ----------------------------------------


@pytest.mark.parametrize(
    ("key", "values"),
    [("tagPrefixList", ["alpha", "beta"]), ("tagPatternList", ["alpha*", "beta*"])],
)
def test_multiple_tags_example_a_needs_every_listed_tag(key: str, values: list[str]) -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "tagged",
                key: values,
                "countType": "sinceImagePushed",
                "countNumber": 5,
                "countUnit": "days",
            },
        )
    )
    images = [
        image("A", ["alpha-1"], 12),
        image("B", ["beta-1"], 11),
        image("C", ["alpha-2", "beta-2"], 10),
        image("D", ["alpha-3"], 4),
        image("E", ["beta-3"], 3),
        image("F", ["alpha-4", "beta-4"], 2),
    ]
    assert acted(text, images) == {"C": "expire"}


@pytest.mark.parametrize(
    ("key", "values"),
    [("tagPrefixList", ["alpha", "beta"]), ("tagPatternList", ["alpha*", "beta*"])],
)
def test_multiple_tags_example_b_tags_are_not_exclusive(key: str, values: list[str]) -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "tagged",
                key: values,
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        )
    )
    images = [
        image("A", ["alpha-1", "beta-1", "gamma-1"], 10),
        image("B", ["alpha-2", "beta-2"], 9),
        image("C", ["alpha-3", "beta-3", "gamma-2"], 8),
    ]
    assert acted(text, images) == {"A": "expire", "B": "expire"}


# --- "Filtering on all images" ---------------------------------------------------------------


def test_all_images_example_a_keeps_only_the_newest() -> None:
    text = policy(
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})
    )
    images = [
        image("A", ["alpha-1"], 4),
        image("B", ["beta-1"], 3),
        image("C", [], 2),
        image("D", ["alpha-2"], 1),
    ]
    assert acted(text, images) == {"A": "expire", "B": "expire", "C": "expire"}


def test_all_images_example_b_combines_every_rule_type() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPrefixList": ["alpha"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        rule(
            2,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
        ),
        rule(3, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
    )
    images = [
        image("A", ["alpha-1", "beta-1"], 4),
        image("B", [], 3),
        image("C", ["alpha-2"], 2),
        image("D", ["git hash"], 1),
        image("E", [], 1),  # same day as D, listed later: the newest
    ]
    plan = evaluate(parse_policy(text), images, NOW)
    by_name = dict(zip("ABCDE", plan.decisions, strict=True))
    assert {n: d.rule_priority for n, d in by_name.items() if d.action} == {"A": 1, "B": 2, "D": 3}
    # E is untagged but not older than a day: rule 2 keeps it, and rule 3 may not take it.
    assert by_name["E"].action is None
    assert by_name["E"].rule_priority == 2


# --- archive ("sinceImagePulled" → transition, "sinceImageTransitioned" → expire) -------------

ARCHIVE_THEN_DELETE = policy(*ARCHIVE_THEN_DELETE_RULES)


def test_archive_images_not_pulled_then_delete_after_a_year_in_archive() -> None:
    images = [
        image("A", ["v1"], 200, last_pulled_at=NOW - timedelta(days=100)),
        image("B", ["v2"], 200, last_pulled_at=NOW - timedelta(days=10)),
        image("C", [], 95),  # never pulled: the push time stands in
        image("D", [], 50),
        image("E", ["old"], 900, status="ARCHIVED", last_archived_at=NOW - timedelta(days=400)),
        image("F", ["old2"], 900, status="ARCHIVED", last_archived_at=NOW - timedelta(days=100)),
        # Restored 10 days ago, never pulled since: the restore time stands in.
        image(
            "G",
            ["restored"],
            900,
            last_pulled_at=NOW - timedelta(days=500),
            last_activated_at=NOW - timedelta(days=10),
        ),
        image("H", ["restoring"], 900, status="ACTIVATING"),
    ]
    assert acted(ARCHIVE_THEN_DELETE, images) == {
        "A": "transition",
        "C": "transition",
        "E": "expire",
    }
    reasons = [d.reason for d in evaluate(parse_policy(ARCHIVE_THEN_DELETE), images, NOW).decisions]
    assert "never pulled; pushed 95.0 days ago, more than 90 days" in reasons[2]
    assert "not pulled since restored 10.0 days ago, not more than 90 days" in reasons[6]
    assert reasons[7] == "being restored (ACTIVATING): no rule selects it"


def test_preview_results_have_get_lifecycle_policy_preview_shape() -> None:
    images = [
        image("A", ["v1"], 200),
        image("E", [], 900, status="ARCHIVED", last_archived_at=NOW - timedelta(days=400)),
    ]
    plan = evaluate(parse_policy(ARCHIVE_THEN_DELETE), images, NOW)
    assert plan.preview_results() == [
        {
            "imageDigest": digest("A"),
            "imageTags": ["v1"],
            "imagePushedAt": (NOW - timedelta(days=200)).isoformat(),
            "action": {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"},
            "appliedRulePriority": 1,
            "storageClass": "STANDARD",
        },
        {
            "imageDigest": digest("E"),
            "imageTags": [],
            "imagePushedAt": (NOW - timedelta(days=900)).isoformat(),
            "action": {"type": "EXPIRE"},
            "appliedRulePriority": 2,
            "storageClass": "ARCHIVE",
        },
    ]
    assert plan.summary() == {
        "expiringImageTotalCount": 1,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}],
    }


def test_count_after_restore_orders_by_last_activated_at() -> None:
    text = policy(
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})
    )
    images = [
        image("A", ["old"], 300, last_activated_at=NOW - timedelta(days=1)),
        image("B", ["new"], 5),
    ]
    assert acted(text, images) == {"B": "expire"}


# --- manifest-list protection ----------------------------------------------------------------


def test_children_of_a_kept_index_are_never_expired() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
        )
    )
    images = [
        image("A", [], 30),  # child of the tagged index C
        image("B", [], 30),  # child of the untagged old index D, which expires
        image("C", ["v1"], 30),
        image("D", [], 30),
        image("E", [], 30),  # child of the untagged recent index F, which stays
        image("F", [], 1),
    ]
    children = {digest("C"): [digest("A")], digest("D"): [digest("B")], digest("F"): [digest("E")]}
    plan = evaluate(parse_policy(text), images, NOW, index_children=children)
    result = {d.digest: d for d in plan.decisions}
    assert {d for d, v in result.items() if v.action} == {digest("B"), digest("D")}
    assert digest("C") in result[digest("A")].reason
    assert digest("F") in result[digest("E")].reason


def test_children_of_an_archived_index_are_not_archived() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "any",
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": 30,
            },
            "transition",
        )
    )
    images = [image("A", [], 60), image("B", ["v1"], 60)]
    assert acted(text, images, index_children={digest("B"): [digest("A")]}) == {"B": "transition"}


def test_nested_index_protection_reaches_a_fixed_point() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
        )
    )
    # C (tagged) → B (untagged index) → A (untagged child): nothing may go.
    images = [image("A", [], 9), image("B", [], 9), image("C", ["top"], 9)]
    children = {digest("C"): [digest("B")], digest("B"): [digest("A")]}
    assert acted(text, images, index_children=children) == {}


def test_every_image_gets_a_reason() -> None:
    text = policy(
        rule(1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1})
    )
    images = [image("A", [], 2), image("B", [], 1), image("C", ["v"], 1)]
    plan = evaluate(parse_policy(text), images, NOW)
    reasons = [d.reason for d in plan.decisions]
    assert reasons[0].startswith("rule 1 (Rule 1): number 2 by push time of 2")
    assert reasons[1].startswith("rule 1 (Rule 1) keeps it")
    assert reasons[2] == "no rule selects it"


def test_describe_images_output_as_the_aws_cli_prints_it() -> None:
    details = [
        {
            "registryId": "123456789012",
            "repositoryName": "demo",
            "imageDigest": digest("A"),
            "imageTags": ["v1"],
            "imagePushedAt": "2026-10-01T10:00:00.000000+00:00",  # before B
            "imageSizeInBytes": 1,
        },
        {"imageDigest": digest("B"), "imagePushedAt": 1793000000.0},  # epoch seconds (CLI v1)
    ]
    text = policy(
        rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1})
    )
    plan = evaluate_details(parse_policy(text), details, NOW)
    assert [d.action for d in plan.decisions] == ["expire", None]


# --- validation --------------------------------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(LifecyclePolicyError) as raised:
        parse_policy(text)
    return [str(i) for i in raised.value.issues]


def _one(selection: dict[str, Any], action: str = "expire", **extra: Any) -> str:
    return policy(rule(1, selection, action) | extra)


AGE = {"countType": "sinceImagePushed", "countUnit": "days", "countNumber": 5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            policy(
                rule(1, {"tagStatus": "untagged", **AGE}),
                rule(1, {"tagStatus": "tagged", "tagPrefixList": ["a"], **AGE}),
            ),
            "rules[1].rulePriority: 1 is also the priority of rules[0]; priorities must be unique",
        ),
        (
            policy(
                rule(2, {"tagStatus": "any", **AGE}),
                rule(3, {"tagStatus": "tagged", "tagPrefixList": ["a"], **AGE}),
            ),
            "rules[0].rulePriority: a rule with tagStatus any must have the highest priority of"
            " the standard rules (3 is higher)",
        ),
        (
            _one({"tagStatus": "tagged", **AGE}),
            "rules[0].selection.tagStatus: tagged requires a non-empty tagPrefixList or"
            " tagPatternList",
        ),
        (
            _one({"tagStatus": "untagged", "tagPrefixList": ["a"], **AGE}),
            "rules[0].selection.tagPrefixList: may only be used when tagStatus is tagged"
            " (found untagged)",
        ),
        (
            _one({"tagStatus": "tagged", "tagPrefixList": ["a"], "tagPatternList": ["b*"], **AGE}),
            "rules[0].selection.tagPatternList: a rule may give tagPatternList or tagPrefixList,"
            " not both",
        ),
        (
            _one({"tagStatus": "tagged", "tagPatternList": ["test*1*2*3*4*5*6"], **AGE}),
            "rules[0].selection.tagPatternList[0]: 'test*1*2*3*4*5*6' has 6 wildcards; at most 4"
            " are allowed",
        ),
        (
            _one(
                {
                    "tagStatus": "untagged",
                    "countType": "imageCountMoreThan",
                    "countUnit": "days",
                    "countNumber": 1,
                }
            ),
            "rules[0].selection.countUnit: may only be used with sinceImagePushed,"
            " sinceImagePulled or sinceImageTransitioned (countType is imageCountMoreThan)",
        ),
        (
            _one({"tagStatus": "untagged", **AGE, "countUnit": "hours"}),
            "rules[0].selection.countUnit: must be days, found 'hours'",
        ),
        (
            _one({"tagStatus": "untagged", "countType": "sinceImagePushed", "countNumber": 5}),
            "rules[0].selection.countUnit: is required with countType sinceImagePushed",
        ),
        (
            _one({"tagStatus": "untagged", **AGE, "countNumber": 0}),
            "rules[0].selection.countNumber: must be a positive integer, found 0",
        ),
        (
            _one({"tagStatus": "any", **AGE, "countType": "sinceImagePulled"}),
            "rules[0].action.type: sinceImagePulled can only be used with the transition action",
        ),
        (
            _one(
                {
                    "tagStatus": "any",
                    **AGE,
                    "countType": "sinceImageTransitioned",
                    "countNumber": 90,
                }
            ),
            "rules[0].selection.storageClass: sinceImageTransitioned requires storageClass archive",
        ),
        (
            _one(
                {
                    "tagStatus": "any",
                    **AGE,
                    "countType": "sinceImageTransitioned",
                    "storageClass": "archive",
                    "countNumber": 120,
                },
                "transition",
            ),
            "rules[0].action.type: sinceImageTransitioned can only be used with the expire action",
        ),
        (
            _one(
                {
                    "tagStatus": "any",
                    **AGE,
                    "countType": "sinceImageTransitioned",
                    "storageClass": "archive",
                    "countNumber": 30,
                }
            ),
            "rules[0].selection.countNumber: archived images must stay in archive for at least"
            " 90 days (found 30)",
        ),
        (
            _one({"tagStatus": "any", **AGE, "storageClass": "archive"}),
            "rules[0].selection.storageClass: archive can only be used with sinceImageTransitioned",
        ),
        (
            policy(
                rule(1, {"tagStatus": "tagged", "tagPrefixList": ["prod"], **AGE}),
                rule(2, {"tagStatus": "tagged", "tagPrefixList": ["prod"], **AGE}),
            ),
            "rules[1].selection.tagPrefixList[0]: 'prod' is also used by rules[0]; the standard"
            " rules must use a unique set of tag prefixes",
        ),
        (
            policy(
                rule(1, {"tagStatus": "untagged", **AGE}),
                rule(2, {"tagStatus": "untagged", **AGE, "countNumber": 9}),
            ),
            "rules[1].selection.tagStatus: only one standard rule may select untagged images"
            " (rules[0] does)",
        ),
        (
            policy(
                {
                    "rulePriority": 1,
                    "selection": {"tagStatus": "any", **AGE},
                    "action": {"type": "transition"},
                }
            ),
            "rules[0].action.targetStorageClass: is required when the action is transition",
        ),
        (
            policy(
                {
                    "rulePriority": 1,
                    "selection": {"tagStatus": "any", **AGE},
                    "action": {"type": "expire", "targetStorageClass": "archive"},
                }
            ),
            "rules[0].action.targetStorageClass: may only be used when the action is transition",
        ),
        (
            _one(
                {
                    "tagStatus": "tagged",
                    "tagPrefixList": ["a"],
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                }
            ),
            "rules[0].selection.countNumber: Field required",
        ),
        (
            _one({"tagStatus": "everything", **AGE}),
            "rules[0].selection.tagStatus: Input should be 'tagged', 'untagged' or 'any'",
        ),
        (
            _one({"tagStatus": "any", **AGE, "maxAge": 3}),
            "rules[0].selection.maxAge: Extra inputs are not permitted",
        ),
        ('{"rules": []}', "lifecyclePolicyText: length 13 is outside 100..30720"),
    ],
)
def test_validation_names_the_field(text: str, expected: str) -> None:
    assert expected in _problems(text)


def test_more_than_50_rules_are_refused() -> None:
    rules = [
        rule(n, {"tagStatus": "tagged", "tagPrefixList": [f"t{n}-"], **AGE}) for n in range(1, 52)
    ]
    assert "rules: 51 rules; a policy holds at most 50" in _problems(json.dumps({"rules": rules}))


def test_policy_text_longer_than_30720_is_refused() -> None:
    text = _one({"tagStatus": "untagged", **AGE}, description="x" * 31_000)
    assert _problems(text)[0].startswith("lifecyclePolicyText: length ")


def test_four_wildcards_and_two_any_rules_in_separate_storage_classes_are_accepted() -> None:
    # The documented valid patterns, and the documented archive example (any + any-archive).
    parse_policy(
        _one({"tagStatus": "tagged", "tagPatternList": ["*test*1*2*3", "test*1*2*3*"], **AGE})
    )
    parse_policy(ARCHIVE_THEN_DELETE)


# --- steward retention rules compiled to a native policy --------------------------------------


def _retention(rules: list[dict[str, Any]]) -> Any:

    return RetentionSettings.model_validate({"rules": rules})


def test_retention_rules_compile_to_the_same_decisions() -> None:

    settings = _retention(
        [
            {"kind": "always_keep", "repositories": ["*"], "tags": "release-*"},
            {"kind": "keep_newest", "repositories": ["app"], "tags": "main-*", "count": 2},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 7},
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 3},
            {"kind": "keep_newest", "repositories": ["other"], "tags": "x*", "count": 1},
        ]
    )
    compiled = compile_retention(settings.rules, repository="app")
    assert compiled.notes == []
    assert compiled.policy is not None
    assert [
        (r.rule_priority, r.selection.count_type, r.selection.count_number)
        for r in compiled.policy.rules
    ] == [
        (1, "imageCountMoreThan", 1_000_000),
        (2, "imageCountMoreThan", 2),
        (3, "sinceImagePushed", 7),
        (4, "sinceImagePushed", 3),
    ]
    parse_policy(compiled.policy.text())  # ECR would accept the text

    specs = [
        ("A", ["release-1"], 400),
        ("B", ["main-1"], 30),
        ("C", ["main-2", "release-2"], 20),
        ("D", ["main-3"], 10),
        ("E", ["main-4"], 1),
        ("F", ["pr-1"], 8),
        ("G", ["pr-2"], 2),
        ("H", [], 4),
        ("I", [], 1),
        ("J", ["other"], 100),
    ]
    details = [
        ImageDetail(repository="app", digest=digest(n), tags=t, pushed_at=NOW - timedelta(days=d))
        for n, t, d in specs
    ]
    retained = plan_retention(settings, "app", details, {}, NOW)
    steward_deletes = {d.digest for d in retained.decisions if d.action == "delete"}
    images = [image(n, t, d) for n, t, d in specs]
    native = evaluate(compiled.policy, images, NOW)
    assert {d.digest for d in native.decisions if d.action} == steward_deletes
    assert steward_deletes == {digest(n) for n in "BFH"}


def test_retention_rules_ecr_cannot_express_get_a_note() -> None:

    settings = _retention(
        [
            {"kind": "keep_semver", "repositories": ["*"], "count": 3},
            {"kind": "keep_newest", "repositories": ["*"], "tags": "v?", "count": 2},
            {
                "kind": "keep_newest",
                "repositories": ["*"],
                "tags": "main-*",
                "count": 2,
                "expire_rest": False,
            },
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 0},
            {
                "kind": "expire_tagged",
                "repositories": ["*"],
                "tags": "a*b*c*d*e*",
                "older_than_days": 1,
            },
            {
                "kind": "expire_untagged",
                "repositories": ["*"],
                "older_than_days": 5,
                "dry_run": True,
            },
        ]
    )
    compiled = compile_retention(settings.rules)
    assert compiled.policy is None
    assert [note.split(":")[0] for note in compiled.notes] == [
        "rules[0] keep_semver",
        "rules[1] keep_newest",
        "rules[2] keep_newest",
        "rules[3] expire_untagged",
        "rules[4] expire_tagged",
        "rules[5] expire_untagged",
    ]
    assert "semantic version" in compiled.notes[0]


def test_two_untagged_rules_compile_to_the_shortest_and_say_so() -> None:

    settings = _retention(
        [
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 9},
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 2},
            {"kind": "always_keep", "repositories": ["*"], "tags": "keep"},
            {"kind": "keep_newest", "repositories": ["*"], "tags": "keep", "count": 2},
        ]
    )
    compiled = compile_retention(settings.rules)
    assert compiled.policy is not None
    assert [r.selection.count_number for r in compiled.policy.rules] == [1_000_000, 2]
    assert compiled.notes == [
        "rules[3] keep_newest: rules[2] always_keep already governs tags 'keep'",
        "expire_untagged rules rules[0] expire_untagged, rules[1] expire_untagged: ECR allows"
        " one untagged rule; the shortest (2 days) is used",
    ]


# --- interpretations (docs/lifecycle.md, "Interpretations, and what settles them") -----------


@pytest.mark.parametrize(
    ("count_type", "action", "aged"),
    [
        ("sinceImagePushed", "expire", lambda age: {"days": age}),
        (
            "sinceImagePulled",
            "transition",
            lambda age: {"days": 900, "last_pulled_at": NOW - timedelta(days=age)},
        ),
        (
            "sinceImageTransitioned",
            "expire",
            lambda age: {
                "days": 900,
                "status": "ARCHIVED",
                "last_archived_at": NOW - timedelta(days=age),
            },
        ),
    ],
)
def test_older_than_is_strict_at_exactly_count_number_days(
    count_type: str, action: str, aged: Any
) -> None:
    selection: dict[str, Any] = {
        "tagStatus": "any",
        "countType": count_type,
        "countUnit": "days",
        "countNumber": 90,
    }
    if count_type == "sinceImageTransitioned":
        selection["storageClass"] = "archive"
    one_second = 1 / 86400
    images = []
    for name, age in (("A", 90), ("B", 90 + one_second), ("C", 90 - one_second)):
        fields = aged(age)
        images.append(image(name, [name.lower()], fields.pop("days"), **fields))
    # Exactly 90 days is not older than 90 days; one second more is.
    assert acted(policy(rule(1, selection, action)), images) == {"B": action}


def test_keep_everything_compiles_to_a_count_beyond_the_image_quota() -> None:
    settings = RetentionSettings.model_validate(
        {"rules": [{"kind": "always_keep", "repositories": ["*"], "tags": "release-*"}]}
    )
    compiled = compile_retention(settings.rules, repository="team/app")
    assert compiled.policy is not None
    selection = compiled.policy.rules[0].selection
    assert (selection.count_type, selection.count_number) == ("imageCountMoreThan", 1_000_000)
    assert selection.tag_pattern_list == ["release-*"]


# --- the evaluator's details: every reason, describe-images fields, the preview's shape -------


def test_from_detail_reads_every_time_and_status_describe_images_gives() -> None:
    detail = {
        "imageDigest": digest("A"),
        "imageTags": ["v1"],
        "imagePushedAt": "2026-01-01T00:00:00+00:00",
        "imageStatus": "ARCHIVED",
        "lastRecordedPullTime": "2026-02-01T00:00:00+00:00",
        "lastArchivedAt": "2026-03-01T00:00:00+00:00",
        "lastActivatedAt": "2026-04-01T00:00:00+00:00",
    }
    image_ = LifecycleImage.from_detail(detail)
    assert (image_.status, image_.storage_class) == ("ARCHIVED", "archive")
    assert image_.last_pulled_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert image_.last_archived_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert image_.last_activated_at == datetime(2026, 4, 1, tzinfo=UTC)
    bare = LifecycleImage.from_detail(
        {"imageDigest": digest("B"), "imagePushedAt": "2026-01-01T00:00:00"}
    )
    assert (bare.status, bare.tags, bare.last_pulled_at) == ("ACTIVE", (), None)


def test_every_reason_names_the_rule_and_the_time_it_measured() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["none*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
        ),
        {
            "rulePriority": 2,
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["old*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 30,
            },
            "action": {"type": "expire"},
        },
        rule(
            3,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["p*"],
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": 90,
            },
            "transition",
        ),
        rule(
            4,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
        ),
        rule(5, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}),
    )
    images = [
        image("A", ["old-a"], 9000),
        image("B", ["old-b"], 900, last_activated_at=NOW - timedelta(days=10)),
        image("C", ["p-c"], 900, last_pulled_at=NOW - timedelta(days=100)),
        image("D", ["arch"], 900, status="ARCHIVED", last_archived_at=NOW - timedelta(days=95)),
        image("E", [], 3),
        image("F", [], 2),
    ]
    plan = evaluate(parse_policy(text), images, NOW.replace(tzinfo=None))
    reasons = {d.digest: d.reason for d in plan.decisions}
    # A rule that selects nothing (rule 1) does not stop the rules after it.
    assert reasons[digest("A")] == "rule 2: pushed 9000.0 days ago, more than 30 days"
    assert reasons[digest("B")] == "rule 2 keeps it: restored 10.0 days ago, not more than 30 days"
    assert reasons[digest("C")] == "rule 3 (Rule 3): last pulled 100.0 days ago, more than 90 days"
    assert reasons[digest("D")] == "rule 4 (Rule 4): archived 95.0 days ago, more than 90 days"
    assert reasons[digest("E")] == (
        "rule 5 (Rule 5): number 2 by push time of 5 images it selects, more than 1"
    )
    assert reasons[digest("F")] == (
        "rule 5 (Rule 5) keeps it: among the newest 1 of 5 images it selects"
    )
    assert plan.summary() == {
        "expiringImageTotalCount": 3,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}],
    }
    # A naive `now` is UTC, as ECR's timestamps are.
    assert plan.now == NOW


def test_a_storage_class_with_no_images_is_no_error() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "any",
                "storageClass": "archive",
                "countType": "sinceImageTransitioned",
                "countUnit": "days",
                "countNumber": 90,
            },
        )
    )
    assert acted(text, [image("A", ["v1"], 900)]) == {}


def test_a_kept_manifest_list_names_itself_in_its_childs_reason() -> None:
    text = policy(
        rule(
            1,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
        )
    )
    images = [image("I", ["v1"], 10), image("C", [], 10)]
    plan = evaluate(parse_policy(text), images, NOW, index_children={digest("I"): [digest("C")]})
    child_decision = plan.decisions[1]
    assert child_decision.action is None
    assert child_decision.reason == (
        f"rule 1 (Rule 1): pushed 10.0 days ago, more than 1 days; but manifest list "
        f"{digest('I')} references it and is not expired, so it is kept"
    )


def test_preview_result_of_an_undecided_image_has_empty_action_and_standard_class() -> None:
    decision = evaluate(
        parse_policy(
            policy(
                rule(1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5})
            )
        ),
        [image("A", [], 1)],
        NOW,
    ).decisions[0]
    from_plan = decision.model_copy(update={"storage_class": None})
    assert preview_result(from_plan) == {
        "imageDigest": digest("A"),
        "imageTags": [],
        "imagePushedAt": (NOW - timedelta(days=1)).isoformat(),
        "action": {"type": ""},
        "appliedRulePriority": 1,
        "storageClass": "STANDARD",
    }
