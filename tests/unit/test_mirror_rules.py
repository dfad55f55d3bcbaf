"""Mirror rules and mirror's pure planner: tag selection (glob, regex, semver, newest N),
destination naming, platform filtering that says when an index cannot keep its digest, and the
copy jobs the fan-out sends (the replication queue's own job document)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chalicelib.mirror.fanout import due, job_documents
from chalicelib.mirror.plan import UpstreamImage, plan_mirror
from chalicelib.policy.mirror import MirrorRule, schedule_seconds
from chalicelib.registry_client.auth import parse_challenge
from chalicelib.registry_client.reference import parse_reference, registry_url
from chalicelib.registry_client.transport import retry_after
from chalicelib.replication.jobs import CopyJob

SIG = "sha256-" + "a" * 64 + ".sig"
TAGS = ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "latest", "edge", SIG, "sha256-" + "b" * 64]


def rule(**fields: object) -> MirrorRule:
    fields.setdefault("name", "hub")
    fields.setdefault("upstream", "docker.io")
    fields.setdefault("repositories", ["library/nginx"])
    return MirrorRule.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "selected"),
    [
        ({}, ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "edge", "latest"]),
        ({"tags": "1.*"}, ["1.0.0", "1.10.0", "1.2.0"]),
        ({"tag_regex": r"\d+\.\d+\.\d+"}, ["1.0.0", "1.10.0", "1.2.0"]),
        # semver: a pre-release of 2.0.0 is below 2.0.0, and the newest of >=1.0.0
        ({"tag_semver": ">=1.1.0,<2.0.0"}, ["1.10.0", "1.2.0", "2.0.0-rc.1"]),
        ({"tag_semver": ">=1.0.0", "newest": 2}, ["2.0.0-rc.1", "1.10.0"]),
        ({"newest": 4}, ["2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0"]),
    ],
)
def test_tag_selection_never_takes_signature_or_referrer_tags(fields, selected) -> None:
    assert rule(**fields).select_tags(TAGS) == selected


def test_destination_naming_and_invalid_rules() -> None:
    assert rule().destination_for("library/nginx") == "mirror/docker.io/library/nginx"
    local = rule(upstream="http://127.0.0.1:5001", destination="up/{name}")
    assert local.destination_for("team/app") == "up/app"
    assert schedule_seconds("rate(6 hours)") == 21600
    for bad in ({"tags": "1.*", "tag_semver": ">=1.0.0"}, {"schedule": "cron(0 * * * ? *)"}):
        with pytest.raises(ValidationError):
            rule(**bad)
    with pytest.raises(ValidationError, match="not a valid ECR repository name"):
        rule(destination="Mirror/{repository}")


def images(platforms: list[str] | None) -> list[UpstreamImage]:
    digest = "sha256:" + "c" * 64
    return [
        UpstreamImage(repository="library/nginx", tag=t, digest=digest, platforms=platforms)
        for t in ("1.2.0", "1.2")
    ]


def test_plan_groups_tags_per_digest_and_keeps_index_digests() -> None:
    plan = plan_mirror(
        rule(platforms=["linux/amd64", "linux/arm64"]), images(["linux/amd64", "linux/arm64"]), 5
    )
    [item] = plan.items
    assert (item.action, item.tags, item.digest_kept) == ("copy", ["1.2", "1.2.0"], True)
    assert plan.unselected == 3


def test_a_filtered_index_says_it_cannot_keep_its_digest() -> None:
    both = ["linux/amd64", "linux/s390x"]
    whole = plan_mirror(rule(platforms=["linux/amd64"]), images(both), 2).items[0]
    assert whole.action == "copy" and "another digest" in whole.reason
    assert "every platform is copied" in whole.reason
    skipped = plan_mirror(
        rule(platforms=["linux/amd64"], partial_platforms="skip"), images(both), 2
    ).items[0]
    assert (skipped.action, skipped.digest_kept) == ("skip", False)
    assert "linux/s390x" in skipped.reason


def test_fanout_jobs_are_replication_copy_jobs_with_an_upstream() -> None:
    r = rule(credentials_secret="ecr-steward/mirror/hub")
    plan = plan_mirror(r, images(None), 2)
    [document] = job_documents(r, plan, account="123456789012", region="us-east-1")
    job = CopyJob.model_validate(document)
    assert job.upstream is not None and job.upstream.url == "https://registry-1.docker.io"
    assert job.upstream.secret == "ecr-steward/mirror/hub"
    assert job.destination.repository == "mirror/docker.io/library/nginx"
    assert job.rule == "mirror:hub" and job.tags == ["1.2", "1.2.0"]
    assert job.destination.create_repository
    fixed = rule(create_repository=False)
    [kept] = job_documents(fixed, plan_mirror(fixed, images(None), 2), account="1" * 12, region="x")
    assert CopyJob.model_validate(kept).destination.create_repository is False


def test_schedule_due_on_the_rules_interval() -> None:
    six = rule(schedule="rate(6 hours)")
    assert [due(six, h * 3600.0) for h in range(7)] == [True] + [False] * 5 + [True]
    assert all(due(rule(schedule="rate(15 minutes)"), h * 3600.0) for h in range(3))


def test_client_parsing_helpers() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.docker.io/token"
    assert challenge.params["scope"] == "repository:library/nginx:pull"
    assert parse_challenge('Basic realm="https://x/",service="ecr.amazonaws.com"').scheme == "basic"  # type: ignore[union-attr]
    assert retry_after("7", 0) == 7.0 and retry_after("999", 0) == 60.0
    assert retry_after(None, 2) == 2.0 and retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 0) == 0.5
    nginx = parse_reference("nginx:1.25")
    assert (nginx.registry, nginx.repository, nginx.tag) == ("docker.io", "library/nginx", "1.25")
    ghcr = parse_reference("ghcr.io/org/app@sha256:" + "d" * 64)
    assert (ghcr.registry, ghcr.repository, ghcr.reference) == (
        "ghcr.io",
        "org/app",
        "sha256:" + "d" * 64,
    )
    local = parse_reference("localhost:5000/team/app:edge")
    assert (local.registry, local.repository, local.tag) == ("localhost:5000", "team/app", "edge")
    assert registry_url("docker.io") == "https://registry-1.docker.io"
    assert registry_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert registry_url("quay.io") == "https://quay.io"
