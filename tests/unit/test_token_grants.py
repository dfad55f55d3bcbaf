"""Credential vending's pure decision (chalicelib/tokens/grants.py): the query string, which
grant names the caller, and which check refuses a request. The HTTP route and STS are tested in
tests/integration/test_tokens.py; here every branch is pinned without a backend."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.kernel.errors import shown
from chalicelib.policy.tokens import Grant
from chalicelib.tokens.grants import (
    BadRequest,
    Caller,
    TokenRequest,
    decide,
    names_caller,
    parse_request,
)

ACCOUNT = "123456789012"


def grant(name: str, **fields: Any) -> Grant:
    fields.setdefault("registries", [ACCOUNT])
    fields.setdefault("repositories", ["team-a/*"])
    return Grant.model_validate({"name": name, **fields})


def oidc(sub: str = "repo:acme/app", **claims: Any) -> Caller:
    return Caller(kind="oidc", id=f"github:{sub}", issuer="github", claims={"sub": sub, **claims})


def request(repository: str | None = "team-a/web", access: str = "pull", **fields: Any) -> Any:
    return TokenRequest.model_validate(
        {"account": ACCOUNT, "region": "us-east-1", "repository": repository, "access": access}
        | fields
    )


# --- the query string -----------------------------------------------------------------------


def test_parse_request_defaults_and_the_account_form() -> None:
    parsed = parse_request({"registry": ACCOUNT}, "eu-west-1")
    assert parsed == TokenRequest(
        account=ACCOUNT,
        region="eu-west-1",
        partition="aws",
        host=f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com",
        repository=None,
        access="pull",
        format="json",
    )


@pytest.mark.parametrize(
    ("registry", "region"),
    [
        (f"{ACCOUNT}.dkr.ecr.ap-south-1.amazonaws.com", "ap-south-1"),
        (f"https://{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/", "us-west-2"),
        (f"https://{ACCOUNT}.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        (f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        (f"  {ACCOUNT}  ", "eu-central-1"),
    ],
)
def test_parse_request_reads_the_region_from_a_registry_host(registry: str, region: str) -> None:
    parsed = parse_request(
        {"registry": registry, "repository": "a/b", "access": "push", "format": "login"},
        "eu-central-1",
    )
    assert (parsed.account, parsed.region) == (ACCOUNT, region)
    assert (parsed.repository, parsed.access, parsed.format) == ("a/b", "push", "login")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "registry is required: an account id or an ECR registry host"),
        ({"registry": "  "}, "registry is required: an account id or an ECR registry host"),
        (
            {"registry": "12345678901"},
            "registry '12345678901' is neither a 12-digit account id nor an ECR registry host",
        ),
        (
            {"registry": f"{ACCOUNT}0"},
            f"registry '{ACCOUNT}0' is neither a 12-digit account id nor an ECR registry host",
        ),
        (
            {"registry": f"{ACCOUNT}.dkr.ecr.us-east-1.example.com"},
            f"registry '{ACCOUNT}.dkr.ecr.us-east-1.example.com' is neither a 12-digit "
            "account id nor an ECR registry host",
        ),
        (
            {"registry": ACCOUNT, "repository": "Team/App"},
            "repository 'Team/App' is not a valid ECR repository name",
        ),
        (
            {"registry": ACCOUNT, "repository": "a" * 257},
            f"repository {shown('a' * 257)} is not a valid ECR repository name",
        ),
        ({"registry": ACCOUNT, "access": "admin"}, "access must be pull or push, not 'admin'"),
        (
            {"registry": ACCOUNT, "format": "xml"},
            "format must be json, docker-config or login, not 'xml'",
        ),
    ],
)
def test_parse_request_names_the_bad_parameter(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_request(query, "us-east-1")
    assert str(refused.value) == message


def test_a_repository_name_of_exactly_256_characters_is_accepted() -> None:
    name = "a" * 256
    assert parse_request({"registry": ACCOUNT, "repository": name}, "us-east-1").repository == name


def test_an_empty_repository_means_the_whole_registry() -> None:
    assert parse_request({"registry": ACCOUNT, "repository": ""}, "us-east-1").repository is None


@pytest.mark.parametrize("output", ["json", "docker-config", "login"])
def test_every_format_is_accepted(output: str) -> None:
    assert parse_request({"registry": ACCOUNT, "format": output}, "us-east-1").format == output


# --- who a grant names ----------------------------------------------------------------------


def test_iam_callers_match_principal_globs() -> None:
    deployer = grant("d", iam_principals=["arn:aws:sts::*:assumed-role/deployer/*"])
    assert names_caller(
        deployer, Caller(kind="iam", id=f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci")
    )
    assert not names_caller(
        deployer, Caller(kind="iam", id=f"arn:aws:sts::{ACCOUNT}:assumed-role/other/ci")
    )
    # An IAM grant does not name a static key with the same text, and vice versa.
    assert not names_caller(deployer, Caller(kind="static", id="static:deployer"))


def test_static_callers_match_key_ids_without_the_prefix() -> None:
    dev = grant("dev", static_keys=["dev"])
    assert names_caller(dev, Caller(kind="static", id="static:dev"))
    assert names_caller(dev, Caller(kind="static", id="dev"))
    assert not names_caller(dev, Caller(kind="static", id="static:dev2"))
    assert not names_caller(dev, Caller(kind="iam", id="dev"))


def test_oidc_callers_need_the_issuer_and_every_claim() -> None:
    ci = grant(
        "ci",
        oidc={"issuer": "github", "claims": {"sub": "repo:acme/*", "ref": "refs/heads/main"}},
    )
    assert names_caller(ci, oidc(ref="refs/heads/main"))
    assert not names_caller(ci, oidc(ref="refs/heads/feature"))
    assert not names_caller(ci, oidc())  # the ref claim is missing
    assert not names_caller(ci, oidc("repo:other/app", ref="refs/heads/main"))
    other_issuer = oidc(ref="refs/heads/main").model_copy(update={"issuer": "gitlab"})
    assert not names_caller(ci, other_issuer)
    # A grant with no oidc section names no OIDC caller.
    assert not names_caller(grant("iam-only", iam_principals=["*"]), oidc())


def test_oidc_claims_may_be_lists_on_either_side_and_non_strings() -> None:
    ci = grant(
        "ci",
        oidc={
            "issuer": "github",
            "claims": {"aud": ["sts.amazonaws.com", "steward"], "admin": "true", "run": "4*"},
        },
    )
    caller = oidc(aud=["other", "steward"], admin=True, run=42)
    assert names_caller(ci, caller)
    assert not names_caller(ci, oidc(aud=["other"], admin=True, run=42))
    assert not names_caller(ci, oidc(aud="steward", admin=False, run=42))
    # Booleans and numbers compare as JSON: True is "true", not "True"; 42 is "42".
    assert not names_caller(ci, oidc(aud="steward", admin=True, run=52))
    assert not names_caller(
        grant("py", oidc={"issuer": "github", "claims": {"admin": "True"}}), oidc(admin=True)
    )


# --- the decision ---------------------------------------------------------------------------


def test_the_first_grant_in_policy_order_that_allows_the_request_wins() -> None:
    grants = [
        grant("read", oidc={"issuer": "github"}),
        grant("write", oidc={"issuer": "github"}, access="push", repositories=["team-a/web"]),
    ]
    pulled = decide(oidc(), request(), grants)
    assert pulled.granted and pulled.grant == "read"
    assert pulled.check is None
    assert pulled.scope is not None
    assert pulled.scope.model_dump() == {
        "grant": "read",
        "account": ACCOUNT,
        "region": "us-east-1",
        "repositories": ("team-a/*",),
        "access": "pull",
        "partition": "aws",
        "host": "",
    }
    assert pulled.reason == "grant read allows pull on team-a/*"

    pushed = decide(oidc(), request(access="push"), grants)
    assert pushed.granted and pushed.grant == "write"
    assert pushed.scope is not None and pushed.scope.access == "push"
    assert pushed.reason == "grant write allows push on team-a/web"


def test_a_pull_request_under_a_push_grant_is_scoped_to_pull() -> None:
    decision = decide(oidc(), request(), [grant("write", oidc={"issuer": "github"}, access="push")])
    assert decision.scope is not None and decision.scope.access == "pull"
    assert decision.reason == "grant write allows pull on team-a/*"


def test_no_repository_asks_for_every_repository_of_the_grant() -> None:
    decision = decide(oidc(), request(repository=None), [grant("read", oidc={"issuer": "github"})])
    assert decision.granted and decision.scope is not None
    assert decision.scope.repositories == ("team-a/*",)


def test_each_refusal_names_the_check_that_failed() -> None:
    grants = [
        grant("a", oidc={"issuer": "github"}, registries=["1111*"], repositories=["x/*"]),
        grant("b", oidc={"issuer": "github"}, regions=["eu-*"]),
        grant("c", oidc={"issuer": "github"}, repositories=["team-b/*"]),
        grant("d", oidc={"issuer": "github"}),
    ]
    nobody = decide(Caller(kind="static", id="static:x"), request(), grants)
    assert nobody.model_dump() == {
        "granted": False,
        "grant": None,
        "scope": None,
        "check": "caller",
        "reason": "no grant names static:x",
    }

    elsewhere = decide(oidc(), request(account="999999999999"), grants)
    assert (elsewhere.granted, elsewhere.check) == (False, "registry")
    assert elsewhere.reason == "grants a, b, c, d do not cover registry 999999999999 in us-east-1"

    region = decide(oidc(), request(region="ap-south-1"), grants[1:2])
    assert region.check == "registry"
    assert region.reason == f"grants b do not cover registry {ACCOUNT} in ap-south-1"

    repository = decide(oidc(), request("team-z/app"), grants[1:])
    assert (repository.granted, repository.check) == (False, "repository")
    assert repository.reason == "grants c, d do not cover repository team-z/app"

    push = decide(oidc(), request(access="push"), grants[2:])
    assert (push.granted, push.check, push.scope) == (False, "access", None)
    assert push.reason == "grants d allow pull only, not push"


def test_globs_match_whole_names_case_sensitively() -> None:
    grants = [grant("a", oidc={"issuer": "github"}, repositories=["team-a/web"])]
    assert decide(oidc(), request("team-a/web"), grants).granted
    assert not decide(oidc(), request("team-a/web2"), grants).granted
    assert not decide(oidc(), request("x/team-a/web"), grants).granted
    upper = [grant("u", oidc={"issuer": "github"}, repositories=["Team-A/*"])]
    assert not decide(oidc(), request("team-a/web"), upper).granted
