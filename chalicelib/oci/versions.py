"""Versions in tags: semver parsing (`1.2.3`, `v1.2.3`) and version ranges."""

from __future__ import annotations

import re
from collections.abc import Callable

from semver import Version


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


_SEMVER_CLAUSE = re.compile(r"^(>=|<=|==|!=|>|<)\s*v?(.+)$")


def semver_clauses(spec: str) -> list[tuple[str, Version]]:
    clauses = []
    for part in spec.split(","):
        found = _SEMVER_CLAUSE.match(part.strip())
        if not found:
            raise ValueError(
                f"{part.strip()!r}: expected an operator (>= > <= < == !=) and version"
            )
        try:
            clauses.append((found.group(1), Version.parse(found.group(2).strip())))
        except ValueError as error:
            raise ValueError(f"{part.strip()!r}: {error}") from None
    return clauses


def semver_matches(spec: str, tag: str) -> bool:
    try:
        version = Version.parse(tag[1:] if tag.startswith("v") else tag)
    except ValueError:
        return False
    checks: dict[str, Callable[[int], bool]] = {
        ">=": lambda c: c >= 0,
        ">": lambda c: c > 0,
        "<=": lambda c: c <= 0,
        "<": lambda c: c < 0,
        "==": lambda c: c == 0,
        "!=": lambda c: c != 0,
    }
    return all(checks[op](version.compare(bound)) for op, bound in semver_clauses(spec))
