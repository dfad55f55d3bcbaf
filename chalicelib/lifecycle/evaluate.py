"""ECR lifecycle-policy semantics: which images a lifecycle policy expires or transitions, and why,
reproducing ECR's documented evaluation (rule priority, counts, ages, storage classes, indexes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from chalicelib.ecr.lifecycle_policy import (
    ActionType,
    LifecyclePolicy,
    LifecycleRule,
    Selection,
    StorageClass,
)

if TYPE_CHECKING:
    pass


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
