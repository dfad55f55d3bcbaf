"""Evaluate an IAM policy document (a session policy) for one action on one resource.

Enough of IAM's policy evaluation logic for the session policies the token API attaches
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins, otherwise an Allow must match, otherwise the request is implicitly denied.
`Action`/`NotAction` and `Resource`/`NotResource` take one string or a list; `*` matches any run
of characters and `?` one character (in actions too); actions compare case-insensitively,
resources case-sensitively. Statements with a `Condition` cannot be evaluated without the
request context, so they are treated conservatively: such an Allow never matches and such a
Deny always does. The embedded registry uses this for scoped passwords; the control API can use
it for the same session policies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Effect = Literal["Allow", "Deny"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # "explicit-deny", "allow" or "implicit-deny": how IAM's evaluation logic ended.
    reason: Literal["allow", "explicit-deny", "implicit-deny"]
    statement: str | None = None  # the deciding statement's Sid (or its position)

    def __bool__(self) -> bool:
        return self.allowed


@lru_cache(maxsize=1024)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in text:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError(f"policy element must be a string or a list of strings, not {value!r}")


def _matches(patterns: list[str], value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(p, ignore_case).fullmatch(value) for p in patterns)


def _statement_applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_hit = _matches(_as_list(statement["Action"]), action, ignore_case=True)
    elif "NotAction" in statement:
        action_hit = not _matches(_as_list(statement["NotAction"]), action, ignore_case=True)
    else:
        return False
    if not action_hit:
        return False
    if "Resource" in statement:
        return _matches(_as_list(statement["Resource"]), resource, ignore_case=False)
    if "NotResource" in statement:
        return not _matches(_as_list(statement["NotResource"]), resource, ignore_case=False)
    return False


def parse(document: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document (JSON text or parsed); ValueError if malformed."""
    parsed = json.loads(document) if isinstance(document, str) else document
    if not isinstance(parsed, dict):
        raise ValueError("a policy document is a JSON object")
    statements = parsed.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise ValueError("a policy document needs a Statement object or list")
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError(f"statement effect must be Allow or Deny: {statement!r}")
    return statements


def evaluate(document: str | dict[str, Any], action: str, resource: str) -> Decision:
    """Whether `document` allows `action` (e.g. ``ecr:PutImage``) on `resource` (an ARN)."""
    statements = parse(document)
    allowed_by: str | None = None
    for position, statement in enumerate(statements):
        if not _statement_applies(statement, action, resource):
            continue
        name = str(statement.get("Sid") or position)
        conditional = bool(statement.get("Condition"))
        if statement["Effect"] == "Deny":
            return Decision(False, "explicit-deny", name)
        if not conditional and allowed_by is None:
            allowed_by = name
    if allowed_by is not None:
        return Decision(True, "allow", allowed_by)
    return Decision(False, "implicit-deny")


def repository_arn(account: str, region: str, repository: str, partition: str = "aws") -> str:
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"
