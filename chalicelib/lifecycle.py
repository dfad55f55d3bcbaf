"""ECR lifecycle policies with ECR's own semantics: the document, its validation, an evaluator.

The evaluator answers "what would ECR do to this repository now?" without asking ECR, so that a
policy can be previewed on a file of describe-images output, the embedded backend can answer
start/get-lifecycle-policy-preview, and steward retention rules can be compared with the native
policy they compile to. Semantics follow ../shared/reference/lifecycle.md ("Precise semantics"):

- a rule's candidates are every image of its storage class matching its tag selection, including
  images that a higher-priority rule selects;
- imageCountMoreThan keeps the newest `countNumber` of all candidates; since* rules propose
  candidates older than `countNumber` days (strictly older);
- an image whose tags match a higher-priority rule's selection is never acted on by a lower rule
  (so each image is governed by the first rule that selects it);
- an image referenced by a manifest list that is not itself expired is neither expired nor archived.

Pure: `now` is a parameter and nothing here calls AWS. `preview_repository` is the one function
that does, through the registry gateway (ECR's own preview on AWS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from chalicelib.registry import LifecyclePreview, Registry
    from chalicelib.retention import RetentionRule

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


# --- the document ---------------------------------------------------------------------------


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
    from chalicelib.policy import field_path

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


# --- the images -----------------------------------------------------------------------------


class LifecycleImage(BaseModel):
    """One image as describe-images reports it (`imageDetails[]`), the fields lifecycle reads."""

    model_config = ConfigDict(frozen=True)

    digest: str
    tags: tuple[str, ...] = ()
    pushed_at: datetime
    status: Literal["ACTIVE", "ARCHIVED", "ACTIVATING"] = "ACTIVE"
    last_pulled_at: datetime | None = None
    last_archived_at: datetime | None = None
    last_activated_at: datetime | None = None

    @field_validator("pushed_at", "last_pulled_at", "last_archived_at", "last_activated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A timestamp without an offset is UTC (what ECR stores), so any `now` compares with it.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> LifecycleImage:
        return cls(
            digest=detail["imageDigest"],
            tags=tuple(detail.get("imageTags") or ()),
            pushed_at=detail["imagePushedAt"],
            status=detail.get("imageStatus") or "ACTIVE",
            last_pulled_at=detail.get("lastRecordedPullTime"),
            last_archived_at=detail.get("lastArchivedAt"),
            last_activated_at=detail.get("lastActivatedAt"),
        )

    @property
    def storage_class(self) -> StorageClass | None:
        """None while a restore is in progress: no rule selects an ACTIVATING image."""
        if self.status == "ACTIVE":
            return "standard"
        if self.status == "ARCHIVED":
            return "archive"
        return None

    @property
    def age_reference(self) -> datetime:
        # A restored image counts from its restore, not its push ([LP] rule 9).
        return self.last_activated_at or self.pushed_at

    @property
    def pull_reference(self) -> datetime:
        # Never pulled (since restore): the push or restore time stands in ([LP] rule 15).
        seen = [t for t in (self.last_pulled_at, self.last_activated_at) if t is not None]
        return max(seen) if seen else self.pushed_at


# --- evaluation -----------------------------------------------------------------------------


class LifecycleDecision(BaseModel):
    """What the policy does to one image, and why."""

    digest: str
    tags: tuple[str, ...] = ()
    pushed_at: datetime
    storage_class: StorageClass | None
    action: ActionType | None = None
    rule_priority: int | None = Field(
        default=None, description="The rule that acts on the image, or the one that keeps it."
    )
    reason: str


class LifecyclePlan(BaseModel):
    now: datetime
    decisions: list[LifecycleDecision]

    @property
    def acted(self) -> list[LifecycleDecision]:
        return [d for d in self.decisions if d.action is not None]

    def preview_results(self) -> list[dict[str, Any]]:
        """get-lifecycle-policy-preview's `previewResults`, by rule priority then push time."""
        acted = sorted(self.acted, key=lambda d: (d.rule_priority or 0, d.pushed_at, d.digest))
        return [preview_result(d) for d in acted]

    def summary(self) -> dict[str, Any]:
        """get-lifecycle-policy-preview's `summary`."""
        acted = self.acted
        transitioning = sum(1 for d in acted if d.action == "transition")
        return {
            "expiringImageTotalCount": sum(1 for d in acted if d.action == "expire"),
            "transitioningImageTotalCounts": [
                {"targetStorageClass": "ARCHIVE", "imageTotalCount": transitioning}
            ],
        }


def preview_result(decision: LifecycleDecision) -> dict[str, Any]:
    action: dict[str, str] = {"type": (decision.action or "").upper()}
    if decision.action == "transition":
        action["targetStorageClass"] = "ARCHIVE"
    return {
        "imageDigest": decision.digest,
        "imageTags": list(decision.tags),
        "imagePushedAt": decision.pushed_at.isoformat(),
        "action": action,
        "appliedRulePriority": decision.rule_priority,
        "storageClass": (decision.storage_class or "standard").upper(),
    }


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _tag_matcher(selection: Selection) -> Callable[[tuple[str, ...]], bool]:
    """AND across the list's entries, each matching ANY of the image's tags ([LP] rule 10)."""
    if selection.tag_status == "any":
        return lambda tags: True
    if selection.tag_status == "untagged":
        return lambda tags: not tags
    prefixes = selection.tag_prefix_list or []
    if prefixes:
        return lambda tags: bool(tags) and all(any(t.startswith(p) for t in tags) for p in prefixes)
    patterns = [_wildcard(p).fullmatch for p in selection.tag_pattern_list or []]
    return lambda tags: bool(tags) and all(any(m(t) for t in tags) for m in patterns)


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def _rule_name(rule: LifecycleRule) -> str:
    return f"rule {rule.rule_priority}" + (f" ({rule.description})" if rule.description else "")


def evaluate(
    policy: LifecyclePolicy,
    images: Iterable[LifecycleImage],
    now: datetime,
    *,
    index_children: Mapping[str, Iterable[str]] | None = None,
) -> LifecyclePlan:
    """Decide, as ECR would at `now`, which images each rule expires or archives.

    `images` are in describe-images order; when two images have the same push time the later
    one counts as the newer (the doc's "Filtering on all images - Example B"). `index_children`
    maps a manifest list's digest to the digests it references, when known.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    listed = list(images)
    position = {image.digest: n for n, image in enumerate(listed)}
    by_class: dict[StorageClass | None, list[LifecycleImage]] = {}
    for image in listed:
        by_class.setdefault(image.storage_class, []).append(image)
    rules = sorted(policy.rules, key=lambda r: r.rule_priority)
    governing: dict[str, LifecycleRule] = {}
    # Why a governing rule keeps an image, or proposes it: (action?, reason).
    verdict: dict[str, tuple[bool, str]] = {}

    for rule in rules:
        selection = rule.selection
        matches = _tag_matcher(selection)
        storage_class = selection.effective_storage_class
        candidates = [i for i in by_class.get(storage_class, ()) if matches(i.tags)]
        fresh = [i for i in candidates if i.digest not in governing]
        for image in fresh:
            governing[image.digest] = rule
        if not fresh:
            continue
        name = _rule_name(rule)
        limit = selection.count_number
        if selection.count_type == "imageCountMoreThan":
            ordered = sorted(
                candidates,
                key=lambda i: (i.age_reference, position[i.digest]),
                reverse=True,
            )
            rank = {i.digest: n for n, i in enumerate(ordered)}
            for image in fresh:
                n = rank[image.digest]
                if n >= limit:
                    verdict[image.digest] = (
                        True,
                        f"{name}: number {n + 1} by push time of {len(candidates)} images it "
                        f"selects, more than {limit}",
                    )
                else:
                    verdict[image.digest] = (
                        False,
                        f"{name} keeps it: among the newest {limit} of {len(candidates)} images"
                        " it selects",
                    )
            continue
        threshold = timedelta(days=limit)
        for image in fresh:
            if selection.count_type == "sinceImagePushed":
                since = image.age_reference
                what = "restored" if image.last_activated_at else "pushed"
            elif selection.count_type == "sinceImagePulled":
                since = image.pull_reference
                if image.last_pulled_at is not None and since == image.last_pulled_at:
                    what = "last pulled"
                elif image.last_activated_at is not None:
                    what = "not pulled since restored"
                else:
                    what = "never pulled; pushed"
            else:
                since, what = image.last_archived_at or now, "archived"
            age = now - since
            if age > threshold:
                verdict[image.digest] = (
                    True,
                    f"{name}: {what} {_days(age)} ago, more than {limit} days",
                )
            else:
                verdict[image.digest] = (
                    False,
                    f"{name} keeps it: {what} {_days(age)} ago, not more than {limit} days",
                )

    acting = {d: governing[d] for d, (acts, _) in verdict.items() if acts}
    blocked = _manifest_list_protection(acting, position, index_children or {})

    decisions: list[LifecycleDecision] = []
    for image in listed:
        governor = governing.get(image.digest)
        action: ActionType | None = None
        if governor is None:
            reason = (
                "being restored (ACTIVATING): no rule selects it"
                if image.storage_class is None
                else "no rule selects it"
            )
        else:
            acts, reason = verdict[image.digest]
            if image.digest in blocked:
                reason = (
                    f"{reason}; but manifest list {blocked[image.digest]} references it and is"
                    " not expired, so it is kept"
                )
            elif acts:
                action = governor.action.type
        decisions.append(
            LifecycleDecision(
                digest=image.digest,
                tags=image.tags,
                pushed_at=image.pushed_at,
                storage_class=image.storage_class,
                action=action,
                rule_priority=governor.rule_priority if governor else None,
                reason=reason,
            )
        )
    return LifecyclePlan(now=now, decisions=decisions)


def _manifest_list_protection(
    acting: Mapping[str, LifecycleRule],
    present: Mapping[str, int],
    index_children: Mapping[str, Iterable[str]],
) -> dict[str, str]:
    """Images kept because an index that stays references them: digest → that index.

    Iterated to a fixed point: an index kept because its own parent stays keeps its children.
    """
    parents: dict[str, list[str]] = {}
    for index, children in index_children.items():
        if index in present:
            for child in children:
                parents.setdefault(child, []).append(index)
    blocked: dict[str, str] = {}
    expiring = {d for d, rule in acting.items() if rule.action.type == "expire"}
    changed = True
    while changed:
        changed = False
        for digest in [d for d in acting if d in parents and d not in blocked]:
            staying = next((p for p in parents[digest] if p not in expiring), None)
            if staying is not None:
                blocked[digest] = staying
                expiring.discard(digest)
                changed = True
    return blocked


def evaluate_details(
    policy: LifecyclePolicy,
    image_details: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    index_children: Mapping[str, Iterable[str]] | None = None,
) -> LifecyclePlan:
    """`evaluate` over describe-images' `imageDetails` as AWS returns or prints them."""
    images = [LifecycleImage.from_detail(d) for d in image_details]
    return evaluate(policy, images, now, index_children=index_children)


# --- on AWS: ECR's own preview --------------------------------------------------------------


def preview_repository(
    registry: Registry, repository: str, policy_text: str | None = None
) -> LifecyclePreview:
    """Ask ECR (or the embedded backend) to preview a policy on a repository.

    Without `policy_text` the repository's own lifecycle policy is previewed.
    """
    if policy_text is not None:
        parse_policy(policy_text)  # refuse locally what ECR would refuse, naming the field
    return registry.lifecycle_preview(repository, policy_text)


# --- steward retention rules → a native lifecycle policy --------------------------------------

# The "keep everything matching" idiom: a count no repository reaches (the default quota is
# 100,000 images), so the rule expires nothing and shields its images from lower rules.
KEEP_ALL_COUNT = 1_000_000


class CompiledLifecycle(BaseModel):
    """The native policy for a set of retention rules, and what it could not express.

    `policy` is None when no rule can be expressed. Each note names the retention rule
    (`rules[2] keep_semver`) and why ECR cannot do what it does.
    """

    policy: LifecyclePolicy | None
    notes: list[str] = []


def compile_retention(
    rules: Sequence[RetentionRule], *, repository: str | None = None
) -> CompiledLifecycle:
    """Compile steward retention rules to an ECR lifecycle policy where ECR can express them.

    ECR applies the first rule (by priority) whose selection matches an image, while steward
    lets any keep beat any expire; the order always_keep → keep_newest → expire_tagged →
    expire_untagged gives the same outcome except where noted. `repository` limits the rules to
    those whose globs select it (a lifecycle policy belongs to one repository).
    """
    from chalicelib.retention import (
        AlwaysKeep,
        ExpireTagged,
        ExpireUntagged,
        KeepNewest,
        KeepSemver,
    )

    notes: list[str] = []
    keep_all: list[tuple[str, str]] = []  # (label, pattern)
    counts: list[tuple[str, str, int]] = []
    ages: list[tuple[str, str, int]] = []
    untagged: list[tuple[str, int]] = []
    for n, rule in enumerate(rules):
        label = f"rules[{n}] {rule.kind}"
        if repository is not None and not rule.selects(repository):
            continue
        if rule.dry_run:
            notes.append(f"{label}: a dry-run rule deletes nothing, so it is left out")
            continue
        if isinstance(rule, KeepSemver):
            notes.append(
                f"{label}: ECR orders images by push time only, not by semantic version; "
                "keep_semver has no lifecycle equivalent"
            )
            continue
        if isinstance(rule, ExpireUntagged):
            if rule.older_than_days < 1:
                notes.append(f"{label}: ECR's countNumber is at least 1 day; 0 cannot be expressed")
            else:
                untagged.append((label, rule.older_than_days))
            continue
        problem = _pattern_problem(rule.tags)
        if problem:
            notes.append(f"{label}: tags {rule.tags!r} {problem}")
            continue
        if isinstance(rule, AlwaysKeep):
            keep_all.append((label, rule.tags))
        elif isinstance(rule, KeepNewest):
            if not rule.expire_rest:
                notes.append(
                    f"{label}: an ECR rule that keeps the newest {rule.count} also shields the "
                    "older matching images from every lower rule; keep-only (expire_rest: false) "
                    "cannot be expressed"
                )
            elif rule.count < 1:
                notes.append(f"{label}: ECR keeps at least 1 image (countNumber ≥ 1); 0 cannot")
            else:
                counts.append((label, rule.tags, rule.count))
        elif isinstance(rule, ExpireTagged):
            if rule.older_than_days < 1:
                notes.append(f"{label}: ECR's countNumber is at least 1 day; 0 cannot be expressed")
            else:
                ages.append((label, rule.tags, rule.older_than_days))

    compiled: list[dict[str, Any]] = []
    used: dict[str, str] = {}

    def add(label: str, selection: dict[str, Any]) -> None:
        pattern = (selection.get("tagPatternList") or [None])[0]
        if pattern is not None:
            if pattern in used:
                # The earlier rule selects exactly these images, so this one would never act.
                notes.append(f"{label}: {used[pattern]} already governs tags {pattern!r}")
                return
            used[pattern] = label
        compiled.append(
            {
                "rulePriority": len(compiled) + 1,
                "description": f"steward retention {label}",
                "selection": selection,
                "action": {"type": "expire"},
            }
        )

    for label, pattern in keep_all:
        add(
            label,
            {
                "tagStatus": "tagged",
                "tagPatternList": [pattern],
                "countType": "imageCountMoreThan",
                "countNumber": KEEP_ALL_COUNT,
            },
        )
    if len(counts) > 1:
        notes.append(
            "keep_newest rules "
            + ", ".join(label for label, _, _ in counts)
            + ": an image matching more than one is counted by the first only in ECR"
        )
    for label, pattern, count in counts:
        selection = {"tagStatus": "tagged", "tagPatternList": [pattern]}
        add(label, selection | {"countType": "imageCountMoreThan", "countNumber": count})
    for label, pattern, days in ages:
        selection = {"tagStatus": "tagged", "tagPatternList": [pattern]}
        add(
            label,
            selection | {"countType": "sinceImagePushed", "countUnit": "days", "countNumber": days},
        )
    if untagged:
        label, days = min(untagged, key=lambda item: item[1])
        if len(untagged) > 1:
            notes.append(
                "expire_untagged rules "
                + ", ".join(other for other, _ in untagged)
                + f": ECR allows one untagged rule; the shortest ({days} days) is used"
            )
        add(
            label,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": days,
            },
        )
    if len(compiled) > MAX_RULES:
        notes.append(f"{len(compiled) - MAX_RULES} rules beyond ECR's {MAX_RULES} are left out")
        compiled = compiled[:MAX_RULES]
    if not compiled:
        return CompiledLifecycle(policy=None, notes=notes)
    return CompiledLifecycle(policy=parse_policy({"rules": compiled}), notes=notes)


def _pattern_problem(glob: str) -> str | None:
    """Why a retention tag glob is not an ECR tag pattern (only `*`, at most four)."""
    if any(c in glob for c in "?["):
        return "uses ? or [...], and ECR tag patterns only know *"
    if glob.count("*") > MAX_WILDCARDS:
        return f"has more than {MAX_WILDCARDS} wildcards, ECR's limit"
    return None
