"""IAM and lifecycle policy documents compared by meaning, not by spelling."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.ecr.lifecycle_policy import LifecyclePolicyError, parse_policy

if TYPE_CHECKING:
    pass


def canonical_iam(document: Any) -> Any:
    """An IAM document in a form where equal meaning is equal value: every list in IAM's grammar
    is a set (statements, actions, principals, resources, condition values), and a one-element
    list means its element."""
    if isinstance(document, dict):
        return {key: canonical_iam(value) for key, value in document.items()}
    if isinstance(document, list):
        unique = sorted({json.dumps(canonical_iam(v), sort_keys=True) for v in document})
        items = [json.loads(text) for text in unique]
        return items[0] if len(items) == 1 else items
    return document


def canonical_lifecycle(document: Any) -> Any:
    """A lifecycle policy as the lifecycle model reads it (defaults and spelling normalised),
    with rules in priority order and tag lists as sets (ECR ANDs them)."""

    if not isinstance(document, dict):
        return document
    try:
        data = parse_policy(document).model_dump(by_alias=True, exclude_none=True)
    except LifecyclePolicyError:
        data = document  # not a policy ECR would take: compare as it is
    rules = []
    for rule in data.get("rules", []):
        if isinstance(rule, dict) and isinstance(rule.get("selection"), dict):
            selection = dict(rule["selection"])
            for key in ("tagPrefixList", "tagPatternList"):
                if isinstance(selection.get(key), list):
                    selection[key] = sorted(set(selection[key]))
            rule = {**rule, "selection": selection}
        rules.append(rule)
    rules.sort(key=lambda r: r.get("rulePriority", 0) if isinstance(r, dict) else 0)
    return {**data, "rules": rules}


def parse_document(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # unparseable text differs from any document we would put
