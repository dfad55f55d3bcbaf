"""Errors shared by every layer: where in a document a validation problem is, said in one line."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("tagging", 0, "templates", 1)` -> `tagging[0].templates[1]`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def describe(error: ValidationError) -> str:
    """Every problem of a validation error on one line, each naming its field:
    `detail.repository-name: Field required; time: ...`."""
    return "; ".join(f"{field_path(tuple(p['loc']))}: {p['msg']}" for p in error.errors())


def shown(value: object, limit: int = 64) -> str:
    """Caller input fit to echo in an answer or a log line: escaped (repr: no newline or control
    character gets through) and at most `limit` characters of it, saying how long it was."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
