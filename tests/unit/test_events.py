"""Every event shape AWS documents parses into its model; anything else is rejected with the
exact field named."""

from __future__ import annotations

import json

import pytest

from chalicelib.events.models import MalformedEvent, parse_event
from tests.paths import EVENTS


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("ecr_image_action_push_success.json", "image-action"),
        ("ecr_image_action_delete_success.json", "image-action"),
        ("ecr_image_action_push_by_digest.json", "image-action"),
        ("ecr_image_action_push_failed.json", "image-action"),
        ("ecr_image_action_update_storage_class.json", "image-action"),
        ("ecr_image_scan_basic_complete.json", "image-scan"),
        ("inspector2_scan_ecr_initial_scan_complete.json", "inspector-scan"),
        ("ecr_replication_action_success.json", "replication-action"),
        ("ecr_referrer_action_push.json", "referrer-action"),
        ("ecr_pull_through_cache_action.json", "pull-through-cache"),
        ("ecr_scan_resource_change.json", "scan-resource-change"),
        ("inspector2_finding.json", "unhandled"),
        ("cloudtrail_ecr_api_call.json", "unhandled"),
    ],
)
def test_documented_events_parse(sample: str, kind: str) -> None:
    parsed = parse_event(load(sample))
    assert parsed.kind == kind


def test_push_event_fields() -> None:
    event = parse_event(load("ecr_image_action_push_success.json")).event
    assert event.detail.action_type == "PUSH"
    assert event.detail.image_tag == "latest"
    # AWS's own placeholder digest is shorter than a real one and must still parse.
    assert event.detail.image_digest.startswith("sha256:7f5b")
    assert event.resources == []
    assert event.repository_arn(event.detail.repository_name) == (
        "arn:aws:ecr:us-west-2:123456789012:repository/my-repository-name"
    )


def test_push_by_digest_has_no_tag() -> None:
    detail = parse_event(load("ecr_image_action_push_by_digest.json")).event.detail
    assert detail.image_tag is None
    assert detail.manifest_media_type == "application/vnd.oci.image.manifest.v1+json"


def test_inspector_scan_repository_arn_becomes_name() -> None:
    detail = parse_event(load("inspector2_scan_ecr_initial_scan_complete.json")).event.detail
    assert detail.repository_name == "amazon/amazon-ecs-sample"
    assert detail.count("CRITICAL") == 7
    assert detail.count("LOW") == 0  # missing severities are zero


def test_archive_and_restore_fields() -> None:
    detail = parse_event(load("ecr_image_action_update_storage_class.json")).event.detail
    assert detail.target_storage_class == "STANDARD"
    assert detail.last_activated_at == "2025-11-20T07:59:58Z"


def test_china_partition_arn() -> None:
    raw = load("ecr_image_action_push_success.json") | {"region": "cn-north-1"}
    event = parse_event(raw).event
    assert event.repository_arn("r").startswith("arn:aws-cn:ecr:cn-north-1:")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["detail"].pop("repository-name"), "detail.repository-name"),
        (lambda e: e["detail"].pop("action-type"), "detail.action-type"),
        (lambda e: e.pop("id"), "id"),
        (lambda e: e.update(time="yesterday"), "time"),
        (lambda e: e.update(detail="not an object"), "detail"),
    ],
)
def test_malformed_events_name_the_field(mutate, field: str) -> None:
    raw = load("ecr_image_action_push_success.json")
    mutate(raw)
    with pytest.raises(MalformedEvent) as caught:
        parse_event(raw)
    assert caught.value.reason.startswith(field + ":")


def test_non_object_payload_is_malformed() -> None:
    with pytest.raises(MalformedEvent, match="not a JSON object"):
        parse_event(["not", "an", "event"])


def _set(path: str, value: object):
    def mutate(event: dict) -> None:
        *parents, last = path.split("/")
        target = event
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


@pytest.mark.parametrize(
    ("sample", "mutate", "field"),
    [
        # Used as a dict key before validation: a list or an object raised TypeError.
        ("ecr_image_action_push_success.json", _set("source", ["aws.ecr"]), "source"),
        ("ecr_image_action_push_success.json", _set("source", {"a": 1}), "source"),
        ("ecr_image_action_push_success.json", _set("detail-type", ["x"]), "detail-type"),
        ("ecr_image_action_push_success.json", _set("detail-type", 7), "detail-type"),
        ("ecr_image_action_push_success.json", _set("account", "12345"), "account"),
        ("ecr_image_action_push_success.json", _set("account", "12345678901a"), "account"),
        ("ecr_image_action_push_success.json", _set("region", "mars-north-1"), "region"),
        ("ecr_image_action_push_success.json", _set("region", ""), "region"),
        ("ecr_image_action_push_success.json", _set("detail/image-tag", ""), "detail.image-tag"),
        ("ecr_image_action_push_success.json", _set("detail/image-tag", "a b"), "detail.image-tag"),
        (
            "ecr_image_action_push_success.json",
            _set("detail/image-digest", ""),
            "detail.image-digest",
        ),
        (
            "ecr_image_action_push_success.json",
            _set("detail/image-digest", "sha256:zz"),
            "detail.image-digest",
        ),
        (
            "ecr_image_action_push_success.json",
            _set("detail/repository-name", "Upper/Case"),
            "detail.repository-name",
        ),
        (
            "ecr_image_action_push_success.json",
            _set("detail/repository-name", ""),
            "detail.repository-name",
        ),
        (
            "ecr_image_scan_basic_complete.json",
            _set("detail/image-tags", ["ok", ""]),
            "detail.image-tags[1]",
        ),
        (
            "inspector2_scan_ecr_initial_scan_complete.json",
            _set("detail/repository-name", "arn:aws:ecr:us-east-2:1:repository/"),
            "detail.repository-name",
        ),
        ("ecr_image_action_push_success.json", _set("id", ""), "id"),
    ],
)
def test_impossible_values_are_rejected_naming_the_field(sample: str, mutate, field: str) -> None:
    raw = load(sample)
    mutate(raw)
    with pytest.raises(MalformedEvent) as caught:
        parse_event(raw)
    assert caught.value.reason.startswith(field + ":"), caught.value.reason


def test_every_region_in_botocore_partition_data_is_accepted() -> None:
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2", "cn-northwest-1", "us-gov-west-1"):
        raw = load("ecr_image_action_push_success.json") | {"region": region}
        assert parse_event(raw).event.region == region
