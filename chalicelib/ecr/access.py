"""ECR's IAM actions for pull and push, and the STS session policy that grants exactly them on
some repositories (what a vended credential may do)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

Access = Literal["pull", "push"]


# ECR actions a docker client needs, by access. Push includes pull: a push reads layers too.
PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)


PUSH_ACTIONS = (
    *PULL_ACTIONS,
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)


# STS's limit on a packed session policy is 2,048 characters; the plain JSON is a fair proxy.
SESSION_POLICY_LIMIT = 2048


class Scope(BaseModel):
    """What a vended credential may do. Hashable: the cache is keyed on it."""

    model_config = ConfigDict(frozen=True)

    grant: str
    account: str
    region: str
    repositories: tuple[str, ...]
    access: Access
    partition: str = "aws"
    # The registry host docker logs in to (FIPS and China hosts keep theirs); "" for the
    # region's standard host.
    host: str = ""


def session_policy(scope: Scope, partition: str = "aws") -> str:
    """The STS session policy: the scope's ECR actions on the scope's repository ARNs only,
    plus get-authorization-token (which ECR authorizes on `*` alone)."""
    actions = PUSH_ACTIONS if scope.access == "push" else PULL_ACTIONS
    resources = [
        f"arn:{partition}:ecr:{scope.region}:{scope.account}:repository/{pattern}"
        for pattern in scope.repositories
    ]
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Login",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {"Sid": "Scope", "Effect": "Allow", "Action": list(actions), "Resource": resources},
        ],
    }
    return json.dumps(document, separators=(",", ":"))
