"""Retention's pure planner: keep or delete for every image of a repository, over its whole image
graph, with the rule or protection that decided it.

From the rules, the repository's images (describe-images data, plus the manifests of its indexes),
what is in use and when each image was first marked deletable. Precedence, highest first:
protections (always-keep, in use, gate promotion) -> keep rules (the newest N per tag pattern, the
top N semver releases) -> expire rules (beyond the newest N, untagged or tagged older than N days)
-> keep ("no rule expires it"). An index with its children and referrers is one image: rules look
at the top-level image, and its members share its fate. A member that is in use, or reachable from
any kept image, keeps the whole unit.
"""

from __future__ import annotations

import fnmatch
import gc
import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.ecr.models import ImageDetail
from chalicelib.kernel.clock import as_utc
from chalicelib.oci.graph import ImageGraph
from chalicelib.oci.manifests import Manifest, digest_hex
from chalicelib.oci.versions import parse_version
from chalicelib.policy.retention import (
    AlwaysKeep,
    ExpireTagged,
    ExpireUntagged,
    KeepNewest,
    KeepSemver,
    RetentionRule,
    RetentionSettings,
)

Role = Literal["image", "index", "child", "referrer"]


class ImageDecision(BaseModel):
    """Keep or delete for one digest, and why. `deferred` says why a delete waits this run."""

    # Frozen: decisions are built in bulk without validation (see _decision); only the planner
    # sets `deferred`, through _defer_one.
    model_config = ConfigDict(frozen=True)

    digest: str
    tags: list[str] = []
    pushed_at: datetime
    role: Role
    unit: str  # the top-level digest whose fate this image shares
    action: Literal["keep", "delete"]
    reason: str
    rule: str | None = None  # "rules[2] keep_newest" when a rule decided
    protection: str | None = None  # "in use: …", "always_keep …", "gate promoted …"
    deferred: str | None = None  # "dry run", "grace period until …", "cap …"


_DECISION_FIELDS = frozenset(ImageDecision.model_fields)


class RetentionPlan(BaseModel):
    repository: str
    now: datetime
    images: int
    decisions: list[ImageDecision]
    notes: list[str] = []
    cap: int = 0  # the most images this run may delete
    capped: str | None = None
    # For each image to delete, the images it goes with (its indexes, its subject): those are
    # deleted in an earlier batch, and if one of them fails this one is not attempted.
    after: dict[str, list[str]] = {}

    @property
    def deletions(self) -> list[ImageDecision]:
        """What this run deletes: delete decisions that nothing defers."""
        return [d for d in self.decisions if d.action == "delete" and d.deferred is None]

    def marked_units(self) -> set[str]:
        """Units planned for deletion, deferred or not (grace-period marks are per unit)."""
        return {d.unit for d in self.decisions if d.action == "delete" and d.digest == d.unit}

    def decision(self, digest: str) -> ImageDecision:
        return next(d for d in self.decisions if d.digest == digest)


class InUse(BaseModel):
    """References to this repository's images from runtimes, with where each was found."""

    by_tag: dict[str, str] = {}
    by_digest: dict[str, str] = {}


def plan_retention(
    settings: RetentionSettings,
    repository: str,
    images: list[ImageDetail],
    index_manifests: Mapping[str, Manifest],
    now: datetime,
    *,
    in_use: InUse | None = None,
    promoted: Mapping[str, datetime] | None = None,
    marks: Mapping[str, datetime] | None = None,
    dry_run: bool = False,
) -> RetentionPlan:
    """Decide keep or delete, with the reason, for every image of one repository.

    `index_manifests` holds the manifests of the indexes (children are learnt from them);
    `promoted` the digests the gate promoted and when; `marks` when each unit was first marked
    deletable (grace period). Pure: no I/O.
    """
    # A plan allocates a few hundred thousand long-lived, acyclic objects; the cyclic collector's
    # full passes over them would cost a third of the planning time and free nothing.
    with _gc_paused():
        return _plan(
            settings, repository, images, index_manifests, now, in_use, promoted, marks, dry_run
        )


def _plan(
    settings: RetentionSettings,
    repository: str,
    images: list[ImageDetail],
    index_manifests: Mapping[str, Manifest],
    now: datetime,
    in_use: InUse | None,
    promoted: Mapping[str, datetime] | None,
    marks: Mapping[str, datetime] | None,
    dry_run: bool,
) -> RetentionPlan:

    now = as_utc(now)
    graph = ImageGraph(images, index_manifests)
    notes: list[str] = []
    if graph.unread_indexes:
        notes.append(
            f"{len(graph.unread_indexes)} index manifests could not be read; their children "
            "look untagged, and ECR refuses to delete a child its index still lists"
        )
    numbered = [(i, rule) for i, rule in enumerate(settings.rules) if rule.selects(repository)]
    protected = _protections(graph, numbered, in_use, promoted, settings, now)
    roots = graph.roots()
    verdicts = _judge_roots(graph, numbered, roots, protected, now)

    # Most roots stand alone; only those with children or referrers need their unit listed.
    units = {root: graph.members(root) for root in roots if graph.dependents(root)}
    members = {root: units.get(root) or (root,) for root in roots}
    # A unit kept anywhere keeps every image reachable from it.
    kept_by: dict[str, str] = {}
    for root in roots:
        if verdicts[root][0] == "keep":
            for member in members[root]:
                kept_by.setdefault(member, root)

    decisions: dict[str, ImageDecision] = {}
    for root in sorted(roots, key=lambda d: graph.images[d].pushed_at):
        action, reason, rule, protection = verdicts[root]
        for member in members[root]:
            if member in decisions:
                continue
            image = graph.images[member]
            role = _role(graph, member)
            if member == root:
                decisions[member] = _decision(image, role, root, action, reason, rule, protection)
            elif member in kept_by:
                keeper = kept_by[member]
                short = digest_hex(keeper)[:12]
                why = f"{_belongs(graph, member)} {short}, kept: {verdicts[keeper][1]}"
                decisions[member] = _decision(image, role, keeper, "keep", why, None, None)
            else:
                why = f"{_belongs(graph, member)} {digest_hex(root)[:12]}, deleted with it"
                decisions[member] = _decision(image, role, root, "delete", why, rule, None)

    plan_decisions = list(decisions.values())
    _defer(plan_decisions, settings, numbered, marks or {}, now, dry_run)
    cap = min(settings.max_deletions, int(settings.max_deletion_share * len(graph.images)))
    capped = _cap(plan_decisions, settings, cap, len(graph.images), graph)
    dependent = graph.indexes_of.keys() | graph.subject_of.keys()
    after = {
        d.digest: parents
        for d in plan_decisions
        if d.action == "delete" and d.digest in dependent and (parents := graph.parents(d.digest))
    }
    # model_construct: every field is built here, typed; validating 100k decisions again
    # would double the planning time.
    return RetentionPlan.model_construct(
        after=after,
        repository=repository,
        now=now,
        images=len(graph.images),
        decisions=plan_decisions,
        notes=notes,
        cap=cap,
        capped=capped,
    )


Verdict = tuple[Literal["keep", "delete"], str, str | None, str | None]


def _protections(
    graph: ImageGraph[ImageDetail],
    numbered: list[tuple[int, RetentionRule]],
    in_use: InUse | None,
    promoted: Mapping[str, datetime] | None,
    settings: RetentionSettings,
    now: datetime,
) -> dict[str, str]:
    """digest → why it must never be deleted (before any unit is formed)."""
    protected: dict[str, str] = {}
    digest_of_tag = {tag: d for d, image in graph.images.items() for tag in image.tags}
    if in_use is not None:
        for digest, source in in_use.by_digest.items():
            if digest in graph.images:
                protected.setdefault(digest, f"in use by digest: {source}")
        for tag, source in in_use.by_tag.items():
            if tag in digest_of_tag:
                protected.setdefault(digest_of_tag[tag], f"in use as :{tag}: {source}")
    days = settings.in_use.gate_promoted_days
    if promoted and days:
        horizon = now - timedelta(days=days)
        for digest, when in promoted.items():
            if digest in graph.images and as_utc(when) >= horizon:
                protected.setdefault(
                    digest, f"gate promoted {as_utc(when):%Y-%m-%d %H:%M} (within {days} days)"
                )
    keepers = [(i, r) for i, r in numbered if isinstance(r, AlwaysKeep)]
    if keepers:
        for digest, image in graph.images.items():
            for i, rule in keepers:
                matched = next((t for t in image.tags if _glob(rule.tags)(t)), None)
                if matched is not None:
                    why = f"{_label(i, rule)}: tag {matched} matches {rule.tags}"
                    protected.setdefault(digest, why)
                    break
    return protected


def _judge_roots(
    graph: ImageGraph[ImageDetail],
    numbered: list[tuple[int, RetentionRule]],
    roots: list[str],
    protected: dict[str, str],
    now: datetime,
) -> dict[str, Verdict]:
    images = graph.images
    keeps: dict[str, tuple[str, str]] = {}  # root → (reason, rule)
    expires: dict[str, tuple[str, str]] = {}
    tagged_roots = [r for r in roots if images[r].tags and not graph.is_orphan(r)]
    for i, rule in numbered:
        label = _label(i, rule)
        if isinstance(rule, KeepNewest):
            matching = [r for r in tagged_roots if _any_match(images[r].tags, rule.tags)]
            matching.sort(key=lambda d: images[d].pushed_at, reverse=True)
            for rank, root in enumerate(matching, start=1):
                if rank <= rule.count:
                    why = f"{label}: #{rank} of the newest {rule.count} {rule.tags}"
                    keeps.setdefault(root, (why, label))
                elif rule.expire_rest:
                    why = f"{label}: beyond the newest {rule.count} {rule.tags} (#{rank})"
                    expires.setdefault(root, (why, label))
        elif isinstance(rule, KeepSemver):
            ranked = _top_releases(tagged_roots, images, rule)
            for rank, (root, tag) in enumerate(ranked, start=1):
                why = f"{label}: release {tag} is #{rank} of the top {rule.count}"
                keeps.setdefault(root, (why, label))
        elif isinstance(rule, ExpireUntagged):
            horizon = now - timedelta(days=rule.older_than_days)
            for root in roots:
                image = images[root]
                if (
                    not image.tags
                    and not graph.is_orphan(root)
                    and as_utc(image.pushed_at) < horizon
                ):
                    age = _age(image, now)
                    why = f"{label}: untagged, pushed {age} ago (> {rule.older_than_days}d)"
                    expires.setdefault(root, (why, label))
        elif isinstance(rule, ExpireTagged):
            horizon = now - timedelta(days=rule.older_than_days)
            for root in tagged_roots:
                image = images[root]
                matched = next((t for t in image.tags if _glob(rule.tags)(t)), None)
                if matched is not None and as_utc(image.pushed_at) < horizon:
                    why = (
                        f"{label}: tag {matched} matches {rule.tags}, "
                        f"pushed {_age(image, now)} ago (> {rule.older_than_days}d)"
                    )
                    expires.setdefault(root, (why, label))

    guarded = _guarded_roots(graph, protected)
    verdicts: dict[str, Verdict] = {}
    for root in roots:
        guard = guarded.get(root)
        if guard is not None:
            verdicts[root] = ("keep", guard, None, guard)
        elif root in keeps:
            reason, label = keeps[root]
            verdicts[root] = ("keep", reason, label, None)
        elif graph.is_orphan(root):
            subject = graph.subject_of[root]
            verdicts[root] = (
                "delete",
                f"orphan: its subject {digest_hex(subject)[:12]} is gone",
                None,
                None,
            )
        elif root in expires:
            reason, label = expires[root]
            verdicts[root] = ("delete", reason, label, None)
        else:
            verdicts[root] = ("keep", "no rule expires it", None, None)
    return verdicts


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _guarded_roots(graph: ImageGraph[ImageDetail], protected: dict[str, str]) -> dict[str, str]:
    """root → the protection of some image in its unit (walking up from each protected image)."""
    guarded: dict[str, str] = {}
    for digest, why in protected.items():
        stack, seen = [digest], {digest}
        while stack:
            current = stack.pop()
            parents = graph.parents(current)
            if not parents:
                guarded.setdefault(current, why)
            for parent in parents:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    return guarded


def _version_key(version: Any) -> tuple[Any, ...]:
    """A tuple that orders as semver precedence does (build metadata ignored), compared in C:
    semver's own comparisons run in Python and dominated planning time."""
    if not version.prerelease:
        return (version.major, version.minor, version.patch, 1)
    parts = tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(version.prerelease).split(".")
    )
    return (version.major, version.minor, version.patch, 0, parts)


def _top_releases(
    roots: list[str], images: Mapping[str, ImageDetail], rule: KeepSemver
) -> list[tuple[str, str]]:
    """The `rule.count` highest releases as (root, its highest release tag), highest first."""

    best: dict[str, tuple[Any, str]] = {}
    for root in roots:
        for tag in images[root].tags:
            if not _glob(rule.tags)(tag) or not _RELEASE_START.match(tag):
                continue
            parsed = parse_version(tag)
            if parsed is None:
                continue
            version = parsed[1]
            if version.prerelease and not rule.prereleases:
                continue
            key = _version_key(version)
            if root not in best or key > best[root][0]:
                best[root] = (key, tag)
    ranked = heapq.nlargest(rule.count, best.items(), key=lambda item: item[1][0])
    return [(root, tag) for root, (_, tag) in ranked]


def _defer(
    decisions: list[ImageDecision],
    settings: RetentionSettings,
    numbered: list[tuple[int, RetentionRule]],
    marks: Mapping[str, datetime],
    now: datetime,
    dry_run: bool,
) -> None:
    """Hold back deletes that a dry run or the grace period forbids this run."""
    dry_rules = {_label(i, r) for i, r in numbered if r.dry_run}
    grace = timedelta(days=settings.grace_period_days)
    for decision in decisions:
        if decision.action != "delete":
            continue
        if dry_run or settings.dry_run:
            _defer_one(decision, "dry run")
        elif decision.rule in dry_rules:
            _defer_one(decision, f"dry run ({decision.rule})")
        elif grace:
            first = as_utc(marks[decision.unit]) if decision.unit in marks else now
            if first + grace > now:
                _defer_one(
                    decision,
                    (
                        f"grace period: first marked {first:%Y-%m-%d %H:%M}, "
                        f"deletable after {first + grace:%Y-%m-%d %H:%M}"
                    ),
                )


def _cap(
    decisions: list[ImageDecision],
    settings: RetentionSettings,
    limit: int,
    total: int,
    graph: ImageGraph[ImageDetail],
) -> str | None:
    """Enforce the per-run cap (a count and a share of the repository); returns why, if hit."""
    due = [d for d in decisions if d.action == "delete" and d.deferred is None]
    if len(due) <= limit:
        return None
    why = (
        f"cap: this run would delete {len(due)} of {total} images; the cap is {limit} "
        f"(max_deletions {settings.max_deletions}, max_deletion_share "
        f"{settings.max_deletion_share:g})"
    )
    by_unit: dict[str, list[ImageDecision]] = {}
    for decision in due:
        by_unit.setdefault(decision.unit, []).append(decision)
    budget = limit if settings.on_cap == "oldest_first" else 0
    # Whole units only, oldest first: a unit is never half deleted.
    for unit in sorted(by_unit, key=lambda u: graph.images[u].pushed_at):
        members = by_unit[unit]
        if len(members) <= budget:
            budget -= len(members)
            continue
        budget = 0
        for decision in members:
            _defer_one(decision, why)
    return why


def _decision(
    image: ImageDetail,
    role: Role,
    unit: str,
    action: Literal["keep", "delete"],
    reason: str,
    rule: str | None,
    protection: str | None,
) -> ImageDecision:
    # What model_construct does, without its per-field loop: a plan makes 100k of these, every
    # field typed by construction here, and validation would cost a third of the planning time.
    decision = ImageDecision.__new__(ImageDecision)
    object.__setattr__(
        decision,
        "__dict__",
        {
            "digest": image.digest,
            "tags": image.tags,
            "pushed_at": image.pushed_at,
            "role": role,
            "unit": unit,
            "action": action,
            "reason": reason,
            "rule": rule,
            "protection": protection,
            "deferred": None,
        },
    )
    object.__setattr__(decision, "__pydantic_fields_set__", _DECISION_FIELDS)
    object.__setattr__(decision, "__pydantic_extra__", None)
    object.__setattr__(decision, "__pydantic_private__", None)
    return decision


def _defer_one(decision: ImageDecision, why: str) -> None:
    # Straight into the instance dict: the fields-set is shared by every decision (see _decision).
    decision.__dict__["deferred"] = why


def _role(graph: ImageGraph[ImageDetail], digest: str) -> Role:
    if digest in graph.subject_of:
        return "referrer"
    if digest in graph.indexes_of:
        return "child"
    return "index" if digest in graph.children or digest in graph.unread_indexes else "image"


def _belongs(graph: ImageGraph[ImageDetail], digest: str) -> str:
    return "referrer of" if digest in graph.subject_of else "child of"


def _label(index: int, rule: RetentionRule) -> str:
    label = f"rules[{index}] {rule.kind}"
    return f"{label} ({rule.description})" if rule.description else label


def _any_match(tags: Iterable[str], pattern: str) -> bool:
    matches = _glob(pattern)
    return any(matches(tag) for tag in tags)


@lru_cache(maxsize=256)
def _glob(pattern: str) -> Callable[[str], bool]:
    """A compiled fnmatch glob (case-sensitive, like fnmatchcase): it runs 100k times a plan."""
    match = re.compile(fnmatch.translate(pattern)).match
    return lambda text: match(text) is not None


# A tag that could be a version (1.2.3, v1.2.3): the cheap test before semver parses it.
_RELEASE_START = re.compile(r"[vV]?\d")


def _age(image: ImageDetail, now: datetime) -> str:
    delta = now - as_utc(image.pushed_at)
    return f"{delta.days}d" if delta.days else f"{int(delta.total_seconds() // 3600)}h"
