"""Push → tags: semver aliases, `latest`, rendered templates and copies.

`plan_tags` is pure: from the rules, the repository and its tagged images it decides, with a reason,
which tags to put, keep or leave blocked. `apply_tagging_plan` carries a plan out through the
registry gateway. `tag_pushed_image` reads, plans and applies for one push event.

Two properties make it safe under EventBridge's at-least-once, unordered delivery:

- Convergence. Everything a push derives is a function of the pushed tag and the repository as it
  is now, not of the event: an alias goes to the highest release of its line in the repository, and
  a template or copy goes to the digest the pushed tag points at now. Replays and late events end
  in the same state, and an alias never moves to a lower version.
- Loop safety. The applier's own put-image calls make ECR emit PUSH events. A pushed tag that the
  rules would derive from the image's other tags is a derived tag and seeds nothing, so a copy like
  `(.*)` → `copy-{1}` stops after one step.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from semver import Version

from chalicelib.events import Envelope
from chalicelib.images import Manifest
from chalicelib.registry import ImageDetail, Registry, RepositoryInfo, TagImmutable
from chalicelib.selection import RepositoryRule, rules_for

# Docker's tag grammar. ECR itself accepts up to 300 characters, but docker and containerd
# clients refuse tags over 128, so a longer tag could be put but never pulled by tag.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Placeholders every template may use; regex groups add their names (and numbers).
BASE_PLACEHOLDERS = frozenset({"digest", "date", "tag", "major", "minor", "patch"})

Action = Literal["put", "keep", "blocked"]
Kind = Literal["minor", "major", "latest", "template", "copy"]
Outcome = Literal["applied", "unchanged", "blocked", "planned"]


# --- the policy section ---------------------------------------------------------------------


class TagCopy(BaseModel):
    """Copy a tag matching `from_regex` (whole tag) to the tag rendered from `to`."""

    model_config = ConfigDict(extra="forbid")

    from_regex: str = Field(description="Regex on the whole pushed tag; its groups feed `to`.")
    to: str = Field(description="Template for the copy, e.g. `stable-{v}` or `copy-{1}`.")

    @field_validator("from_regex")
    @classmethod
    def _regex_compiles(cls, value: str) -> str:
        _compile(value)
        return value

    @field_validator("to")
    @classmethod
    def _template_is_valid(cls, value: str, info: ValidationInfo) -> str:
        if "from_regex" in info.data:  # otherwise its own error is already reported
            _check_template(value, _group_placeholders(re.compile(info.data["from_regex"])))
        return value


class TaggingRule(RepositoryRule):
    """One `tagging:` rule of the policy: which pushes it reacts to and which tags it derives."""

    match: str = Field(
        default="*",
        description="Glob on the pushed tag; also limits which tags count as releases.",
    )
    match_regex: str | None = Field(
        default=None,
        description="Regex on the whole pushed tag, instead of `match`; groups feed templates.",
    )
    semver_aliases: bool = Field(
        default=False,
        description="Point MAJOR.MINOR and MAJOR at the highest release of that line.",
    )
    latest: bool = Field(
        default=False, description="Point `latest` at the highest release in the repository."
    )
    prerelease_aliases: bool = Field(
        default=False, description="Let pre-releases (1.5.0-rc.1) take aliases and `latest`."
    )
    templates: list[str] = Field(
        default_factory=list,
        description="Tags rendered per push: {digest:12} {date} {date:%Y.%m.%d} {tag} "
        "{major} {minor} {patch} {<regex group>}.",
    )
    copies: list[TagCopy] = Field(default_factory=list)

    @field_validator("match_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("match", "*") != "*":
            raise ValueError("set either `match` or `match_regex`, not both")
        _group_placeholders(_compile(value))
        return value

    @field_validator("templates")
    @classmethod
    def _templates_are_valid(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if "match_regex" not in info.data:  # match_regex failed: its own error says why
            return value
        regex = info.data["match_regex"]
        groups = _group_placeholders(re.compile(regex)) if regex else frozenset()
        for index, template in enumerate(value):
            try:
                _check_template(template, groups)
            except ValueError as error:
                raise ValueError(f"templates[{index}]: {error}") from None
        return value

    def match_tag(self, tag: str) -> dict[str, str | None] | None:
        """The regex groups (by name and by number) if this rule reacts to `tag`, else None."""
        if self.match_regex is None:
            return {} if fnmatchcase(tag, self.match) else None
        found = re.fullmatch(self.match_regex, tag)
        return _groups(found) if found else None


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regex: {error}") from None


def _group_placeholders(pattern: re.Pattern[str]) -> frozenset[str]:
    clash = BASE_PLACEHOLDERS & set(pattern.groupindex)
    if clash:
        raise ValueError(f"group name {sorted(clash)[0]!r} shadows a built-in placeholder")
    return frozenset(pattern.groupindex) | {str(n) for n in range(1, pattern.groups + 1)}


def _groups(found: re.Match[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {str(n): g for n, g in enumerate(found.groups(), start=1)}
    values.update(found.groupdict())
    return values


# --- templates ------------------------------------------------------------------------------

_FORMATTER = string.Formatter()
# Rendered at load with these values: a template that cannot give a valid tag even for an
# ordinary push is refused then, rather than found out at the first push.
_SAMPLE_DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
_SAMPLE_VALUES = {"tag": "v1.2.3", "major": "1", "minor": "2", "patch": "3"}


class _MissingValue(Exception):
    """A placeholder has no value for this push (e.g. {major} for a tag that is not a version)."""


def _parse_template(template: str) -> list[tuple[str, str | None, str, str | None]]:
    try:
        return [
            (lit, field, spec or "", conv) for lit, field, spec, conv in _FORMATTER.parse(template)
        ]
    except ValueError as error:
        raise ValueError(f"{template!r}: {error}") from None


def _check_template(template: str, groups: frozenset[str]) -> None:
    known = BASE_PLACEHOLDERS | groups
    for _, field, spec, conversion in _parse_template(template):
        if field is None:
            continue
        if field not in known:
            raise ValueError(
                f"{template!r}: unknown placeholder {{{field}}} (known: {', '.join(sorted(known))})"
            )
        if conversion:
            raise ValueError(
                f"{template!r}: {{{field}!{conversion}}} conversions are not supported"
            )
        if field == "digest" and spec and not (spec.isdigit() and 1 <= int(spec) <= 64):
            raise ValueError(f"{template!r}: {{digest:N}} takes a length from 1 to 64")
        if field not in ("digest", "date") and spec:
            raise ValueError(f"{template!r}: {{{field}}} takes no format spec")
    sample = _render(
        template, "0" * 64, _SAMPLE_DATE, {**_SAMPLE_VALUES, **dict.fromkeys(groups, "x")}
    )
    problem = _tag_problem(sample)
    if problem:
        raise ValueError(f"{template!r} renders {sample!r}, {problem}")


def _render(template: str, digest_hex: str, date: datetime, values: dict[str, str | None]) -> str:
    parts = []
    for literal, field, spec, _ in _parse_template(template):
        parts.append(literal)
        if field is None:
            continue
        if field == "digest":
            parts.append(digest_hex[: int(spec)] if spec else digest_hex)
        elif field == "date":
            parts.append(date.strftime(spec or "%Y%m%d"))
        else:
            value = values.get(field)
            if value is None:
                raise _MissingValue(field)
            parts.append(value)
    return "".join(parts)


def _tag_problem(tag: str) -> str | None:
    """Why `tag` is not a valid image tag, or None."""
    if TAG_PATTERN.fullmatch(tag):
        return None
    if not tag:
        return "an empty tag"
    if len(tag) > 128:
        return f"{len(tag)} characters, over Docker's 128"
    return "not a valid tag: [A-Za-z0-9_] first, then [A-Za-z0-9_.-]"


# --- versions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Release:
    prefix: str  # "v" or "": aliases keep the prefix style of their release
    version: Version
    tag: str
    digest: str


def parse_version(tag: str) -> tuple[str, Version] | None:
    """(prefix, version) for a full MAJOR.MINOR.PATCH tag, `v` prefix allowed; else None.

    `1.4` and `1` are not versions: they are the aliases themselves.
    """
    prefix = "v" if tag.startswith("v") else ""
    try:
        version = Version.parse(tag[len(prefix) :])
    except ValueError:
        return None
    return prefix, version


# --- the plan -------------------------------------------------------------------------------


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
            self.pushed_at[image.digest] = _utc(image.pushed_at)
            for tag in image.tags:
                self.tag_digest[tag] = image.digest
        if pushed_tag and pushed_tag not in self.tag_digest:
            # describe-images can lag the event: trust the event for a tag it does not list yet.
            self.tag_digest[pushed_tag] = digest
        for tag, holder in self.tag_digest.items():
            self.digest_tags.setdefault(holder, set()).add(tag)
        self.now = _utc(now)

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
            f"{pushed_tag} now points at {_short(subject)}, not the pushed {_short(digest)}: "
            "planning for the current state"
        )
    subject_hex = _hex(subject)
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
                f"rule {want.rule} also wants {want.tag} on {_short(decision.digest)}; "
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
            copy_values = {**values, **_groups(found)}
            rendered.append(
                (copy.to, f"copy '{copy.from_regex}' → '{copy.to}'", "copy", copy_values)
            )
    for template, source, kind, with_values in rendered:
        try:
            tag = _render(template, digest_hex, date, with_values)
        except _MissingValue as missing:
            notes.append(f"rule {index}: {source} skipped: no {{{missing}}} in {pushed_tag}")
            continue
        wanted.append(_Want(tag, kind, index, source, invalid=_tag_problem(tag)))
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
        target, moving = subject, f"{want.tag} → {_short(subject)}: {want.source} on {pushed_tag}"
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
                f"blocked: {immutable} and {want.tag} points at {_short(current)} "
                f"(wanted {moving})",
            )
        moving += f" (was {_short(current)})"
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


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}" if hexpart else digest[:12]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- applying ----------------------------------------------------------------------------------


class TagResult(BaseModel):
    tag: str
    digest: str
    current_digest: str | None = None
    action: Action
    outcome: Outcome
    reason: str


class TaggingResult(BaseModel):
    repository: str
    digest: str
    pushed_tag: str | None
    dry_run: bool = False
    tags: list[TagResult] = []
    notes: list[str] = []

    def tags_with(self, outcome: Outcome) -> list[str]:
        return [t.tag for t in self.tags if t.outcome == outcome]


def apply_tagging_plan(
    registry: Registry, plan: TaggingPlan, *, dry_run: bool = False
) -> TaggingResult:
    """Carry out the plan's puts: one batch-get-image for all of them, one put-image per tag.

    The batch-get also checks each tag against its target, so a tag already there (a plan
    applied twice, or a race won by someone else) costs no put-image. A tag made immutable
    meanwhile comes back `blocked`, never retried; transient errors propagate, so the
    invocation is retried.
    """
    result = TaggingResult(
        repository=plan.repository,
        digest=plan.digest,
        pushed_tag=plan.pushed_tag,
        dry_run=dry_run,
        notes=list(plan.notes),
    )

    def record(decision: TagDecision, outcome: Outcome, reason: str | None = None) -> None:
        result.tags.append(
            TagResult(
                tag=decision.tag,
                digest=decision.digest,
                current_digest=decision.current_digest,
                action=decision.action,
                outcome=outcome,
                reason=reason or decision.reason,
            )
        )

    if dry_run:
        for decision in plan.decisions:
            record(decision, "planned")
        return result

    manifests, already = _fetch(registry, plan.repository, plan.puts) if plan.puts else ({}, set())

    for decision in plan.decisions:
        if decision.action == "keep":
            record(decision, "unchanged")
            continue
        if decision.action == "blocked":
            record(decision, "blocked")
            continue
        manifest = manifests.get(decision.digest)
        if manifest is None:
            record(
                decision,
                "blocked",
                f"blocked: {_short(decision.digest)} is no longer in the repository",
            )
            continue
        if (decision.digest, decision.tag) in already:
            record(
                decision, "unchanged", f"{decision.tag} already points at {_short(decision.digest)}"
            )
            continue
        try:
            outcome = registry.put_manifest(plan.repository, manifest, decision.tag)
        except TagImmutable as error:
            record(
                decision,
                "blocked",
                f"blocked: {error.message or error.code} (wanted {decision.reason})",
            )
            continue
        record(decision, "applied" if outcome.status == "created" else "unchanged")
    return result


def _fetch(
    registry: Registry, repository: str, puts: list[TagDecision]
) -> tuple[dict[str, Manifest], set[tuple[str, str]]]:
    """The target manifests, and which (digest, tag) pairs already hold, in one batch-get-image.

    Each tag is asked for together with its target digest: ECR answers a pair whose tag is
    elsewhere with an ImageTagDoesNotMatchDigest failure instead of fetching (and recording a
    pull of) the image the tag is on now.
    """
    digests = list(dict.fromkeys(d.digest for d in puts))
    ids = [{"imageDigest": digest} for digest in digests]
    ids += [{"imageDigest": d.digest, "imageTag": d.tag} for d in puts]
    found, failures = registry.get_manifests(repository, ids)
    manifests = {m.digest: m for m in found}
    failed = {
        (f.get("imageId", {}).get("imageDigest"), f.get("imageId", {}).get("imageTag"))
        for f in failures
    }
    failed_tags = {tag for _, tag in failed}
    # A failure that does not echo the digest is read as "tag not there": an extra put is
    # harmless (ECR answers "already exists"), a skipped one is not.
    already = {
        (d.digest, d.tag)
        for d in puts
        if d.digest in manifests and (d.digest, d.tag) not in failed and d.tag not in failed_tags
    }
    return manifests, already


def tag_pushed_image(
    registry: Registry,
    rules: list[TaggingRule],
    repository: str,
    digest: str,
    pushed_tag: str | None,
    *,
    now: datetime,
    dry_run: bool = False,
) -> TaggingResult:
    """Read the repository, plan the tags one push derives, and apply them."""
    if pushed_tag is None or not rules_for(rules, repository):
        # Nothing can be derived: answer without a single ECR call.
        info = RepositoryInfo(name=repository, arn="", registry_id="", uri="")
        plan = plan_tags(rules, info, [], digest, pushed_tag, now)
        return apply_tagging_plan(registry, plan, dry_run=dry_run)
    info = registry.describe_repository(repository)
    images = list(registry.iter_images(repository, tag_status="TAGGED"))
    plan = plan_tags(rules, info, images, digest, pushed_tag, now)
    return apply_tagging_plan(registry, plan, dry_run=dry_run)


def react_to_push(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
    """The `on_ecr_event` reaction to a pushed image: the tags the policy's rules give it."""
    from chalicelib.observability import count, logger
    from chalicelib.policy import current_policy, dry_run
    from chalicelib.registry import registry_for

    detail = event.detail
    policy = current_policy().policy
    rules = policy.tagging_rules(detail.repository_name)
    if not rules:
        return None
    result = tag_pushed_image(
        registry_for(event.account, event.region),
        rules,
        detail.repository_name,
        str(detail.image_digest),
        detail.image_tag,
        now=now,
        dry_run=dry_run(policy),
    )
    summary = result.model_dump(mode="json")
    for outcome in ("applied", "blocked", "unchanged", "planned"):
        n = len(result.tags_with(outcome))
        if n:
            count(f"Tags{outcome.capitalize()}", n)
    logger().info("tagging done", extra={"tagging": summary})
    return summary
