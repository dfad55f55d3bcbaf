"""The scan gate end to end: pushes to the embedded ECR, scans that emit `ECR Image Scan`, events
delivered to `on_ecr_event` as EventBridge delivers them, the decision applied to the image's tags,
recorded, and announced as a `steward.gate` event on EventBridge."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from chalice.test import Client
from click.testing import CliRunner

import app
from chalicelib.ecr.gateway import Registry
from chalicelib.gate.records import records
from chalicelib.gate.sweep import sweep
from steward_tools.cli import main
from steward_tools.local import scanning
from steward_tools.local.delivery import EventPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image, build_index
from tests.aws_helpers import scheduled_event
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built
from tests.paths import EVENTS

# The gate route wants a caller whose grant covers the repository: a local static key here.
READER_KEY = "gate-reader-key-0123"
TOKENS = f"""
tokens:
  static_keys:
    - id: reader
      sha256: {hashlib.sha256(READER_KEY.encode()).hexdigest()}
  grants:
    - name: read-team
      static_keys: [reader]
      registries: ["*"]
      repositories: ["*"]
"""

GATE_POLICY = (
    TOKENS
    + """
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0, HIGH: 0}
      promotion_tags: [approved]
      quarantine_removes: [latest]
      scan_timeout_minutes: 30
"""
)

CRITICAL = {
    "name": "CVE-2024-3094",
    "severity": "CRITICAL",
    "package_name": "xz-utils",
    "package_version": "5.6.0",
    "cvss": 10.0,
}


def invoke(event: dict) -> dict:
    return app.on_ecr_event(event, LocalLambdaContext())


def deliver(aws) -> list[dict]:
    results: list[dict] = []
    EventPump(
        boto3.client("sqs"), aws.resources.events_queue_url, lambda e: results.append(invoke(e))
    ).drain()
    return results


def discard_queued(aws) -> None:
    """Drop what the embedded ECR emitted, to deliver hand-made events in a chosen order."""
    boto3.client("sqs").purge_queue(QueueUrl=aws.resources.events_queue_url)


def tags_of(registry: Registry, repository: str, digest: str) -> set[str]:
    return set(registry.describe_image(repository, digest=digest).tags)


def status(repository: str, digest: str) -> Any:

    with Client(app.app) as client:
        response = client.http.get(
            f"/v1/images/{quote(repository, safe='')}/{digest}/gate",
            headers={"Authorization": f"Bearer {READER_KEY}"},
        )
    if response.status_code == 404:
        return None
    assert response.status_code == 200
    return json.loads(response.body)


@pytest.fixture
def gate_events(aws):
    """A rule and queue catching `steward.gate` events, as an operator would route them."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="gate-decisions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="gate-decisions", EventPattern=json.dumps({"source": ["steward.gate"]}))
    events.put_targets(Rule="gate-decisions", Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict]:
        found: list[dict] = []
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    return received


def scan_event(repository: str, digest: str, counts: dict, event_id: str) -> dict:
    event = json.loads((EVENTS / "ecr_image_scan_basic_complete.json").read_text())
    event.update(id=event_id, account=ACCOUNT, region=REGION)
    event["resources"] = [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"]
    event["detail"].update(
        {"repository-name": repository, "image-digest": digest, "finding-severity-counts": counts}
    )
    return event


def inspector_event(repository: str, digest: str, counts: dict, event_id: str) -> dict:
    event = json.loads((EVENTS / "inspector2_scan_ecr_initial_scan_complete.json").read_text())
    arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"
    event.update(id=event_id, account=ACCOUNT, region=REGION, resources=[arn])
    event["detail"].update(
        {"repository-name": arn, "image-digest": digest, "finding-severity-counts": counts}
    )
    return event


def push_event(repository: str, digest: str, tag: str | None, event_id: str) -> dict:
    event = json.loads((EVENTS / "ecr_image_action_push_success.json").read_text())
    event.update(id=event_id, region=REGION, account=ACCOUNT)
    event["detail"].update({"repository-name": repository, "image-digest": digest})
    if tag is None:
        event["detail"].pop("image-tag", None)
    else:
        event["detail"]["image-tag"] = tag
    return event


def test_clean_image_is_promoted_and_recorded(aws, registry, policy_file, gate_events) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=1)
    push_built(registry, image, "team/app", tag="1.0.0")

    deliver(aws)

    assert tags_of(registry, "team/app", image.digest) == {"1.0.0", "approved"}
    record = status("team/app", image.digest)
    assert record is not None and record["status"] == "pass"
    assert record["scan"]["source"] == "basic"
    assert record["policy_version"].startswith("gate:sha256:")
    [announced] = gate_events()
    assert announced["source"] == "steward.gate"
    assert announced["detail-type"] == "Steward Gate Decision"
    assert announced["detail"]["decision"] == "pass"
    assert status("team/app", "sha256:" + "0" * 64) is None


def test_critical_finding_is_quarantined_and_announced(
    aws, registry, policy_file, gate_events
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=2)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="latest")

    deliver(aws)

    quarantine_tag = f"quarantined-{image.digest.split(':')[1][:12]}"
    # `latest` is gone, the quarantine tag is on, and the image itself stays for forensics.
    assert tags_of(registry, "team/app", image.digest) == {quarantine_tag}
    [announced] = gate_events()
    detail = announced["detail"]
    assert detail["decision"] == "fail"
    assert detail["finding-severity-counts"] == {"CRITICAL": 1}
    [finding] = detail["failing-findings"]
    assert finding["id"] == "CVE-2024-3094" and finding["package"] == "xz-utils"
    assert "CRITICAL: 1 findings, at most 0 allowed" in detail["reasons"]
    removed = {t["tag"] for t in detail["tags"] if t["action"] == "remove"}
    assert removed == {"latest"}


ALLOWLIST_POLICY = (
    TOKENS
    + """
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {{CRITICAL: 0}}
      allowlist:
        - cve: CVE-2024-3094
          package: xz-utils
          reason: not reachable in this image
          expires: {expires}
"""
)


def test_allowlisted_cve_is_promoted(aws, registry, policy_file, gate_events) -> None:
    policy_file(ALLOWLIST_POLICY.format(expires="2999-12-31"))
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=3)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="1.0.0")

    deliver(aws)

    assert "approved" in tags_of(registry, "team/app", image.digest)
    record = status("team/app", image.digest)
    assert record["status"] == "pass"
    assert any(
        "CVE-2024-3094 (xz-utils) allowlisted until 2999-12-31: not reachable" in r
        for r in record["decision"]["reasons"]
    )


def test_expired_allowlist_entry_quarantines_and_says_so(
    aws, registry, policy_file, gate_events
) -> None:
    policy_file(ALLOWLIST_POLICY.format(expires="2020-01-31"))
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=4)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="latest")

    deliver(aws)

    record = status("team/app", image.digest)
    assert record["status"] == "fail"
    assert (
        "CVE-2024-3094: allowlist entry expired on 2020-01-31, counted"
        in (record["decision"]["reasons"])
    )
    assert "latest" not in tags_of(registry, "team/app", image.digest)
    [announced] = gate_events()
    assert [f["id"] for f in announced["detail"]["failing-findings"]] == ["CVE-2024-3094"]


def test_index_waits_for_every_child_and_fails_as_a_whole(
    aws, registry, policy_file, gate_events
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/multi")  # no scan on push: results come as we send them
    amd64 = build_image(seed=5, architecture="amd64")
    arm64 = build_image(seed=6, architecture="arm64")
    index = build_index([amd64, arm64])
    push_built(registry, index, "team/multi", tag="latest")
    discard_queued(aws)

    pushed = invoke(push_event("team/multi", index.digest, "latest", "push-index"))
    assert pushed["gate"]["status"] == "pending"
    invoke(scan_event("team/multi", amd64.digest, {}, "scan-amd64"))
    assert status("team/multi", index.digest)["status"] == "pending"
    assert "approved" not in tags_of(registry, "team/multi", index.digest)

    invoke(scan_event("team/multi", arm64.digest, {"CRITICAL": 2}, "scan-arm64"))

    record = status("team/multi", index.digest)
    assert record["status"] == "fail"
    verdicts = {c["platform"]: c["verdict"] for c in record["decision"]["children"]}
    assert verdicts == {"linux/amd64": "pass", "linux/arm64": "fail"}
    assert "index: 1 of 2 children failed" in record["decision"]["reasons"]
    quarantine_tag = f"quarantined-{index.digest.split(':')[1][:12]}"
    assert tags_of(registry, "team/multi", index.digest) == {quarantine_tag}
    # Children carry no gate tags: they are pulled through their index.
    assert tags_of(registry, "team/multi", amd64.digest) == set()
    assert [e["detail"]["image-digest"] for e in gate_events()] == [index.digest]


def test_clean_index_is_promoted_when_children_scan_before_its_push(
    aws, registry, policy_file
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/multi", scan_on_push=True)
    children = [
        build_image(seed=7, architecture="amd64"),
        build_image(seed=8, architecture="arm64"),
    ]
    index = build_index(children)
    push_built(registry, index, "team/multi", tag="2.0.0")

    deliver(aws)  # child pushes, child scans, then the index push, as ECR emits them

    assert tags_of(registry, "team/multi", index.digest) == {"2.0.0", "approved"}
    assert status("team/multi", index.digest)["status"] == "pass"


def test_no_scan_result_fails_closed_after_the_timeout(
    aws, registry, policy_file, gate_events
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=9)
    push_built(registry, image, "team/app", tag="latest")
    discard_queued(aws)  # the scan result never arrives

    invoke(push_event("team/app", image.digest, "latest", "push-1"))
    pushed_at = datetime.now(UTC)
    assert sweep(pushed_at + timedelta(minutes=29))["fail"] == 0
    assert status("team/app", image.digest)["status"] == "pending"

    swept = sweep(pushed_at + timedelta(minutes=31))

    assert swept["fail"] == 1
    record = status("team/app", image.digest)
    assert record["status"] == "fail"
    assert record["decision"]["reasons"] == ["no scan: no scan result within 30 minutes"]
    assert "latest" not in tags_of(registry, "team/app", image.digest)
    assert [e["detail"]["decision"] for e in gate_events()] == ["fail"]


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_scheduled_sweep_fails_closed_an_image_past_its_timeout(
    aws, registry, policy_file, gate_events
) -> None:
    """The scheduled function reads the real clock, so the record is made 31 minutes old."""
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=19)
    push_built(registry, image, "team/app", tag="latest")
    discard_queued(aws)  # the scan result never arrives
    invoke(push_event("team/app", image.digest, "latest", "push-1"))
    store = records()
    record = store.get("team/app", image.digest)
    assert record is not None and record.pending_since is not None
    record.pending_since -= timedelta(minutes=31)
    if record.decision is not None and record.decision.revisit_at is not None:
        record.decision.revisit_at -= timedelta(minutes=31)  # the timeout, due now
    store.put(record)

    swept = app.gate_sweep(scheduled_event("gate_sweep", _iso_now()), LocalLambdaContext())

    assert swept["fail"] == 1, swept
    assert status("team/app", image.digest)["status"] == "fail"
    assert "latest" not in tags_of(registry, "team/app", image.digest)
    assert [e["detail"]["decision"] for e in gate_events()] == ["fail"]


def test_never_scanned_image_gets_start_image_scan(aws, registry, policy_file) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=False)
    image = build_image(seed=10)
    push_built(registry, image, "team/app", tag="1.0.0")

    results = deliver(aws)  # the push starts a scan; its result arrives as an event

    assert any(r.get("gate", {}).get("scan") == "IN_PROGRESS" for r in results)
    assert "approved" in tags_of(registry, "team/app", image.digest)


def test_scan_on_push_turned_on_after_the_push_still_scans(aws, registry, policy_file) -> None:
    """The push event can arrive after someone turned scan-on-push on: the image was pushed
    without a scan, so the gate must still ask for one instead of waiting for the timeout."""
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=False)
    image = build_image(seed=11)
    push_built(registry, image, "team/app", tag="1.0.0")
    registry.put_scan_on_push("team/app", True)

    results = deliver(aws)

    assert any(r.get("gate", {}).get("scan") == "IN_PROGRESS" for r in results)
    assert "approved" in tags_of(registry, "team/app", image.digest)


def test_inspector_result_is_handled_like_a_basic_one(aws, registry, policy_file) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app")
    bad, good = build_image(seed=11), build_image(seed=12)
    push_built(registry, bad, "team/app", tag="latest")
    push_built(registry, good, "team/app", tag="1.0.0")
    discard_queued(aws)

    invoke(inspector_event("team/app", bad.digest, {"HIGH": 3, "TOTAL": 3}, "insp-1"))
    invoke(inspector_event("team/app", good.digest, {"LOW": 2, "TOTAL": 2}, "insp-2"))

    assert status("team/app", bad.digest)["status"] == "fail"
    assert status("team/app", bad.digest)["scan"]["source"] == "enhanced"
    assert "latest" not in tags_of(registry, "team/app", bad.digest)
    assert status("team/app", good.digest)["status"] == "pass"
    assert "approved" in tags_of(registry, "team/app", good.digest)


def test_order_and_repetition_end_in_the_same_state(
    aws, registry, policy_file, gate_events
) -> None:
    policy_file(GATE_POLICY)
    image = build_image(seed=13)
    for repository in ("team/in-order", "team/scan-first"):
        registry.create_repository(repository)
        push_built(registry, image, repository, tag="latest")
    discard_queued(aws)

    invoke(push_event("team/in-order", image.digest, "latest", "p1"))
    invoke(scan_event("team/in-order", image.digest, {"HIGH": 1}, "s1"))
    invoke(scan_event("team/scan-first", image.digest, {"HIGH": 1}, "s2"))
    invoke(push_event("team/scan-first", image.digest, "latest", "p2"))
    # The same events again: duplicates by id, and a redelivery under a new id.
    assert invoke(scan_event("team/in-order", image.digest, {"HIGH": 1}, "s1"))["duplicate"]
    invoke(scan_event("team/in-order", image.digest, {"HIGH": 1}, "s1-again"))
    invoke(push_event("team/scan-first", image.digest, "latest", "p2-again"))

    states = [
        (status(r, image.digest)["status"], tags_of(registry, r, image.digest))
        for r in ("team/in-order", "team/scan-first")
    ]
    quarantine_tag = f"quarantined-{image.digest.split(':')[1][:12]}"
    assert states == [("fail", {quarantine_tag})] * 2
    # Announced once per repository: repeats converge without a second announcement.
    assert [e["detail"]["repository-name"] for e in gate_events()] == [
        "team/in-order",
        "team/scan-first",
    ]


def test_later_clean_scan_lifts_the_quarantine(aws, registry, policy_file, gate_events) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=14)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="1.0.0")
    deliver(aws)
    quarantine_tag = f"quarantined-{image.digest.split(':')[1][:12]}"
    assert tags_of(registry, "team/app", image.digest) == {"1.0.0", quarantine_tag}

    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [])
    scanning.rescan(ACCOUNT, REGION, "team/app", image.digest)
    deliver(aws)

    assert tags_of(registry, "team/app", image.digest) == {"1.0.0", "approved"}
    assert status("team/app", image.digest)["status"] == "pass"
    assert [e["detail"]["decision"] for e in gate_events()] == ["fail", "pass"]


def test_allowlist_change_is_picked_up_by_the_sweep(aws, registry, policy_file) -> None:
    policy_file(GATE_POLICY.replace("{CRITICAL: 0, HIGH: 0}", "{CRITICAL: 0}"))
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=15)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="1.0.0")
    deliver(aws)
    assert status("team/app", image.digest)["status"] == "fail"

    policy_file(ALLOWLIST_POLICY.format(expires="2999-12-31"))
    # Through the scheduled function, as EventBridge Scheduler invokes it.
    swept = app.gate_sweep(scheduled_event("gate_sweep", _iso_now()), LocalLambdaContext())

    assert swept["pass"] == 1
    assert "approved" in tags_of(registry, "team/app", image.digest)


def test_exempt_and_unmatched_repositories_are_left_alone(aws, registry, policy_file) -> None:
    policy_file(GATE_POLICY + '  exempt: ["team/tools"]\n')
    image = build_image(seed=16)
    for repository in ("team/tools", "other/app"):
        registry.create_repository(repository, scan_on_push=True)
        scanning.set_findings(ACCOUNT, REGION, repository, image.digest, [CRITICAL])
        push_built(registry, image, repository, tag="latest")

    deliver(aws)

    for repository in ("team/tools", "other/app"):
        assert tags_of(registry, repository, image.digest) == {"latest"}
        assert status(repository, image.digest) is None


def test_steward_gate_status(aws, registry, policy_file) -> None:

    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=17)
    scanning.set_findings(ACCOUNT, REGION, "team/app", image.digest, [CRITICAL])
    push_built(registry, image, "team/app", tag="1.0.0")
    deliver(aws)

    shown = CliRunner().invoke(main, ["gate", "status", f"team/app@{image.digest}"])

    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"team/app@{image.digest}: fail\n")
    assert "  CRITICAL: 1 findings, at most 0 allowed\n" in shown.output
    missing = CliRunner().invoke(main, ["gate", "status", "team/app@sha256:" + "0" * 64])
    assert missing.exit_code == 1
    assert "no gate record" in missing.output


def test_a_pushed_promotion_tag_comes_off_an_undecided_image(
    aws, registry, policy_file, gate_events
) -> None:
    """Issue 12, finding 3: a caller with push rights pushes `:approved`; it must not stay on
    the image while the scan is pending."""
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    image = build_image(seed=31)
    push_built(registry, image, "team/app", tag="1.0.0")
    manifest = registry.get_manifest("team/app", digest=image.digest)
    registry.put_manifest("team/app", manifest, "approved")
    discard_queued(aws)  # the scan result has not arrived yet

    invoke(push_event("team/app", image.digest, "1.0.0", "push-own-1"))
    invoke(push_event("team/app", image.digest, "approved", "push-own-2"))

    assert tags_of(registry, "team/app", image.digest) == {"1.0.0"}
    assert status("team/app", image.digest)["status"] == "pending"
    [announced] = gate_events()
    assert announced["detail"]["decision"] == "pending"
    [revoked] = announced["detail"]["tags"]
    assert revoked["tag"] == "approved" and revoked["action"] == "remove"
    assert revoked["outcome"] == "applied"
    assert "not put by the gate" in revoked["reason"]

    # Once the scan passes, the gate puts the tag itself.
    invoke(scan_event("team/app", image.digest, {}, "scan-own-1"))
    assert tags_of(registry, "team/app", image.digest) == {"1.0.0", "approved"}
