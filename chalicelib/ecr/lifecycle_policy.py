"""ECR's lifecycle-policy document: the model and the validation ECR applies to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from chalicelib.kernel.errors import field_path

if TYPE_CHECKING:
    pass


MIN_POLICY_TEXT = 100


MAX_POLICY_TEXT = 30_720


MAX_RULES = 50


MAX_WILDCARDS = 4


MIN_ARCHIVE_DAYS = 90


SINCE_COUNT_TYPES = frozenset({"sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned"})


VALIDATION_PREFIX = "Lifecycle policy validation failure: "


TagStatus = Literal["tagged", "untagged", "any"]


StorageClass = Literal["standard", "archive"]


CountType = Literal[
    "imageCountMoreThan", "sinceImagePushed", "sinceImagePulled", "sinceImageTransitioned"
]


ActionType = Literal["expire", "transition"]


class _Document(BaseModel):
    # ECR's schema refuses unknown properties; JSON keys are ECR's camelCase.
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Selection(_Document):
    tag_status: TagStatus
    tag_pattern_list: list[StrictStr] | None = None
    tag_prefix_list: list[StrictStr] | None = None
    storage_class: StorageClass | None = Field(
        default=None, description="Which images the rule selects; ECR's default is standard."
    )
    count_type: CountType
    count_unit: StrictStr | None = None
    count_number: StrictInt

    @property
    def effective_storage_class(self) -> StorageClass:
        return self.storage_class or "standard"


class RuleAction(_Document):
    type: ActionType
    target_storage_class: Literal["archive"] | None = None


class LifecycleRule(_Document):
    rule_priority: StrictInt
    description: StrictStr | None = None
    selection: Selection
    action: RuleAction


class LifecyclePolicy(_Document):
    rules: list[LifecycleRule]

    def text(self) -> str:
        """The JSON ECR stores (camelCase, unset fields left out)."""
        return json.dumps(self.model_dump(by_alias=True, exclude_none=True), indent=2)


class PolicyIssue(BaseModel):
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class LifecyclePolicyError(ValueError):
    """The policy would be refused by ECR. `issues` names the field of every problem."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))

    def ecr_message(self) -> str:
        """The text of ECR's InvalidParameterException for this policy (first problem)."""
        return (
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
            f"'{VALIDATION_PREFIX}{self.issues[0]}'"
        )


def parse_policy(source: str | Mapping[str, Any]) -> LifecyclePolicy:
    """Parse and validate a lifecycle policy (its JSON text, or the decoded document).

    Raises LifecyclePolicyError listing every problem, each with the field it is about.
    """

    if isinstance(source, str):
        issues = _text_issues(source)
        if issues:
            raise LifecyclePolicyError(issues)
        try:
            data = json.loads(source)
        except ValueError as error:
            raise LifecyclePolicyError(
                [PolicyIssue(field="lifecyclePolicyText", message=f"not valid JSON: {error}")]
            ) from error
    else:
        data = source
    if not isinstance(data, Mapping):
        raise LifecyclePolicyError(
            [PolicyIssue(field="(top level)", message="must be an object with `rules`")]
        )
    try:
        policy = LifecyclePolicy.model_validate(data)
    except ValidationError as error:
        raise LifecyclePolicyError(
            [
                PolicyIssue(field=field_path(tuple(e["loc"])), message=e["msg"])
                for e in error.errors()
            ]
        ) from error
    issues = policy_issues(policy)
    if issues:
        raise LifecyclePolicyError(issues)
    return policy


def _text_issues(text: str) -> list[PolicyIssue]:
    if not MIN_POLICY_TEXT <= len(text) <= MAX_POLICY_TEXT:
        return [
            PolicyIssue(
                field="lifecyclePolicyText",
                message=f"length {len(text)} is outside {MIN_POLICY_TEXT}..{MAX_POLICY_TEXT}",
            )
        ]
    return []


def policy_issues(policy: LifecyclePolicy) -> list[PolicyIssue]:
    """ECR's rules beyond the JSON schema; an empty list means ECR accepts the policy."""
    issues: list[PolicyIssue] = []

    def issue(field: str, message: str) -> None:
        issues.append(PolicyIssue(field=field, message=message))

    if not policy.rules:
        issue("rules", "at least one rule is required")
    if len(policy.rules) > MAX_RULES:
        issue("rules", f"{len(policy.rules)} rules; a policy holds at most {MAX_RULES}")

    seen_priorities: dict[int, int] = {}
    for n, rule in enumerate(policy.rules):
        at = f"rules[{n}]"
        if rule.rule_priority < 1:
            issue(f"{at}.rulePriority", f"must be at least 1, found {rule.rule_priority}")
        if rule.rule_priority in seen_priorities:
            issue(
                f"{at}.rulePriority",
                f"{rule.rule_priority} is also the priority of"
                f" rules[{seen_priorities[rule.rule_priority]}]; priorities must be unique",
            )
        seen_priorities.setdefault(rule.rule_priority, n)
        _rule_issues(rule, at, issue)

    by_class: dict[str, list[int]] = {}
    for n, rule in enumerate(policy.rules):
        by_class.setdefault(rule.selection.effective_storage_class, []).append(n)
    for storage_class, members in by_class.items():
        _storage_class_issues(policy.rules, members, storage_class, issue)
    return issues


def _rule_issues(rule: LifecycleRule, at: str, issue: Callable[[str, str], None]) -> None:
    selection, action = rule.selection, rule.action
    sel = f"{at}.selection"
    lists = {
        "tagPatternList": selection.tag_pattern_list,
        "tagPrefixList": selection.tag_prefix_list,
    }
    given = {name: values for name, values in lists.items() if values is not None}
    if selection.tag_status == "tagged":
        if not any(given.values()):
            issue(
                f"{sel}.tagStatus",
                "tagged requires a non-empty tagPrefixList or tagPatternList",
            )
    else:
        for name in given:
            issue(
                f"{sel}.{name}",
                f"may only be used when tagStatus is tagged (found {selection.tag_status})",
            )
    if len(given) == 2:
        issue(f"{sel}.tagPatternList", "a rule may give tagPatternList or tagPrefixList, not both")
    for name, values in given.items():
        for k, value in enumerate(values or []):
            if not value:
                issue(f"{sel}.{name}[{k}]", "must not be empty")
            if name == "tagPatternList" and value.count("*") > MAX_WILDCARDS:
                issue(
                    f"{sel}.{name}[{k}]",
                    f"{value!r} has {value.count('*')} wildcards;"
                    f" at most {MAX_WILDCARDS} are allowed",
                )

    count_type = selection.count_type
    if count_type in SINCE_COUNT_TYPES:
        if selection.count_unit is None:
            issue(f"{sel}.countUnit", f"is required with countType {count_type}")
        elif selection.count_unit != "days":
            issue(f"{sel}.countUnit", f"must be days, found {selection.count_unit!r}")
    elif selection.count_unit is not None:
        issue(
            f"{sel}.countUnit",
            f"may only be used with sinceImagePushed, sinceImagePulled or sinceImageTransitioned"
            f" (countType is {count_type})",
        )
    if selection.count_number < 1:
        issue(f"{sel}.countNumber", f"must be a positive integer, found {selection.count_number}")

    if count_type == "sinceImagePulled" and action.type != "transition":
        issue(f"{at}.action.type", "sinceImagePulled can only be used with the transition action")
    if count_type == "sinceImageTransitioned":
        if action.type != "expire":
            issue(
                f"{at}.action.type",
                "sinceImageTransitioned can only be used with the expire action",
            )
        if selection.storage_class != "archive":
            issue(f"{sel}.storageClass", "sinceImageTransitioned requires storageClass archive")
        if 1 <= selection.count_number < MIN_ARCHIVE_DAYS:
            issue(
                f"{sel}.countNumber",
                f"archived images must stay in archive for at least {MIN_ARCHIVE_DAYS} days"
                f" (found {selection.count_number})",
            )
    elif selection.storage_class == "archive":
        issue(f"{sel}.storageClass", "archive can only be used with sinceImageTransitioned")

    if action.type == "transition" and action.target_storage_class is None:
        issue(f"{at}.action.targetStorageClass", "is required when the action is transition")
    if action.type == "expire" and action.target_storage_class is not None:
        issue(f"{at}.action.targetStorageClass", "may only be used when the action is transition")


def _storage_class_issues(
    rules: Sequence[LifecycleRule],
    members: list[int],
    storage_class: str,
    issue: Callable[[str, str], None],
) -> None:
    highest = max(rules[n].rule_priority for n in members)
    untagged: int | None = None
    owners: dict[tuple[str, str], int] = {}
    for n in members:
        selection = rules[n].selection
        at = f"rules[{n}]"
        if selection.tag_status == "any" and rules[n].rule_priority != highest:
            issue(
                f"{at}.rulePriority",
                f"a rule with tagStatus any must have the highest priority of the {storage_class}"
                f" rules ({highest} is higher)",
            )
        if selection.tag_status == "untagged":
            if untagged is not None:
                issue(
                    f"{at}.selection.tagStatus",
                    f"only one {storage_class} rule may select untagged images"
                    f" (rules[{untagged}] does)",
                )
            else:
                untagged = n
        for name, values in (
            ("tagPrefixList", selection.tag_prefix_list),
            ("tagPatternList", selection.tag_pattern_list),
        ):
            for k, value in enumerate(values or []):
                owner = owners.setdefault((name, value), n)
                if owner != n:
                    issue(
                        f"{at}.selection.{name}[{k}]",
                        f"{value!r} is also used by rules[{owner}]; the {storage_class} rules"
                        " must use a unique set of tag prefixes",
                    )
