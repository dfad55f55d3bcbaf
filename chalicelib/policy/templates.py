"""The tag template language of the policy (`{major}.{minor}`, `{digest:12}`, `{date:%Y%m%d}`,
regex groups): checked when the policy loads, rendered by the tagging planner."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

from chalicelib.oci.names import tag_problem

# Placeholders every template may use; regex groups add their names (and numbers).
BASE_PLACEHOLDERS = frozenset({"digest", "date", "tag", "major", "minor", "patch"})


def compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regex: {error}") from None


def group_placeholders(pattern: re.Pattern[str]) -> frozenset[str]:
    clash = BASE_PLACEHOLDERS & set(pattern.groupindex)
    if clash:
        raise ValueError(f"group name {sorted(clash)[0]!r} shadows a built-in placeholder")
    return frozenset(pattern.groupindex) | {str(n) for n in range(1, pattern.groups + 1)}


def match_groups(found: re.Match[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {str(n): g for n, g in enumerate(found.groups(), start=1)}
    values.update(found.groupdict())
    return values


_FORMATTER = string.Formatter()


# Rendered at load with these values: a template that cannot give a valid tag even for an
# ordinary push is refused then, rather than found out at the first push.
_SAMPLE_DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


_SAMPLE_VALUES = {"tag": "v1.2.3", "major": "1", "minor": "2", "patch": "3"}


class MissingValue(Exception):
    """A placeholder has no value for this push (e.g. {major} for a tag that is not a version)."""


def _parse_template(template: str) -> list[tuple[str, str | None, str, str | None]]:
    try:
        return [
            (lit, field, spec or "", conv) for lit, field, spec, conv in _FORMATTER.parse(template)
        ]
    except ValueError as error:
        raise ValueError(f"{template!r}: {error}") from None


def check_template(template: str, groups: frozenset[str]) -> None:
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
    sample = render_template(
        template, "0" * 64, _SAMPLE_DATE, {**_SAMPLE_VALUES, **dict.fromkeys(groups, "x")}
    )
    problem = tag_problem(sample)
    if problem:
        raise ValueError(f"{template!r} renders {sample!r}, {problem}")


def render_template(
    template: str, digest_hex: str, date: datetime, values: dict[str, str | None]
) -> str:
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
                raise MissingValue(field)
            parts.append(value)
    return "".join(parts)
