"""Steward retention rules compiled to a native ECR lifecycle policy, where they can be."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
)

from chalicelib.ecr.lifecycle_policy import MAX_RULES, MAX_WILDCARDS, LifecyclePolicy, parse_policy
from chalicelib.policy.retention import (
    AlwaysKeep,
    ExpireTagged,
    ExpireUntagged,
    KeepNewest,
    KeepSemver,
)

if TYPE_CHECKING:
    from chalicelib.policy.retention import RetentionRule


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
