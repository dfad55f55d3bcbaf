"""start/get-lifecycle-policy-preview on the embedded ECR, through boto3 and the gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.ecr.models import ecr_backends

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.lifecycle_policy import LifecyclePolicyError
from chalicelib.lifecycle.preview import preview_repository
from tests.aws_helpers import error_code
from tests.lifecycle_rules import ARCHIVE_THEN_DELETE_RULES

REPO = "team/lifecycle"
ACCOUNT = "123456789012"
REGION = "us-east-1"

# `images` is tests/integration/embedded/conftest.py's Images helper.
Images = Any

UNTAGGED_OLDER_THAN_7_DAYS = {
    "rulePriority": 1,
    "description": "Expire untagged images older than 7 days",
    "selection": {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 7,
    },
    "action": {"type": "expire"},
}
KEEP_ONE = {
    "rulePriority": 9,
    "description": "Keep one image",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
    "action": {"type": "expire"},
}


def text(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)}, indent=2)


def backdate(digest: str, days: float) -> None:
    """Make an image look pushed `days` ago (the backend runs in this process)."""

    repo = ecr_backends[ACCOUNT][REGION].repositories[REPO]
    image = next(i for i in repo.images if i.get_image_digest() == digest)
    image.image_pushed_at = datetime.now(UTC) - timedelta(days=days)  # type: ignore[assignment]


@pytest.fixture
def repo(ecr: Any) -> str:
    ecr.create_repository(repositoryName=REPO)
    return REPO


def test_preview_of_the_repository_policy_protects_index_children(
    ecr: Any, images: Images, repo: str
) -> None:
    amd64 = images.push(repo)
    arm64 = images.push(repo)
    images.put(repo, images.index_manifest([amd64, arm64]), "v1")
    index = next(
        d["imageDigest"]
        for d in ecr.describe_images(repositoryName=repo)["imageDetails"]
        if d.get("imageTags") == ["v1"]
    )
    stale = images.push(repo)
    recent = images.push(repo)
    for digest in (amd64.digest, arm64.digest, index, stale.digest):
        backdate(digest, 30)
    ecr.put_lifecycle_policy(
        repositoryName=repo, lifecyclePolicyText=text(UNTAGGED_OLDER_THAN_7_DAYS)
    )

    started = ecr.start_lifecycle_policy_preview(repositoryName=repo)
    assert started["status"] == "IN_PROGRESS"
    ecr.get_waiter("lifecycle_policy_preview_complete").wait(
        repositoryName=repo, WaiterConfig={"Delay": 1, "MaxAttempts": 3}
    )
    preview = ecr.get_lifecycle_policy_preview(repositoryName=repo)

    assert preview["status"] == "COMPLETE"
    assert json.loads(preview["lifecyclePolicyText"]) == {"rules": [UNTAGGED_OLDER_THAN_7_DAYS]}
    # The old untagged children of the tagged index stay; the old untagged image goes.
    [result] = preview["previewResults"]
    assert result["imageDigest"] == stale.digest
    assert result["action"] == {"type": "EXPIRE"}
    assert result["appliedRulePriority"] == 1
    assert result["storageClass"] == "STANDARD"
    assert result["imagePushedAt"] < datetime.now(UTC) - timedelta(days=29)
    assert recent.digest not in {r["imageDigest"] for r in preview["previewResults"]}
    assert preview["summary"]["expiringImageTotalCount"] == 1


def test_preview_of_a_given_policy_text_pages_of_up_to_100(
    ecr: Any, images: Images, repo: str
) -> None:
    pushed = [images.push(repo, f"v{n}") for n in range(5)] + [images.push(repo) for _ in range(2)]
    ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=text(KEEP_ONE))

    first = ecr.get_lifecycle_policy_preview(repositoryName=repo, maxResults=4)
    second = ecr.get_lifecycle_policy_preview(
        repositoryName=repo, maxResults=4, nextToken=first["nextToken"]
    )
    assert len(first["previewResults"]) == 4
    assert len(second["previewResults"]) == 2
    assert "nextToken" not in second
    expired = {r["imageDigest"] for r in first["previewResults"] + second["previewResults"]}
    # Keep the newest one (the last pushed): every other image is expired by rule 9.
    assert expired == {p.digest for p in pushed[:-1]}
    assert first["summary"] == {
        "expiringImageTotalCount": 6,
        "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 0}],
    }

    paginator = ecr.get_paginator("get_lifecycle_policy_preview")
    gathered = [
        r for page in paginator.paginate(repositoryName=repo) for r in page["previewResults"]
    ]
    assert len(gathered) == 6

    untagged = ecr.get_lifecycle_policy_preview(
        repositoryName=repo, filter={"tagStatus": "UNTAGGED"}
    )
    assert {r["imageDigest"] for r in untagged["previewResults"]} == {pushed[5].digest}
    by_tag = ecr.get_lifecycle_policy_preview(repositoryName=repo, imageIds=[{"imageTag": "v2"}])
    assert [r["imageTags"] for r in by_tag["previewResults"]] == [["v2"]]

    with pytest.raises(ClientError) as too_many:
        ecr.get_lifecycle_policy_preview(repositoryName=repo, maxResults=101)
    assert error_code(too_many) == "InvalidParameterException"


def test_archive_policies_are_accepted_and_previewed(ecr: Any, images: Images, repo: str) -> None:
    never_pulled = images.push(repo, "old")
    images.push(repo, "new")
    backdate(never_pulled.digest, 120)
    ecr.put_lifecycle_policy(
        repositoryName=repo, lifecyclePolicyText=text(*ARCHIVE_THEN_DELETE_RULES)
    )
    ecr.start_lifecycle_policy_preview(repositoryName=repo)
    preview = ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert [(r["imageTags"], r["action"]) for r in preview["previewResults"]] == [
        (["old"], {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"})
    ]
    assert preview["summary"]["transitioningImageTotalCounts"] == [
        {"targetStorageClass": "ARCHIVE", "imageTotalCount": 1}
    ]


def test_preview_errors(ecr: Any, repo: str) -> None:
    with pytest.raises(ClientError) as no_preview:
        ecr.get_lifecycle_policy_preview(repositoryName=repo)
    assert error_code(no_preview) == "LifecyclePolicyPreviewNotFoundException"

    with pytest.raises(ClientError) as no_policy:
        ecr.start_lifecycle_policy_preview(repositoryName=repo)
    assert error_code(no_policy) == "LifecyclePolicyNotFoundException"

    bad = dict(
        UNTAGGED_OLDER_THAN_7_DAYS,
        selection={
            "tagStatus": "untagged",
            "countType": "imageCountMoreThan",
            "countUnit": "days",
            "countNumber": 3,
        },
    )
    with pytest.raises(ClientError) as invalid:
        ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=text(bad))
    assert error_code(invalid) == "InvalidParameterException"
    message = invalid.value.response["Error"]["Message"]
    assert "Lifecycle policy validation failure: rules[0].selection.countUnit" in message

    with pytest.raises(ClientError) as refused:
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text(bad))
    assert error_code(refused) == "InvalidParameterException"

    with pytest.raises(ClientError) as missing:
        ecr.start_lifecycle_policy_preview(
            repositoryName="nope", lifecyclePolicyText=text(KEEP_ONE)
        )
    assert error_code(missing) == "RepositoryNotFoundException"


def test_gateway_preview_gathers_every_page(registry: Registry, images: Images, repo: str) -> None:
    pushed = [images.push(repo, f"v{n}") for n in range(105)]
    preview = preview_repository(registry, repo, text(KEEP_ONE))
    assert preview.status == "COMPLETE"
    assert len(preview.results) == 104
    assert {r["imageDigest"] for r in preview.results} == {p.digest for p in pushed[:-1]}
    assert registry.calls["get_lifecycle_policy_preview"] == 2  # 100 + 4

    with pytest.raises(LifecyclePolicyError):
        preview_repository(registry, repo, text(dict(KEEP_ONE, rulePriority=0)))
    with pytest.raises(RegistryError) as no_policy:
        preview_repository(registry, repo)
    assert no_policy.value.code == "LifecyclePolicyNotFoundException"
