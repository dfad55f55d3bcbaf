"""The embedded ECR scans as ECR does: on push or start-image-scan, findings through
describe-image-scan-findings (paginated), then an `ECR Image Scan` event as AWS documents it."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from steward_tools.local import scanning
from steward_tools.samples import build_image, build_index
from tests.aws_helpers import take_queued_events
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built


@pytest.fixture
def ecr(aws):
    # One attempt: LimitExceededException is retried as throttling by botocore otherwise.
    return boto3.client("ecr", config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def queued_events(aws) -> list[dict]:
    return take_queued_events(boto3.client("sqs"), aws.resources.events_queue_url)


def findings(n: int, severity: str) -> list[dict]:
    return [{"name": f"CVE-2024-{i:04d}", "severity": severity} for i in range(n)]


def test_scan_on_push_emits_the_documented_event(aws, registry, ecr) -> None:
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=1)
    scanning.set_findings(
        ACCOUNT, REGION, "team/app", image.digest, findings(2, "HIGH") + findings(1, "LOW")
    )
    push_built(registry, image, "team/app", tag="1.0.0")

    scans = [e for e in queued_events(aws) if e["detail-type"] == "ECR Image Scan"]

    [event] = scans
    assert event["source"] == "aws.ecr"
    assert event["resources"] == [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/team/app"]
    assert event["detail"] == {
        "scan-status": "COMPLETE",
        "repository-name": "team/app",
        # Only the severities that occur.
        "finding-severity-counts": {"HIGH": 2, "LOW": 1},
        "image-digest": image.digest,
        "image-tags": ["1.0.0"],
    }


def test_findings_are_described_page_by_page(aws, registry, ecr) -> None:
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=2)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, findings(150, "MEDIUM"))
    push_built(registry, image, "team/app", tag="1.0.0")

    first = ecr.describe_image_scan_findings(
        repositoryName="team/app", imageId={"imageDigest": image.digest}, maxResults=100
    )
    assert first["imageScanStatus"]["status"] == "COMPLETE"
    assert first["imageScanFindings"]["findingSeverityCounts"] == {"MEDIUM": 150}
    assert len(first["imageScanFindings"]["findings"]) == 100
    assert registry.scan_findings("team/app", image.digest)["findings"][149]["name"] == (
        "CVE-2024-0149"
    )


def test_an_image_never_scanned_has_no_scan(aws, registry, ecr) -> None:
    registry.create_repository("team/app")
    image = build_image(seed=3)
    push_built(registry, image, "team/app", tag="1.0.0")

    with pytest.raises(ecr.exceptions.ScanNotFoundException):
        ecr.describe_image_scan_findings(
            repositoryName="team/app", imageId={"imageDigest": image.digest}
        )
    assert not [e for e in queued_events(aws) if e["detail-type"] == "ECR Image Scan"]


def test_start_image_scan_once_a_day_and_never_an_index(aws, registry, ecr) -> None:
    registry.create_repository("team/app")
    child = build_image(seed=4)
    index = build_index([child])
    push_built(registry, index, "team/app", tag="1.0.0")

    started = ecr.start_image_scan(repositoryName="team/app", imageId={"imageDigest": child.digest})
    assert started["imageScanStatus"]["status"] == "IN_PROGRESS"
    assert (
        ecr.describe_image_scan_findings(
            repositoryName="team/app", imageId={"imageDigest": child.digest}
        )["imageScanFindings"]["findings"]
        == []
    )
    with pytest.raises(ecr.exceptions.LimitExceededException):
        ecr.start_image_scan(repositoryName="team/app", imageId={"imageDigest": child.digest})
    with pytest.raises(ecr.exceptions.UnsupportedImageTypeException):
        ecr.start_image_scan(repositoryName="team/app", imageId={"imageTag": "1.0.0"})
    assert registry.start_image_scan("team/app", index.digest) == "UnsupportedImageTypeException"


def test_demo_findings_from_an_ssm_parameter(aws, registry, ecr) -> None:
    boto3.client("ssm").put_parameter(
        Name="/ecr-steward/local/findings/demo/hello",
        Value=json.dumps([{"name": "CVE-2024-9999", "severity": "CRITICAL", "cvss": 9.1}]),
        Type="String",
    )
    registry.create_repository("demo/hello", scan_on_push=True)
    image = build_image(seed=5)
    push_built(registry, image, "demo/hello", tag="1.0.0")

    [finding] = registry.scan_findings("demo/hello", image.digest)["findings"]
    assert finding["name"] == "CVE-2024-9999"
    assert {"key": "CVSS3_SCORE", "value": "9.1"} in finding["attributes"]
