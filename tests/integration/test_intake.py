"""End to end: a push to the embedded ECR emits the event ECR emits, EventBridge routes it, and
`on_ecr_event` (the Lambda entry point) tags the image. Duplicates change nothing; malformed
events land in the dead-letter queue with their reason; transient errors raise for a retry."""

from __future__ import annotations

import json

import boto3
import pytest
from chalice.test import Client

import app
from chalicelib.ecr import registries
from chalicelib.ecr.errors import Throttled
from chalicelib.ecr.gateway import Registry
from steward_tools.local.delivery import EventPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built
from tests.paths import EVENTS


def invoke(event: dict) -> dict:
    return app.on_ecr_event(event, LocalLambdaContext())


def deliver(aws) -> list[dict]:
    """Run EventBridge's delivery to the function until the target queue is empty."""
    results: list[dict] = []

    def call(event: dict) -> None:
        results.append(invoke(event))

    EventPump(boto3.client("sqs"), aws.resources.events_queue_url, call).drain()
    return results


def tags_by_digest(registry: Registry, repository: str) -> dict[str, set[str]]:
    return {image.digest: set(image.tags) for image in registry.iter_images(repository)}


def dead_letters(aws) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=aws.resources.dead_letter_queue_url, MaxNumberOfMessages=10
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def push_event(repository: str, digest: str, tag: str | None, event_id: str) -> dict:
    event = json.loads((EVENTS / "ecr_image_action_push_success.json").read_text())
    event.update(id=event_id, region=REGION, account=ACCOUNT)
    event["detail"].update({"repository-name": repository, "image-digest": digest})
    if tag is None:
        event["detail"].pop("image-tag")
    else:
        event["detail"]["image-tag"] = tag
    return event


def test_push_of_a_release_gets_its_aliases(aws, registry, policy_file) -> None:
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[512, 1024], seed=1)
    push_built(registry, image, "team/app", tag="1.2.3")

    results = deliver(aws)

    assert any(r.get("status") == "handled" for r in results)
    tags = tags_by_digest(registry, "team/app")
    assert tags[image.manifest.digest] >= {"1.2.3", "1.2", "1", "latest"}
    # The retag never changed the digest: there is still exactly one image.
    assert list(tags) == [image.manifest.digest]


def test_aliases_never_move_backwards(aws, registry, policy_file) -> None:
    registry.create_repository("team/app")
    newer = build_image(layer_sizes=[256], seed=2)
    older = build_image(layer_sizes=[256], seed=3)
    push_built(registry, newer, "team/app", tag="1.4.5")
    deliver(aws)
    push_built(registry, older, "team/app", tag="1.4.2")
    deliver(aws)

    tags = tags_by_digest(registry, "team/app")
    assert {"1.4", "1", "latest"} <= tags[newer.manifest.digest]
    assert tags[older.manifest.digest] == {"1.4.2"}


def test_duplicate_event_changes_nothing(aws, registry, policy_file) -> None:
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[256], seed=4)
    push_built(registry, image, "team/app", tag="2.0.0")
    event = push_event(
        "team/app", image.manifest.digest, "2.0.0", "11111111-2222-3333-4444-555555555555"
    )

    first = invoke(event)
    gateway = registries.registry(ACCOUNT, REGION)
    calls_before = dict(gateway.calls)
    second = invoke(event)

    assert first["status"] == "handled"
    assert second.get("duplicate") is True
    assert dict(gateway.calls) == calls_before  # not even a read, let alone a put-image
    assert {"2.0", "2", "latest"} <= tags_by_digest(registry, "team/app")[image.manifest.digest]


def test_malformed_event_is_dead_lettered_and_acknowledged(aws, policy_file, capsys) -> None:
    event = push_event("team/app", "sha256:" + "a" * 64, "1.0.0", "bad-event-1")
    del event["detail"]["repository-name"]

    result = invoke(event)  # returns normally: no retry storm

    assert result["status"] == "rejected"
    assert "detail.repository-name: Field required" in result["reason"]
    [letter] = dead_letters(aws)
    assert letter["reason"] == result["reason"]
    assert letter["event"] == event
    out = capsys.readouterr().out
    assert '"EventsRejected"' in out  # the EMF metric line
    assert "event rejected" in out


def test_payload_chalice_cannot_parse_is_still_dead_lettered(aws, policy_file) -> None:
    result = invoke({"hello": "world"})
    assert result["status"] == "rejected"
    assert dead_letters(aws)[0]["event"] == {"hello": "world"}


@pytest.mark.parametrize(
    "sample",
    [
        "ecr_image_scan_basic_complete.json",
        "inspector2_scan_ecr_initial_scan_complete.json",
        "ecr_replication_action_success.json",
        "ecr_referrer_action_push.json",
        "ecr_pull_through_cache_action.json",
        "ecr_scan_resource_change.json",
        "ecr_image_action_delete_success.json",
        "ecr_image_action_push_failed.json",
        "ecr_image_action_update_storage_class.json",
        "inspector2_finding.json",
        "cloudtrail_ecr_api_call.json",
    ],
)
def test_events_without_an_action_are_acknowledged(aws, policy_file, sample: str) -> None:
    event = json.loads((EVENTS / sample).read_text())
    result = invoke(event)
    assert result["status"] == "ignored"
    assert not dead_letters(aws)


def test_push_to_repository_without_rules_is_acknowledged(aws, registry, policy_file) -> None:
    policy_file("tagging:\n  - repositories: ['team/*']\n    latest: true\n")
    registry.create_repository("other/app")
    image = build_image(layer_sizes=[128], seed=5)
    push_built(registry, image, "other/app", tag="1.0.0")

    [result] = deliver(aws)

    assert result["status"] == "ignored"
    assert tags_by_digest(registry, "other/app")[image.manifest.digest] == {"1.0.0"}


def test_transient_error_raises_for_retry_and_retry_succeeds(
    aws, registry, policy_file, monkeypatch
) -> None:
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[128], seed=6)
    push_built(registry, image, "team/app", tag="3.1.4")
    event = push_event(
        "team/app", image.manifest.digest, "3.1.4", "99999999-2222-3333-4444-555555555555"
    )

    original = Registry._call

    def throttled(self, operation, **params):
        if operation == "put_image":
            raise Throttled("ThrottlingException", "Rate exceeded", operation)
        return original(self, operation, **params)

    monkeypatch.setattr(Registry, "_call", throttled)
    with pytest.raises(Throttled):
        invoke(event)
    monkeypatch.setattr(Registry, "_call", original)

    # Lambda's retry of the same event is not mistaken for a duplicate.
    assert invoke(event)["status"] == "handled"
    assert "3.1" in tags_by_digest(registry, "team/app")[image.manifest.digest]


def test_logs_carry_event_repository_and_digest(aws, registry, policy_file, capsys) -> None:
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[128], seed=7)
    push_built(registry, image, "team/app", tag="0.1.0")
    capsys.readouterr()

    deliver(aws)

    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    logs = [line for line in lines if "message" in line]
    assert logs
    for line in logs:
        assert line["repository"] == "team/app"
        assert line["digest"] == image.manifest.digest
        assert line["event_id"]


def test_dry_run_plans_without_tagging(aws, registry, policy_file) -> None:
    policy_file("dry_run: true\ntagging:\n  - repositories: ['*']\n    semver_aliases: true\n")
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[128], seed=8)
    push_built(registry, image, "team/app", tag="5.0.0")

    [result] = deliver(aws)

    assert result["status"] == "handled"
    assert tags_by_digest(registry, "team/app")[image.manifest.digest] == {"5.0.0"}


def test_invalid_policy_fails_the_function_and_health(aws, policy_file) -> None:

    policy_file("tagging:\n  - repositories: ['*']\n    semver_aliasez: true\n")
    with Client(app.app) as client:
        response = client.http.get("/health")
    assert response.status_code == 503
    # Unauthenticated: the status only, never the policy's path or its problems' text.
    assert "semver_aliasez" not in response.body.decode()
    assert "policy validate" in response.json_body["reason"]
