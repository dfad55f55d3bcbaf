"""Push -> tags, the pure planner: semver aliases, `latest`, rendered templates and copies.

`plan_tags` decides, from the rules, the repository and its tagged images, with a reason, which
tags to put, keep or leave blocked. Everything a push derives is a function of the pushed tag and
the repository as it is now, not of the event: an alias goes to the highest release of its line,
and a template or copy goes to the digest the pushed tag points at now. Replays and late events end
in the same state, and an alias never moves to a lower version. A pushed tag that the rules would
derive from the image's other tags is a derived tag and seeds nothing (loop safety: the applier's
own put-image calls make ECR emit PUSH events).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from semver import Version

from chalicelib.ecr.models import ImageDetail, RepositoryInfo
from chalicelib.kernel.clock import as_utc
from chalicelib.oci.manifests import digest_hex, short_digest
from chalicelib.oci.names import tag_problem
from chalicelib.oci.versions import parse_version
from chalicelib.policy.tagging import TaggingRule
from chalicelib.policy.templates import MissingValue, match_groups, render_template

Action = Literal["put", "keep", "blocked"]


Kind = Literal["minor", "major", "latest", "template", "copy"]


@dataclass(frozen=True)
class _Release:
    prefix: str  # "v" or "": aliases keep the prefix style of their release
    version: Version
    tag: str
    digest: str


class TagDecision(BaseModel):
    """One tag the plan looked at: where it should point, where it points, what to do and why."""

    tag: str
    digest: str
    current_digest: str | None = None
    action: Action
    kind: Kind
    rule: int  # index of the rule in the list given to the planner
    reason: str


class TaggingPlan(BaseModel):
    repository: str
    digest: str
    pushed_tag: str | None
    # The tag among the image's others that the pushed tag derives from (then nothing is planned).
    derived_from: str | None = None
    decisions: list[TagDecision] = []
    notes: list[str] = []

    @property
    def puts(self) -> list[TagDecision]:
        return [d for d in self.decisions if d.action == "put"]


@dataclass(frozen=True)
class _Want:
    tag: str
    kind: Kind
    rule: int
    source: str  # the template or copy it came from, for the reason
    # For aliases: the (prefix, major, minor) line; minor is None for the MAJOR alias, and the
    # whole line is None for `latest`.
    line: tuple[str, int, int | None] | None = None
    invalid: str | None = None


class _State:
    """The repository's tags as describe-images reported them."""

    def __init__(
        self, images: list[ImageDetail], digest: str, pushed_tag: str | None, now: datetime
    ) -> None:
        self.tag_digest: dict[str, str] = {}
        self.digest_tags: dict[str, set[str]] = {}
        self.pushed_at: dict[str, datetime] = {}
        for image in sorted(images, key=lambda i: i.digest):  # input order must not matter
            self.pushed_at[image.digest] = as_utc(image.pushed_at)
            for tag in image.tags:
                self.tag_digest[tag] = image.digest
        if pushed_tag and pushed_tag not in self.tag_digest:
            # describe-images can lag the event: trust the event for a tag it does not list yet.
            self.tag_digest[pushed_tag] = digest
        for tag, holder in self.tag_digest.items():
            self.digest_tags.setdefault(holder, set()).add(tag)
        self.now = as_utc(now)

    def date_of(self, digest: str) -> datetime:
        return self.pushed_at.get(digest, self.now)


def plan_tags(
    rules: list[TaggingRule],
    repository: RepositoryInfo,
    images: list[ImageDetail],
    digest: str,
    pushed_tag: str | None,
    now: datetime,
) -> TaggingPlan:
    """Decide which tags a push derives. Pure: the same inputs always give an equal plan.

    `images` are the repository's tagged images after the push; `now` is only used as the push
    date of an image `images` does not list.
    """
    plan = TaggingPlan(repository=repository.name, digest=digest, pushed_tag=pushed_tag)
    applicable = [(n, rule) for n, rule in enumerate(rules) if rule.selects(repository.name)]
    if pushed_tag is None:
        plan.notes.append("pushed by digest only: derives nothing")
        return plan
    if not applicable:
        plan.notes.append(f"no tagging rule selects repository {repository.name}")
        return plan

    state = _State(images, digest, pushed_tag, now)
    # Everything follows the pushed tag as it is now, so a late event converges to the same state.
    subject = state.tag_digest[pushed_tag]
    if subject != digest:
        plan.notes.append(
            f"{pushed_tag} now points at {short_digest(subject)}, "
            f"not the pushed {short_digest(digest)}: planning for the current state"
        )
    subject_hex = digest_hex(subject)
    subject_date = state.date_of(subject)

    for other in sorted(state.digest_tags.get(subject, set()) - {pushed_tag}):
        for _, rule in applicable:
            derived = _derive(rule, 0, other, subject_hex, subject_date, [])
            if any(want.tag == pushed_tag for want in derived):
                plan.derived_from = other
                plan.notes.append(
                    f"{pushed_tag} is derived from {other} on the same image: it seeds no tags"
                )
                return plan

    wanted: list[_Want] = []
    for index, rule in applicable:
        wanted.extend(_derive(rule, index, pushed_tag, subject_hex, subject_date, plan.notes))

    chosen: dict[str, TagDecision] = {}
    for want in wanted:
        decision = _decide(want, rules[want.rule], pushed_tag, subject, state, repository)
        first = chosen.get(want.tag)
        if first is None:
            chosen[want.tag] = decision
            plan.decisions.append(decision)
        elif first.digest != decision.digest:
            plan.notes.append(
                f"rule {want.rule} also wants {want.tag} on {short_digest(decision.digest)}; "
                f"rule {first.rule} comes first and wins"
            )
    return plan


def _derive(
    rule: TaggingRule,
    index: int,
    pushed_tag: str,
    digest_hex: str,
    date: datetime,
    notes: list[str],
) -> list[_Want]:
    """The tags `rule` derives from `pushed_tag`, in a fixed order."""
    groups = rule.match_tag(pushed_tag)
    if groups is None:
        return []
    wanted: list[_Want] = []
    values: dict[str, str | None] = {"tag": pushed_tag, **groups}
    parsed = parse_version(pushed_tag)
    if parsed:
        values.update(
            major=str(parsed[1].major), minor=str(parsed[1].minor), patch=str(parsed[1].patch)
        )
    if rule.semver_aliases or rule.latest:
        wanted.extend(_aliases(rule, index, pushed_tag, parsed, notes))

    rendered: list[tuple[str, str, Kind, dict[str, str | None]]] = [
        (template, f"template '{template}'", "template", values) for template in rule.templates
    ]
    for copy in rule.copies:
        found = re.fullmatch(copy.from_regex, pushed_tag)
        if found:
            copy_values = {**values, **match_groups(found)}
            rendered.append(
                (copy.to, f"copy '{copy.from_regex}' → '{copy.to}'", "copy", copy_values)
            )
    for template, source, kind, with_values in rendered:
        try:
            tag = render_template(template, digest_hex, date, with_values)
        except MissingValue as missing:
            notes.append(f"rule {index}: {source} skipped: no {{{missing}}} in {pushed_tag}")
            continue
        wanted.append(_Want(tag, kind, index, source, invalid=tag_problem(tag)))
    return wanted


def _aliases(
    rule: TaggingRule,
    index: int,
    pushed_tag: str,
    parsed: tuple[str, Version] | None,
    notes: list[str],
) -> list[_Want]:
    if parsed is None:
        notes.append(f"rule {index}: {pushed_tag} is not a MAJOR.MINOR.PATCH release: no aliases")
        return []
    prefix, version = parsed
    if version.prerelease and not rule.prerelease_aliases:
        notes.append(
            f"rule {index}: {pushed_tag} is a pre-release and prerelease_aliases is off: no aliases"
        )
        return []
    wanted = []
    if rule.semver_aliases:
        minor = f"{prefix}{version.major}.{version.minor}"
        wanted.append(_Want(minor, "minor", index, "", (prefix, version.major, version.minor)))
        wanted.append(
            _Want(f"{prefix}{version.major}", "major", index, "", (prefix, version.major, None))
        )
    if rule.latest:
        wanted.append(_Want("latest", "latest", index, ""))
    return wanted


def _decide(
    want: _Want,
    rule: TaggingRule,
    pushed_tag: str,
    subject: str,
    state: _State,
    repository: RepositoryInfo,
) -> TagDecision:
    current = state.tag_digest.get(want.tag)

    def decision(action: Action, target: str, reason: str) -> TagDecision:
        return TagDecision(
            tag=want.tag,
            digest=target,
            current_digest=current,
            action=action,
            kind=want.kind,
            rule=want.rule,
            reason=reason,
        )

    if want.invalid:
        return decision(
            "blocked", subject, f"blocked: {want.source} renders {want.tag!r}, {want.invalid}"
        )

    if want.kind in ("template", "copy"):
        target, moving = (
            subject,
            f"{want.tag} → {short_digest(subject)}: {want.source} on {pushed_tag}",
        )
        higher_than_pushed = None
    else:
        best = _highest(rule, want, state)
        target = best.digest
        label = _line_label(want)
        moving = f"{want.tag} → {best.tag}: highest {label}"
        pushed = parse_version(pushed_tag)
        higher_than_pushed = (
            f"{best.tag} is higher than pushed {pushed_tag}"
            if pushed and best.version > pushed[1]
            else None
        )

    if current == target:
        if higher_than_pushed:
            return decision("keep", target, f"{want.tag} unchanged: {higher_than_pushed}")
        already = moving.replace(" → ", " already points at ", 1)
        return decision("keep", target, already)
    if current is not None:
        immutable = _immutable_because(repository, want.tag)
        if immutable:
            return decision(
                "blocked",
                target,
                f"blocked: {immutable} and {want.tag} points at {short_digest(current)} "
                f"(wanted {moving})",
            )
        moving += f" (was {short_digest(current)})"
    if higher_than_pushed:
        moving += f"; {higher_than_pushed}"
    return decision("put", target, moving)


def _highest(rule: TaggingRule, want: _Want, state: _State) -> _Release:
    """The highest release of the alias's line; the alias's current holder wins a tie."""
    releases = []
    for tag, holder in state.tag_digest.items():
        if rule.match_tag(tag) is None:
            continue
        parsed = parse_version(tag)
        if parsed is None or (parsed[1].prerelease and not rule.prerelease_aliases):
            continue
        prefix, version = parsed
        if want.line is not None:
            line_prefix, major, minor = want.line
            if prefix != line_prefix or version.major != major:
                continue
            if minor is not None and version.minor != minor:
                continue
        releases.append(_Release(prefix, version, tag, holder))
    # Never empty: the pushed release is in the state and in its own lines.
    top = max(r.version for r in releases)
    best = sorted((r for r in releases if r.version == top), key=lambda r: r.tag)
    current = state.tag_digest.get(want.tag)
    return next((r for r in best if r.digest == current), best[0])


def _line_label(want: _Want) -> str:
    if want.line is None:
        return "release"
    prefix, major, minor = want.line
    return (
        f"{prefix}{major}.{minor}.x release" if minor is not None else f"{prefix}{major}.x release"
    )


def _immutable_because(repository: RepositoryInfo, tag: str) -> str | None:
    """Why an existing `tag` cannot move in this repository, or None if it can."""
    mode = repository.tag_mutability
    if mode == "IMMUTABLE":
        return "repository is IMMUTABLE"
    matched = next((f for f in repository.mutability_exclusions if _wildcard(f, tag)), None)
    if mode == "MUTABLE_WITH_EXCLUSION" and matched:
        return f"repository is MUTABLE_WITH_EXCLUSION, {tag} matches exclusion filter {matched!r}"
    if mode == "IMMUTABLE_WITH_EXCLUSION" and not matched:
        return f"repository is IMMUTABLE_WITH_EXCLUSION, {tag} matches no exclusion filter"
    return None


def _wildcard(pattern: str, tag: str) -> bool:
    # ECR exclusion filters are WILDCARD type: `*` is the only special character.
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), tag) is not None
