"""Governance against the embedded ECR, through boto3: repositories created as declared, drift in
every setting fixed (encryption reported, never touched), dry runs, ephemeral repositories expiring,
and a second run that has nothing to do."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import app
from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.governance.apply import apply_governance_plan
from chalicelib.governance.plan import plan_governance
from chalicelib.governance.read import read_registry
from chalicelib.governance.task import reconcile
from chalicelib.policy.document import PolicyError, parse_policy
from chalicelib.policy.governance import GovernancePolicy
from chalicelib.sweep.jobs import RepositoryJob
from steward_tools.cli import main
from steward_tools.local.jobs import sqs_event
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.aws_helpers import scheduled_event
from tests.imagefactory import push_built

MUTATING = {
    "create_repository",
    "delete_repository",
    "put_image_scanning_configuration",
    "put_image_tag_mutability",
    "put_lifecycle_policy",
    "delete_lifecycle_policy",
    "set_repository_policy",
    "delete_repository_policy",
    "tag_resource",
    "untag_resource",
}

LIFECYCLE: dict[str, Any] = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "expire untagged after 14 days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": ["dev", "pr"],
                "countType": "imageCountMoreThan",
                "countNumber": 20,
            },
            "action": {"type": "expire"},
        },
    ]
}
CROSS_ACCOUNT_PULL: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "CrossAccountPull",
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        }
    ],
}

POLICY = f"""
governance:
  repositories:
    - repositories: ["team-a/*"]
      scan_on_push: true
      tag_mutability: IMMUTABLE
      mutability_exclusions: ["latest", "dev-*"]
      encryption: {{type: KMS}}
      lifecycle_policy: {json.dumps(LIFECYCLE)}
      repository_policy: {json.dumps(CROSS_ACCOUNT_PULL)}
      tags: {{team: a, cost-center: "42"}}
      remove_undeclared_tags: true
  declared: ["team-a/api"]
"""


def section(text: str = POLICY) -> GovernancePolicy:
    return parse_policy(text).policy.governance


def ecr(aws: Any) -> Any:
    return aws.client("ecr")


def mutating_calls(registry: Registry) -> dict[str, int]:
    return {op: n for op, n in registry.calls.items() if op in MUTATING}


def settings_of(aws: Any, name: str) -> dict[str, Any]:
    client = ecr(aws)
    repo = client.describe_repositories(repositoryNames=[name])["repositories"][0]
    tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    return {
        "scan_on_push": repo["imageScanningConfiguration"]["scanOnPush"],
        "mutability": repo["imageTagMutability"],
        "exclusions": sorted(
            f["filter"] for f in repo.get("imageTagMutabilityExclusionFilters", [])
        ),
        "encryption": repo["encryptionConfiguration"]["encryptionType"],
        "tags": {t["Key"]: t["Value"] for t in tags},
        "lifecycle": json.loads(
            client.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"]
        ),
        "policy": json.loads(client.get_repository_policy(repositoryName=name)["policyText"]),
    }


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# --- the embedded backend behaves as ECR does for these calls ----------------------------------


def test_missing_policies_read_as_none_and_delete_as_already_done(aws, registry: Registry) -> None:
    ecr(aws).create_repository(repositoryName="plain")
    for operation in ("get_repository_policy", "get_lifecycle_policy"):
        with pytest.raises(Exception) as raised:
            getattr(ecr(aws), operation)(repositoryName="plain")
        expected = (
            "RepositoryPolicyNotFoundException"
            if "repository" in operation
            else "LifecyclePolicyNotFoundException"
        )
        assert raised.value.response["Error"]["Code"] == expected  # type: ignore[attr-defined]
    assert registry.get_repository_policy("plain") is None
    assert registry.get_lifecycle_policy("plain") is None
    assert registry.delete_repository_policy("plain") is False
    assert registry.delete_lifecycle_policy("plain") is False


def test_tag_mutability_exclusion_filters_round_trip(aws, registry: Registry) -> None:
    ecr(aws).create_repository(repositoryName="filters")
    response = ecr(aws).put_image_tag_mutability(
        repositoryName="filters",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest*"}],
    )
    assert response["imageTagMutabilityExclusionFilters"] == [
        {"filterType": "WILDCARD", "filter": "latest*"}
    ]
    info = registry.describe_repository("filters")
    assert (info.tag_mutability, info.mutability_exclusions) == (
        "IMMUTABLE_WITH_EXCLUSION",
        ["latest*"],
    )
    # ECR refuses filters with a plain mode, and an *_WITH_EXCLUSION mode without filters.
    with pytest.raises(RegistryError) as raised:
        registry.put_tag_mutability("filters", "MUTABLE", ["dev-*"])
    assert raised.value.code == "InvalidParameterException"
    with pytest.raises(RegistryError):
        registry.put_tag_mutability("filters", "MUTABLE_WITH_EXCLUSION")
    assert registry.describe_repository("filters").tag_mutability == "IMMUTABLE_WITH_EXCLUSION"


def test_scanning_configuration_reports_scan_on_push(aws, registry: Registry) -> None:
    ecr(aws).create_repository(
        repositoryName="scanned", imageScanningConfiguration={"scanOnPush": True}
    )
    ecr(aws).create_repository(repositoryName="unscanned")
    configs = registry.get_scanning_configurations(["scanned", "unscanned"])
    assert configs["scanned"]["scanOnPush"] is True
    assert configs["scanned"]["scanFrequency"] == "SCAN_ON_PUSH"
    assert configs["unscanned"]["scanOnPush"] is False
    registry.put_scan_on_push("unscanned", True)
    assert registry.get_scanning_configurations(["unscanned"])["unscanned"]["scanOnPush"] is True


# --- governance -------------------------------------------------------------------------------


def test_creates_a_declared_repository_with_its_settings(aws, registry: Registry) -> None:
    plan, result = reconcile(registry, section(), NOW)

    assert [c.operation for c in plan.changes] == [
        "create_repository",
        "put_lifecycle_policy",
        "set_repository_policy",
    ]
    assert {r.outcome for r in result.results} == {"applied"}
    assert settings_of(aws, "team-a/api") == {
        "scan_on_push": True,
        "mutability": "IMMUTABLE_WITH_EXCLUSION",
        "exclusions": ["dev-*", "latest"],
        "encryption": "KMS",
        "tags": {"team": "a", "cost-center": "42"},
        "lifecycle": LIFECYCLE,
        "policy": CROSS_ACCOUNT_PULL,
    }


def test_fixes_drift_in_every_setting_and_reports_encryption(aws, registry: Registry) -> None:
    client = ecr(aws)
    arn = client.create_repository(
        repositoryName="team-a/web",
        imageTagMutability="MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
        tags=[{"Key": "team", "Value": "b"}, {"Key": "stray", "Value": "x"}],
    )["repository"]["repositoryArn"]
    first = LIFECYCLE["rules"][0]
    other_lifecycle = {"rules": [{**first, "selection": {**first["selection"], "countNumber": 30}}]}
    client.put_lifecycle_policy(
        repositoryName="team-a/web", lifecyclePolicyText=json.dumps(other_lifecycle)
    )
    client.set_repository_policy(
        repositoryName="team-a/web",
        policyText=json.dumps(
            {
                **CROSS_ACCOUNT_PULL,
                "Statement": [
                    {
                        **CROSS_ACCOUNT_PULL["Statement"][0],
                        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                    }
                ],
            }
        ),
    )

    plan, result = reconcile(registry, section(), NOW)

    web = {c.setting: c for c in plan.changes if c.repository == "team-a/web"}
    assert web["scan_on_push"].operation == "put_image_scanning_configuration"
    assert web["tag_mutability"].reason.startswith(
        "tag mutability is MUTABLE_WITH_EXCLUSION except latest, "
        "wanted IMMUTABLE_WITH_EXCLUSION except dev-*, latest"
    )
    assert web["lifecycle_policy"].operation == "put_lifecycle_policy"
    assert web["repository_policy"].operation == "set_repository_policy"
    assert web["encryption"].operation == "report"
    assert "cannot change encryption after creation" in web["encryption"].reason
    ops = [
        c.operation for c in plan.changes if c.setting == "tags" and c.repository == "team-a/web"
    ]
    assert ops == ["tag_resource", "untag_resource"]

    after = settings_of(aws, "team-a/web")
    assert after == {
        "scan_on_push": True,
        "mutability": "IMMUTABLE_WITH_EXCLUSION",
        "exclusions": ["dev-*", "latest"],
        "encryption": "AES256",  # reported, never "fixed"
        "tags": {"team": "a", "cost-center": "42"},
        "lifecycle": LIFECYCLE,
        "policy": CROSS_ACCOUNT_PULL,
    }
    assert (
        client.describe_repositories(repositoryNames=["team-a/web"])["repositories"][0][
            "repositoryArn"
        ]
        == arn
    )  # the same repository, not a recreated one
    reported = [r for r in result.results if r.outcome == "reported"]
    assert [r.change.setting for r in reported] == ["encryption"]


def test_absent_policies_are_deleted(aws, registry: Registry) -> None:
    client = ecr(aws)
    client.create_repository(repositoryName="open/repo")
    client.put_lifecycle_policy(
        repositoryName="open/repo", lifecyclePolicyText=json.dumps(LIFECYCLE)
    )
    client.set_repository_policy(
        repositoryName="open/repo", policyText=json.dumps(CROSS_ACCOUNT_PULL)
    )
    rules = section(
        """
governance:
  repositories:
    - repositories: ["open/*"]
      lifecycle_policy: absent
      repository_policy: absent
"""
    )
    plan, _ = reconcile(registry, rules, NOW)
    assert [c.operation for c in plan.actions] == [
        "delete_lifecycle_policy",
        "delete_repository_policy",
    ]
    assert registry.get_lifecycle_policy("open/repo") is None
    assert registry.get_repository_policy("open/repo") is None
    assert plan_governance(rules, read_registry(registry, rules, NOW), NOW).actions == []


def test_policy_documents_compare_by_meaning_not_text(aws, registry: Registry) -> None:
    client = ecr(aws)
    client.create_repository(repositoryName="team-a/same")
    reordered = {"rules": list(reversed(LIFECYCLE["rules"]))}
    reordered["rules"][0] = {
        **reordered["rules"][0],
        "selection": {**reordered["rules"][0]["selection"], "tagPrefixList": ["pr", "dev"]},
    }
    client.put_lifecycle_policy(
        repositoryName="team-a/same", lifecyclePolicyText=json.dumps(reordered, indent=4)
    )
    statement = CROSS_ACCOUNT_PULL["Statement"][0]
    same_policy = {
        "Statement": {  # one statement, not a list; scalar principal; actions reordered
            "Action": list(reversed(statement["Action"])),
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
            "Effect": "Allow",
            "Sid": "CrossAccountPull",
        },
        "Version": "2012-10-17",
    }
    client.set_repository_policy(repositoryName="team-a/same", policyText=json.dumps(same_policy))
    rules = section()
    plan = plan_governance(rules, read_registry(registry, rules, NOW), NOW)
    same = {c.setting: c.operation for c in plan.changes if c.repository == "team-a/same"}
    assert same["lifecycle_policy"] == "keep"
    assert same["repository_policy"] == "keep"


def test_dry_run_changes_nothing_but_shows_the_plan(aws, registry: Registry) -> None:
    ecr(aws).create_repository(repositoryName="team-a/web")
    rules = section(POLICY + "  dry_run: true\n")
    before = ecr(aws).describe_repositories()["repositories"]

    _, result = reconcile(registry, rules, NOW)

    assert result.dry_run
    planned = [r.change.operation for r in result.results if r.outcome == "planned"]
    assert "create_repository" in planned and "put_image_scanning_configuration" in planned
    assert mutating_calls(registry) == {}
    assert ecr(aws).describe_repositories()["repositories"] == before


def test_apply_twice_second_plan_is_empty_and_makes_no_mutating_call(
    aws, registry: Registry
) -> None:
    ecr(aws).create_repository(repositoryName="team-a/web", tags=[{"Key": "x", "Value": "y"}])
    rules = section()
    reconcile(registry, rules, NOW)

    second = Registry(region="us-east-1")
    plan, result = reconcile(second, rules, NOW)

    assert [c.setting for c in plan.drift] == ["encryption"]  # reported, never fixed
    assert plan.actions == []
    assert mutating_calls(second) == {}
    assert {r.outcome for r in result.results} == {"kept", "reported"}


EPHEMERAL = """
governance:
  ephemeral:
    - repositories: ["pr-*"]
      ttl: 2h
    - repositories: ["scratch/*"]
      ttl: 1d
      force: true
  declared: ["pr-keep"]
"""


def _created_at(aws: Any, name: str) -> datetime:
    repo = ecr(aws).describe_repositories(repositoryNames=[name])["repositories"][0]
    return repo["createdAt"].astimezone(UTC)


def test_ephemeral_repository_expires_after_its_ttl_only_when_empty(
    aws, registry: Registry
) -> None:
    for name in ("pr-1", "pr-2", "pr-keep", "scratch/full"):
        ecr(aws).create_repository(repositoryName=name)
    push_built(registry, build_image(seed=1), "pr-2", "1.0")
    push_built(registry, build_image(seed=2), "scratch/full", "1.0")
    rules = section(EPHEMERAL)
    created = _created_at(aws, "pr-1")

    plan, _ = reconcile(registry, rules, created + timedelta(hours=1))
    assert plan.actions == []
    assert "expires at" in next(c.reason for c in plan.changes if c.repository == "pr-1")

    later = created + timedelta(days=1, hours=1)
    plan, result = reconcile(registry, rules, later)
    deleted = {c.repository for c in plan.actions}
    assert deleted == {"pr-1", "scratch/full"}  # empty, or force
    kept = {c.repository: c.reason for c in plan.changes if c.operation == "keep"}
    assert "holds images; force is off" in kept["pr-2"]
    assert kept["pr-keep"] == "declared in governance.declared: exists"  # never ephemeral
    names = {r["repositoryName"] for r in ecr(aws).describe_repositories()["repositories"]}
    assert names == {"pr-2", "pr-keep"}
    assert {r.outcome for r in result.results if r.change.operation == "delete_repository"} == {
        "applied"
    }


def test_deletion_cap_leaves_the_rest_for_the_next_run(aws, registry: Registry) -> None:
    for n in range(3):
        ecr(aws).create_repository(repositoryName=f"pr-{n}")
    rules = section(EPHEMERAL + "  max_repository_deletions: 2\n")
    later = _created_at(aws, "pr-2") + timedelta(hours=3)
    plan, _ = reconcile(registry, rules, later)
    assert len([c for c in plan.actions if c.operation == "delete_repository"]) == 2
    assert any("max_repository_deletions" in c.reason for c in plan.changes)
    names = {r["repositoryName"] for r in ecr(aws).describe_repositories()["repositories"]}
    assert len(names - {"pr-keep"}) == 1


def test_apply_survives_a_race_and_records_failures(aws, registry: Registry) -> None:
    rules = section()
    plan = plan_governance(rules, read_registry(registry, rules, NOW), NOW)
    ecr(aws).create_repository(repositoryName="team-a/api")  # someone else creates it first
    result = apply_governance_plan(registry, plan)
    assert result.results[0].outcome == "unchanged"
    # The next run brings the repository created by someone else to its settings.
    reconcile(registry, rules, NOW)
    assert settings_of(aws, "team-a/api")["scan_on_push"] is True


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "  repositories: [{repositories: ['*'], mutability_exclusions: ['x']}]",
            "repositories[0]",
        ),
        (
            "  repositories: [{repositories: ['*'], lifecycle_policy: {rules: []}}]",
            "repositories[0].lifecycle_policy",
        ),
        ("  declared: ['Bad_Name']", "declared"),
        ("  ephemeral: [{repositories: ['pr-*'], ttl: 'soon'}]", "ephemeral[0].ttl"),
        (
            "  repositories: [{repositories: ['*'], encryption: {type: AES256, kms_key: k}}]",
            "repositories[0].encryption",
        ),
    ],
)
def test_invalid_governance_policy_names_the_field(text: str, field: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy("governance:\n" + text + "\n")
    assert any(path.startswith(f"governance.{field}") for path, _ in raised.value.problems)


# --- the command line ---------------------------------------------------------------------------


def test_cli_plan_then_apply(aws, tmp_path: Path, monkeypatch) -> None:

    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runner = CliRunner()

    plan = runner.invoke(main, ["governance", "plan", "--local", "--json", "--policy", str(policy)])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.output)["changes"][0]["operation"] == "create_repository"

    dry = runner.invoke(
        main, ["governance", "apply", "--local", "--dry-run", "--policy", str(policy)]
    )
    assert "planned" in dry.output and ecr(aws).describe_repositories()["repositories"] == []

    applied = runner.invoke(main, ["governance", "apply", "--local", "--policy", str(policy)])
    assert applied.exit_code == 0, applied.output
    assert "applied   create_repository" in applied.output

    again = runner.invoke(main, ["governance", "plan", "--local", "--policy", str(policy)])
    assert "no drift" in again.output


# --- the schedule and the sweep, through the Lambda handlers -----------------------------------

SCHEDULED_EVENT = scheduled_event("governance_reconcile", "2026-11-27T12:00:00Z")


def test_schedule_creates_declared_and_expires_ephemeral(
    aws, registry: Registry, policy_file
) -> None:

    policy_file(POLICY + "  ephemeral: [{repositories: ['pr-*'], ttl: 2h}]\n")
    for name in ("team-a/web", "pr-old", "pr-busy"):
        ecr(aws).create_repository(repositoryName=name)
    push_built(registry, build_image(seed=3), "pr-busy", "1.0")
    # EventBridge's `time` is when the run was scheduled: TTLs are measured there.
    when = _created_at(aws, "pr-old") + timedelta(hours=3)
    event = {**SCHEDULED_EVENT, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}

    outcome = app.governance_reconcile(event, LocalLambdaContext())

    assert outcome["outcomes"] == {"applied": 4, "kept": 1}  # create + 2 policies, 1 delete
    names = {r["repositoryName"] for r in ecr(aws).describe_repositories()["repositories"]}
    assert names == {"team-a/api", "team-a/web", "pr-busy"}
    assert settings_of(aws, "team-a/api")["policy"] == CROSS_ACCOUNT_PULL
    # Settings of existing repositories are the sweep's per-repository task, not this one's.
    assert registry.describe_repository("team-a/web").scan_on_push is False


def test_sweep_job_fixes_settings(aws, registry: Registry, policy_file) -> None:

    open_rule = """    - repositories: ["open/*"]
      lifecycle_policy: absent
      repository_policy: absent
"""
    policy_file(POLICY.replace("  declared:", open_rule + "  declared:"))
    client = ecr(aws)
    client.create_repository(repositoryName="team-a/web", tags=[{"Key": "stray", "Value": "1"}])
    client.create_repository(repositoryName="open/repo")
    client.put_lifecycle_policy(
        repositoryName="open/repo", lifecyclePolicyText=json.dumps(LIFECYCLE)
    )
    client.set_repository_policy(
        repositoryName="open/repo", policyText=json.dumps(CROSS_ACCOUNT_PULL)
    )
    messages = [
        {
            "MessageId": f"m-{n}",
            "ReceiptHandle": f"r-{n}",
            "Body": RepositoryJob(
                sweep_id="s-1",
                account="123456789012",
                region="us-east-1",
                repository=registry.describe_repository(name),
                started_at=NOW,
            ).model_dump_json(),
        }
        for n, name in enumerate(["team-a/web", "open/repo"])
    ]
    event = sqs_event(
        messages, "arn:aws:sqs:us-east-1:123456789012:steward-repository-jobs", "us-east-1"
    )

    assert app.on_repository_job(event, LocalLambdaContext()) == {"batchItemFailures": []}

    web = settings_of(aws, "team-a/web")
    assert web["policy"] == CROSS_ACCOUNT_PULL and web["lifecycle"] == LIFECYCLE
    assert (web["scan_on_push"], web["mutability"]) == (True, "IMMUTABLE_WITH_EXCLUSION")
    assert web["tags"] == {"team": "a", "cost-center": "42"}
    assert registry.get_lifecycle_policy("open/repo") is None
    assert registry.get_repository_policy("open/repo") is None
