"""`GET /health`: is the service able to work? It is not if its policy file is invalid.

Unauthenticated, so it tells the status and nothing else: no path, no file contents, no YAML
error text (`steward policy validate` names the problems to whoever holds the file)."""

from __future__ import annotations

from typing import Any

from chalicelib import __version__
from chalicelib.policy.document import PolicyError, current_policy


def health_report() -> tuple[int, dict[str, Any]]:

    try:
        loaded = current_policy()
    except PolicyError as error:
        return 503, {
            "status": "unhealthy",
            "reason": f"the policy is invalid ({len(error.problems)} problems): "
            "run `steward policy validate` on it",
        }
    return 200, {
        "status": "ok",
        "service": "ecr-steward",
        "version": __version__,
        "policy": {"fingerprint": loaded.fingerprint},
    }
