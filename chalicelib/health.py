"""`GET /health`: is the service able to work? It is not if its policy file is invalid."""

from __future__ import annotations

from typing import Any

from chalicelib import __version__
from chalicelib.policy import PolicyError, current_policy


def health_report() -> tuple[int, dict[str, Any]]:

    try:
        loaded = current_policy()
    except PolicyError as error:
        problems = [{"field": path, "message": message} for path, message in error.problems]
        return 503, {"status": "unhealthy", "policy": error.source, "problems": problems}
    return 200, {
        "status": "ok",
        "service": "ecr-steward",
        "version": __version__,
        "policy": {"source": loaded.source, "fingerprint": loaded.fingerprint},
    }
