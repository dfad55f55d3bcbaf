"""IAM policy evaluation for session policies (steward_tools/local/iam_policy.py)."""

from __future__ import annotations

import json

import pytest

from chalicelib.ecr.access import Scope, session_policy
from steward_tools.local.iam_policy import evaluate, repository_arn

REPO = repository_arn("123456789012", "us-east-1", "team/app")


def test_the_token_apis_pull_policy() -> None:
    policy = session_policy(
        Scope(
            grant="ci",
            account="123456789012",
            region="us-east-1",
            repositories=("team/*",),
            access="pull",
        )
    )
    assert evaluate(policy, "ecr:BatchGetImage", REPO)
    assert evaluate(policy, "ECR:batchgetimage", REPO)  # actions ignore case
    assert not evaluate(policy, "ecr:PutImage", REPO)
    other = repository_arn("123456789012", "us-east-1", "other/app")
    assert not evaluate(policy, "ecr:BatchGetImage", other)
    assert not evaluate(policy, "ecr:BatchGetImage", REPO.replace("us-east-1", "eu-west-1"))
    assert evaluate(policy, "ecr:GetAuthorizationToken", "*")


def test_deny_wins_and_not_elements_and_conditions() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"},
            {"Sid": "NoDelete", "Effect": "Deny", "Action": "ecr:BatchDelete*", "Resource": REPO},
            {"Effect": "Allow", "NotAction": "s3:*", "NotResource": "arn:aws:s3:::*"},
        ],
    }
    decision = evaluate(policy, "ecr:BatchDeleteImage", REPO)
    assert not decision and decision.reason == "explicit-deny" and decision.statement == "NoDelete"
    assert evaluate(policy, "ecr:PutImage", REPO).reason == "allow"
    assert evaluate(policy, "sts:GetCallerIdentity", "arn:aws:iam::1:role/x")
    assert not evaluate(policy, "s3:GetObject", "arn:aws:s3:::b/k")

    conditional = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ecr:?utImage",
                "Resource": REPO,
                "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}},
            }
        ]
    }
    # Without the request context a condition cannot hold: such an Allow never matches.
    assert evaluate(conditional, "ecr:PutImage", REPO).reason == "implicit-deny"
    conditional["Statement"][0]["Condition"] = {}
    assert evaluate(json.dumps(conditional), "ecr:PutImage", REPO)


@pytest.mark.parametrize(
    "document",
    ["[]", {"Statement": "x"}, {"Statement": [{"Effect": "Maybe", "Action": "*"}]}],
)
def test_malformed_policies_are_refused(document: object) -> None:
    with pytest.raises(ValueError):
        evaluate(document, "ecr:PutImage", REPO)  # type: ignore[arg-type]
