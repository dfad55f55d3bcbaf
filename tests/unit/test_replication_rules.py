"""Replication rules in the policy, token buckets and native replication plans."""

from __future__ import annotations

import pytest

from chalicelib.kernel.ratelimit import ECR_TPS, RateLimiter, TokenBucket
from chalicelib.policy.document import PolicyError, parse_policy
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.jobs import jobs_for
from chalicelib.replication.native import plan_native
from tests.conftest import ACCOUNT, REGION


@pytest.mark.parametrize(
    ("filters", "selected", "refused"),
    [
        ({}, ["1.0.0", "latest", "dev"], []),
        ({"tags": "release-*"}, ["release-1"], ["1.0.0", "latest"]),
        ({"tag_regex": r"v?\d+\.\d+"}, ["1.2", "v3.4"], ["1.2.3", "latest"]),
        ({"tag_semver": ">=1.2.0,<2.0.0"}, ["1.2.0", "v1.9.9"], ["1.1.9", "2.0.0", "latest"]),
    ],
)
def test_tag_filters(filters: dict, selected: list[str], refused: list[str]) -> None:
    r = rule(**filters)
    assert [t for t in selected if r.selects_tag(t)] == selected
    assert [t for t in refused if r.selects_tag(t)] == []
    # cosign sidecars follow their subject; no filter selects them on their own
    assert not r.selects_tag("sha256-" + "a" * 64 + ".sig")


def test_policy_refuses_bad_rules_naming_the_field() -> None:
    text = """
replication:
  - name: a
    repositories: ["*"]
    tags: "x*"
    tag_semver: ">=1"
    destinations: [{repository: "Bad Name"}]
  - name: a
    repositories: ["*"]
    destinations: [{region: us-west-2}]
"""
    with pytest.raises(PolicyError) as error:
        parse_policy(text)
    paths = [path for path, _ in error.value.problems]
    assert "replication[0].tag_semver" in paths
    assert "replication[0].destinations[0].repository" in paths


def test_policy_refuses_duplicate_rule_names() -> None:
    text = """
replication:
  - {name: a, repositories: ["*"], destinations: [{region: us-west-2}]}
  - {name: a, repositories: ["*"], destinations: [{region: eu-west-1}]}
"""
    with pytest.raises(PolicyError, match="unique"):
        parse_policy(text)


def test_destination_that_is_the_source_is_left_out() -> None:
    r = rule(destinations=[{}, {"repository": "copy/{name}"}])
    jobs = jobs_for(
        r, trigger="t", account=ACCOUNT, region=REGION, repository="team/app", digest="d", tags=[]
    )
    assert [j.destination.repository for j in jobs] == ["copy/app"]


def test_copies_a_rule_made_are_not_copied_again() -> None:
    r = rule(repositories=["*"], destinations=[{"repository": "mirror/{repository}"}])

    def destinations(repository: str) -> list[str]:
        jobs = jobs_for(
            r,
            trigger="t",
            account=ACCOUNT,
            region=REGION,
            repository=repository,
            digest="d",
            tags=[],
        )
        return [j.destination.repository for j in jobs]

    assert destinations("team/app") == ["mirror/team/app"]
    assert destinations("mirror/team/app") == []  # the push of the copy does not chain
    assert destinations("mirror") == ["mirror/mirror"]


def test_token_bucket_paces_calls_at_its_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(30):
        bucket.acquire()
    # 10 at once (the burst), then one every 0.1 s: 20 more take 2 s.
    assert now[0] == pytest.approx(2.0)
    limiter = RateLimiter(clock=lambda: now[0], sleep=sleep)
    assert limiter.buckets["put_image"].rate == ECR_TPS["put_image"] == 10
    limiter("describe_images")  # no published rate: not paced
    assert "describe_images" not in limiter.buckets


def test_native_plan_for_an_expressible_rule_and_the_limits() -> None:
    ok = rule(repositories=["team-a/*"], destinations=[{"region": "eu-west-1"}], triggers=["push"])
    plan = plan_native(ok, [], ACCOUNT, REGION)
    assert plan.expressible
    assert plan.configuration == [
        {
            "destinations": [{"region": "eu-west-1", "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": "team-a/", "filterType": "PREFIX_MATCH"}],
        }
    ]
    full = [{"destinations": [{"region": f"r-{n}", "registryId": ACCOUNT}]} for n in range(10)]
    assert not plan_native(ok, full, ACCOUNT, REGION).expressible
    many = [
        {"destinations": [{"region": f"r-{n}-{m}", "registryId": ACCOUNT} for m in range(5)]}
        for n in range(5)
    ]
    over = plan_native(ok, many, ACCOUNT, REGION)
    assert not over.expressible and "26 unique destinations" in over.reasons[0]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"tags": "v*"}, "no tag filter"),
        ({"repositories": ["team-?/*"]}, "not a prefix glob"),
        (
            {"destinations": [{"repository": "mirror/{repository}", "region": "eu-west-1"}]},
            "keeps the source name",
        ),
        ({"delete_sync": True}, "never deletes"),
        ({"destinations": [{"repository": "x/{name}"}]}, "other regions or accounts"),
    ],
)
def test_native_plan_says_why_not(fields: dict, why: str) -> None:
    plan = plan_native(rule(**fields), [], ACCOUNT, REGION)
    assert not plan.expressible
    assert any(why in reason for reason in plan.reasons)


def rule(**fields) -> ReplicationRule:
    fields.setdefault("name", "r")
    fields.setdefault("repositories", ["team/*"])
    fields.setdefault("destinations", [{"region": "eu-west-1"}])
    return ReplicationRule.model_validate(fields)
