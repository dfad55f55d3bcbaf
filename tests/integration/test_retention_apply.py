"""Retention against the embedded ECR: multi-arch images, signatures, referrers and images in use
(ECS, Lambda, an SSM operator list), pruned with nothing broken and nothing in use deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.settings import get_settings
from chalicelib.oci.graph import index_children, is_index
from chalicelib.oci.referrers import cosign_subject, cosign_tag
from chalicelib.policy.retention import RetentionSettings
from chalicelib.retention import inuse
from chalicelib.retention.apply import apply_retention_plan
from chalicelib.retention.marks import MarkStore
from chalicelib.retention.task import plan_for_repository, retain_repository
from chalicelib.sweep.jobs import RepositoryJob
from steward_tools.local.jobs import sqs_event
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import (
    build_image,
    build_index,
    build_referrer,
    build_signature,
)
from tests.imagefactory import push_built

REPO = "team/app"
ACCOUNT = "123456789012"
LATER = timedelta(days=30)


@pytest.fixture(autouse=True)
def fresh_in_use() -> Iterator[None]:
    inuse.forget()  # the in-use index is cached per process for a few minutes
    yield
    inuse.forget()


def settings(**fields: Any) -> RetentionSettings:
    fields.setdefault("max_deletion_share", 1.0)
    return RetentionSettings.model_validate(fields)


def multi_arch(seed: int, shared: Any = None) -> Any:
    amd = shared or build_image([128], seed=seed, architecture="amd64")
    arm = build_image([128], seed=seed + 1, architecture="arm64")
    return build_index([amd, arm])


def assert_nothing_broken(registry: Registry) -> None:
    """Every tag resolves to a complete image; every referrer's subject is present."""
    images = {i.digest: i for i in registry.iter_images(REPO)}
    for image in images.values():
        for tag in image.tags:
            manifest = registry.get_manifest(REPO, tag=tag)
            assert manifest.digest == image.digest
        if is_index(image):
            manifest = registry.get_manifest(REPO, digest=image.digest)
            missing = [c for c in index_children(manifest) if c not in images]
            assert not missing, f"index {image.tags} lost children {missing}"
        subject = image.subject_digest or next(
            (s for t in image.tags if (s := cosign_subject(t))), None
        )
        if subject is not None:
            assert subject in images, f"referrer {image.tags} outlived its subject"


def ecs_running(image: str) -> None:

    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(
        family="web",
        containerDefinitions=[{"name": "web", "image": image, "memory": 128}],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    ecs.run_task(
        cluster="prod",
        taskDefinition="web",
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": ["sg-1"]}
        },
    )


def lambda_function(image: str) -> None:

    role = boto3.client("iam").create_role(RoleName="steward-test", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    boto3.client("lambda").create_function(
        FunctionName="worker", Role=role, PackageType="Image", Code={"ImageUri": image}
    )


def test_prune_keeps_graph_whole_and_spares_images_in_use(
    registry: Registry, tmp_path: Any
) -> None:

    info = registry.create_repository(REPO)
    uri = info.uri
    # v1.0.0: a multi-arch index with a cosign signature and an SBOM referrer; superseded.
    old = multi_arch(seed=10)
    push_built(registry, old, REPO, "1.0.0")
    old_sig = build_signature(old, seed=1)
    push_built(registry, old_sig, REPO, cosign_tag(old.digest))
    old_sbom = build_referrer(old, seed=2)
    push_built(registry, old_sbom, REPO)
    # pr-5: an index sharing its amd64 image with 1.1.0, below.
    shared = build_image([128], seed=50, architecture="amd64")
    pr5 = multi_arch(seed=60, shared=shared)
    push_built(registry, pr5, REPO, "pr-5")
    # v1.1.0: the current release, signed.
    new = multi_arch(seed=20, shared=shared)
    push_built(registry, new, REPO, "1.1.0")
    new_sig = build_signature(new, seed=3)
    push_built(registry, new_sig, REPO, cosign_tag(new.digest))
    # Single images: pr-1 unused, pr-2 run by Lambda (by tag), pr-3 run by ECS (by digest).
    pr1 = push_built(registry, build_image([64], seed=1), REPO, "pr-1")
    pr2 = push_built(registry, build_image([64], seed=2), REPO, "pr-2")
    pr3 = push_built(registry, build_image([64], seed=3), REPO, "pr-3")
    stable = push_built(registry, build_image([64], seed=4), REPO, "stable")
    # Untagged: one nobody knows, one an EKS cluster runs (the operator's SSM list).
    loose = push_built(registry, build_image([64], seed=5), REPO)
    eks = push_built(registry, build_image([64], seed=6), REPO)
    # A signature whose subject was never here (deleted long ago).
    ghost = build_image([64], seed=7)
    orphan = push_built(registry, build_signature(ghost, seed=4), REPO, cosign_tag(ghost.digest))

    lambda_function(f"{uri}:pr-2")
    ecs_running(f"{uri}@{pr3}")
    boto3.client("ssm").put_parameter(
        Name="/steward/in-use", Type="StringList", Value=f"{REPO}@{eks},other/repo:1"
    )

    policy = settings(
        rules=[
            {"kind": "keep_semver", "repositories": ["team/*"], "count": 1},
            {"kind": "always_keep", "repositories": ["team/*"], "tags": "stable"},
            {
                "kind": "expire_tagged",
                "repositories": ["team/*"],
                "tags": "*",
                "older_than_days": 7,
            },
            {"kind": "expire_untagged", "repositories": ["team/*"], "older_than_days": 7},
        ],
        in_use={"operator": {"ssm_parameter": "/steward/in-use"}},
    )
    now = datetime.now(UTC) + LATER
    plan = plan_for_repository(registry, policy, info, now)
    why = {d.digest: d for d in plan.decisions}
    assert "in use" in why[pr2].reason and "Lambda function worker" in why[pr2].reason
    assert "running ECS task" in why[pr3].reason
    assert "SSM /steward/in-use" in why[eks].reason
    assert why[stable].reason.startswith("rules[1] always_keep")
    assert why[new.digest].reason.startswith("rules[0] keep_semver: release 1.1.0")
    assert why[shared.digest].action == "keep"
    assert "kept" in why[shared.digest].reason
    assert why[orphan].reason.startswith("orphan")
    assert why[old.digest].rule == "rules[2] expire_tagged"

    registry.calls.clear()
    result = apply_retention_plan(registry, plan)

    assert result.failed == [] and result.skipped == []
    deleted = {
        old.digest,
        *(c.digest for c in old.children),
        old_sig.digest,
        old_sbom.digest,
        pr5.digest,
        pr5.children[1].digest,
        pr1,
        loose,
        orphan,
    }
    assert set(result.deleted) == deleted
    remaining = {i.digest for i in registry.iter_images(REPO)}
    assert remaining.isdisjoint(deleted)
    assert {pr2, pr3, eks, stable, new.digest, new_sig.digest, shared.digest} <= remaining
    assert_nothing_broken(registry)
    # Indexes first, children and referrers in a later batch: 2 batches, not one per image.
    assert registry.calls["batch_delete_image"] == 2


def test_cap_stops_the_run(registry: Registry) -> None:
    info = registry.create_repository(REPO)
    digests = [push_built(registry, build_image([64], seed=s), REPO, f"pr-{s}") for s in range(5)]
    rule = {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1}
    now = datetime.now(UTC) + LATER

    stopped = plan_for_repository(registry, settings(rules=[rule], max_deletions=3), info, now)
    result = apply_retention_plan(registry, stopped)
    assert result.deleted == [] and result.batches == 0
    assert result.capped and "would delete 5 of 5 images; the cap is 3" in result.capped
    assert len(list(registry.iter_images(REPO))) == 5

    # As a share: 40% of 5 is 2; oldest_first deletes the two oldest and stops.
    share = settings(rules=[rule], max_deletion_share=0.4, on_cap="oldest_first")
    result = apply_retention_plan(registry, plan_for_repository(registry, share, info, now))
    assert result.deleted == digests[:2]
    assert {i.digest for i in registry.iter_images(REPO)} == set(digests[2:])


def test_dry_run_globally_and_per_rule(registry: Registry) -> None:
    info = registry.create_repository(REPO)
    pr = push_built(registry, build_image([64], seed=1), REPO, "pr-1")
    loose = push_built(registry, build_image([64], seed=2), REPO)
    rules = [
        {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 1},
        {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 1, "dry_run": True},
    ]
    now = datetime.now(UTC) + LATER

    plan = plan_for_repository(registry, settings(rules=rules, dry_run=True), info, now)
    assert {d.digest: d.deferred for d in plan.decisions} == {pr: "dry run", loose: "dry run"}
    assert apply_retention_plan(registry, plan).deleted == []

    plan = plan_for_repository(registry, settings(rules=rules), info, now)
    assert plan.decision(loose).deferred == "dry run (rules[1] expire_untagged)"
    result = apply_retention_plan(registry, plan)
    assert result.deleted == [pr]
    assert [i.digest for i in registry.iter_images(REPO)] == [loose]


def test_index_pushed_after_planning_is_not_broken(registry: Registry) -> None:
    """ECR refuses to delete a child a new index lists: reported, kept, and the rest goes on."""
    info = registry.create_repository(REPO)
    child = push_built(registry, build_image([64], seed=1), REPO)
    other = push_built(registry, build_image([64], seed=2), REPO)
    rule = {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 1}
    plan = plan_for_repository(registry, settings(rules=[rule]), info, datetime.now(UTC) + LATER)
    late = build_index([build_image([64], seed=1)])
    push_built(registry, late, REPO, "2.0.0")

    result = apply_retention_plan(registry, plan)

    assert result.deleted == [other]
    assert [(f.digest, f.code) for f in result.failed] == [(child, "ImageReferencedByManifestList")]
    assert_nothing_broken(registry)


def test_grace_period_defers_until_first_mark_plus_grace(
    registry: Registry, policy_file: Any
) -> None:
    info = registry.create_repository(REPO)
    pr = push_built(registry, build_image([64], seed=1), REPO, "pr-1")
    policy_file(
        """
retention:
  grace_period_days: 2
  max_deletion_share: 1
  rules:
    - kind: expire_tagged
      repositories: ["team/*"]
      tags: "pr-*"
      older_than_days: 1
"""
    )
    first = datetime.now(UTC) + LATER

    marked = retain_repository(registry, info, first)
    assert marked["deleted"] == 0 and marked["deferred"] == 1
    assert retain_repository(registry, info, first + timedelta(days=1))["deleted"] == 0
    assert [i.digest for i in registry.iter_images(REPO)] == [pr]

    done = retain_repository(registry, info, first + timedelta(days=2, minutes=1))
    assert done["deleted"] == 1
    assert list(registry.iter_images(REPO)) == []


SWEEP_RETENTION = """
retention:
  max_deletion_share: 1
  grace_period_days: 1
  in_use:
    operator: {ssm_parameter: /steward/in-use}
    gate_promoted_days: 7
  rules:
    - {kind: expire_untagged, repositories: ["team/*"], older_than_days: 0}
"""


def test_the_sweep_worker_checks_every_in_use_source_and_remembers_grace_marks(
    registry: Registry, policy_file: Any
) -> None:
    """Retention as the deployed worker runs it: a repository job through `on_repository_job`,
    every in-use source consulted, nothing deleted before the grace period, marks written."""
    policy_file(SWEEP_RETENTION)
    info = registry.create_repository(REPO)
    release = multi_arch(seed=30)
    push_built(registry, release, REPO, "2.0.0")
    by_ecs = push_built(registry, build_image([64], seed=31), REPO)
    by_lambda = push_built(registry, build_image([64], seed=32), REPO)
    by_operator = push_built(registry, build_image([64], seed=33), REPO)
    loose = push_built(registry, build_image([64], seed=34), REPO)
    ecs_running(f"{info.uri}@{by_ecs}")
    boto3.client("ecs").create_service(
        cluster="prod", serviceName="web", taskDefinition="web", desiredCount=1
    )
    lambda_function(f"{info.uri}@{by_lambda}")
    boto3.client("ssm").put_parameter(
        Name="/steward/in-use", Type="StringList", Value=f"{REPO}@{by_operator}"
    )
    job = RepositoryJob(
        sweep_id="s-1",
        account=ACCOUNT,
        region="us-east-1",
        repository=info,
        started_at=datetime.now(UTC),
    )
    event = sqs_event(
        [{"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": job.model_dump_json()}],
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:steward-repository-jobs",
        "us-east-1",
    )

    assert app.on_repository_job(event, LocalLambdaContext()) == {"batchItemFailures": []}

    # Only the image nothing uses is marked, and nothing goes before its grace period ends.
    assert set(MarkStore(get_settings().retention_table).load(REPO)) == {loose}
    present = {i.digest for i in registry.iter_images(REPO)}
    assert {release.digest, *(c.digest for c in release.children)} <= present
    assert {by_ecs, by_lambda, by_operator, loose} <= present
