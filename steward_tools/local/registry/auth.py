"""ECR's registry auth: HTTP Basic with user `AWS` and a get-authorization-token password.

ECR answers an anonymous request 401 with `WWW-Authenticate: Basic realm="https://<host>/",
service="ecr.amazonaws.com"` (https://docs.aws.amazon.com/AmazonECR/latest/userguide/
registry_auth.html). A password stands for the credentials that asked for it; when those are an
assumed-role session with a session policy (what the token API vends), every operation is
checked against that policy for the ECR action AWS would authorize it as.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from .. import iam_policy
from ..tokens import InvalidPassword, credential_of
from .errors import DENIED, UNAUTHORIZED, RegistryError
from .http import Request

USERNAME = "AWS"
# ECR's wording for an expired token, as docker shows it ("denied: Your authorization token...").
EXPIRED = "Your authorization token has expired. Reauthenticate and try again."


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    arn: str | None
    session_policy: dict[str, Any] | None


def challenge(request: Request) -> list[tuple[str, str]]:
    return [
        (
            "WWW-Authenticate",
            f'Basic realm="https://{request.host}/",service="ecr.amazonaws.com"',
        )
    ]


def _unauthorized(request: Request, message: str) -> RegistryError:
    return RegistryError(401, UNAUTHORIZED, message, headers=challenge(request))


def authenticate(request: Request) -> Principal:
    """The principal behind the request's Basic credentials; 401/403 RegistryError otherwise.
    Nothing here echoes or logs the password."""
    header = request.header("Authorization")
    if not header:
        raise _unauthorized(request, "authentication required")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise _unauthorized(request, "ECR accepts Basic authentication only")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized(request, "malformed Basic credentials") from None
    if not sep or user != USERNAME:
        raise _unauthorized(request, f"the user name must be {USERNAME}")
    try:
        credential = credential_of(password)
    except InvalidPassword as error:
        if error.expired:
            raise RegistryError(403, DENIED, EXPIRED) from None
        raise _unauthorized(request, "invalid authorization token") from None
    return Principal(
        access_key_id=str(credential["access_key_id"]),
        arn=credential.get("role_arn"),
        session_policy=credential.get("session_policy"),
    )


def authorize(
    principal: Principal, request: Request, actions: tuple[str, ...], repository: str
) -> None:
    """403 DENIED unless the principal's session policy allows every one of `actions` on the
    repository's ARN. Credentials without a session policy are the account's own: all allowed."""
    if principal.session_policy is None:
        return
    resource = iam_policy.repository_arn(request.account, request.region, repository)
    for action in actions:
        try:
            decision = iam_policy.evaluate(principal.session_policy, action, resource)
        except ValueError:
            decision = iam_policy.Decision(False, "implicit-deny")
        if not decision:
            why = (
                "with an explicit deny in a session policy"
                if decision.reason == "explicit-deny"
                else f"because no session policy allows the {action} action"
            )
            raise RegistryError(
                403,
                DENIED,
                f"User: {principal.arn or principal.access_key_id} is not authorized to perform: "
                f"{action} on resource: {resource} {why}",
            )
