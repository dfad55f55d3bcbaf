"""Session policies enforced on the ECR control API of the embedded backend.

On AWS, a request signed with an assumed-role session's credentials may do only what both the
role's policies and the session policy passed to AssumeRole allow
(https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session). moto's
STS records the session policy and never applies it, so a credential the token API vends for
pull on `team-a/*` could push anywhere. Here every ECR action moto dispatches is first checked
against the session policy of the caller's access key, with the evaluator the `/v2` registry
uses (steward_tools/local/iam_policy.py), and refused as ECR refuses it: HTTP 400,
`AccessDeniedException`, "User: <assumed-role ARN> is not authorized to perform: <action> on
resource: <ARN> because no session policy allows the <action> action".

Callers whose access key is not an assumed-role session with a policy (the suite's `testing`
key, the service's own role) are not checked: the embedded backend models no identity policies.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.ecr.responses import ECRResponse
from moto.sts.models import sts_backends

from . import iam_policy

# Operations IAM authorizes under another action's name (the service authorization reference).
IAM_ACTION_OF_OPERATION = {"ListImageReferrers": "ecr:BatchGetImage"}


class AccessDenied(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


def assumed_session(access_key: str) -> Any | None:
    """moto's record of the assumed-role session that `access_key` belongs to, if any."""
    for by_partition in sts_backends.values():
        for backend in by_partition.values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key:
                    return role
    return None


def resources(response: ECRResponse, action: str) -> list[str]:
    """The ARNs IAM authorizes `action` on: the named repositories (in `registryId`'s account,
    else the caller's), a tagging call's `resourceArn`, or `*` for registry-wide actions
    (GetAuthorizationToken, account settings), as ECR's service authorization reference lists
    them. DescribeRepositories without names is authorized on every repository's ARN."""
    account = response._get_param("registryId") or response.current_account
    region = response.region
    arn = response._get_param("resourceArn")
    if arn:
        return [str(arn)]
    names = response._get_param("repositoryNames") or []
    name = response._get_param("repositoryName")
    if name:
        names = [name]
    if names:
        return [iam_policy.repository_arn(account, region, str(n)) for n in names]
    if action == "ecr:DescribeRepositories":
        return [iam_policy.repository_arn(account, region, "*")]
    return ["*"]


def authorize(response: ECRResponse) -> None:
    """AccessDenied unless the caller's session policy (if it has one) allows the action on
    every resource of the request."""
    session = assumed_session(response.get_access_key())
    if session is None or not session.policy:
        return
    operation = response._get_action()
    action = IAM_ACTION_OF_OPERATION.get(operation, f"ecr:{operation}")
    policy = json.loads(session.policy)
    for resource in resources(response, action):
        try:
            decision = iam_policy.evaluate(policy, action, resource)
        except ValueError:
            decision = iam_policy.Decision(False, "implicit-deny")
        if not decision:
            why = (
                "with an explicit deny in a session policy"
                if decision.reason == "explicit-deny"
                else f"because no session policy allows the {action} action"
            )
            raise AccessDenied(
                f"User: {session.arn} is not authorized to perform: {action} on resource: "
                f"{resource} {why}"
            )


_original = ECRResponse._authenticate_and_authorize_normal_action
_install_lock = threading.Lock()


def _authenticate_and_authorize(self: ECRResponse, resource: str = "*") -> None:
    # moto's own IAM check first (off unless a test turns it on), then the session policy.
    _original(self, resource)
    authorize(self)


def install() -> None:
    """Check session policies on every ECR action moto dispatches. Idempotent."""
    with _install_lock:
        ECRResponse._authenticate_and_authorize_normal_action = _authenticate_and_authorize  # type: ignore[method-assign,assignment]


def is_installed() -> bool:
    return (
        ECRResponse.__dict__.get("_authenticate_and_authorize_normal_action")
        is _authenticate_and_authorize
    )
