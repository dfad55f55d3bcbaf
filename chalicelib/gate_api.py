"""`GET /v1/images/{repository}/{digest}/gate` (bearer token) and `…/gate/iam` (SigV4): the scan
gate's record of one image, for a caller with a grant that covers the repository.

The record names the account, the region and the CVEs an image fails on, and a 200 or 404 says
whether a digest exists: authentication comes first, then the grant; a record in a registry no
covering grant names answers 404, like one that does not exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.gate.sweep import gate_status
from chalicelib.kernel.errors import shown
from chalicelib.kernel.observability import count, flushes_metrics, logger
from chalicelib.policy.document import PolicyError, current_policy
from chalicelib.policy.selection import matches_any
from chalicelib.policy.tokens import Grant
from chalicelib.tokens.api import Via, authenticate, error_response
from chalicelib.tokens.grants import DIGEST_RE, Caller, names_caller, valid_repository


@flushes_metrics
def gate_response(request: Any, repository: str, digest: str, *, via: Via) -> dict[str, Any]:
    """The keyword arguments of a Chalice Response; `repository` and `digest` URL-decoded."""
    return _gate_response(repository, digest, request.headers, request.context, via=via)


def _gate_response(
    repository: str,
    digest: str,
    headers: Mapping[str, str],
    context: Mapping[str, Any] | None,
    *,
    via: Via,
) -> dict[str, Any]:

    try:
        settings = current_policy().policy.tokens
    except PolicyError:
        return error_response(503, "policy_invalid", "the service's policy is invalid")
    caller = authenticate(headers, context, settings, via=via, route="gate")
    if isinstance(caller, dict):
        return caller
    if not valid_repository(repository):
        return error_response(
            400, "bad_request", f"repository {shown(repository)} is not a valid repository name"
        )
    if not DIGEST_RE.fullmatch(digest):
        return error_response(400, "bad_request", f"digest {shown(digest)} is not sha256:<64 hex>")
    covering = _covering(caller, repository, settings.grants)
    if not covering:
        logger().warning(
            "gate status refused",
            extra={"status": 403, "caller": caller.id, "repository": repository},
        )
        count("GateStatusForbidden")
        return error_response(
            403,
            "forbidden",
            f"no grant of {caller.id} covers repository {repository}",
            check="repository",
        )
    record = gate_status(repository, digest)
    if record is None or not any(
        matches_any(str(record.get("account", "")), g.registries)
        and matches_any(str(record.get("region", "")), g.regions)
        for g in covering
    ):
        return error_response(404, "not_found", "no gate record for this image")
    logger().info(
        "gate status read",
        extra={"caller": caller.id, "repository": repository, "digest": digest},
    )
    return {
        "status_code": 200,
        "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
        "body": record,
    }


def _covering(caller: Caller, repository: str, grants: list[Grant]) -> list[Grant]:
    return [
        g for g in grants if names_caller(g, caller) and matches_any(repository, g.repositories)
    ]
