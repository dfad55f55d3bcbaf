"""The sweep's reconciler: aliases, `latest`, promotion and quarantine tags repaired from the
registry itself, so a lost, raced or dead-lettered event is repaired within one sweep; a dry-run
sweep lists the repairs and changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

import app
from chalicelib.ecr import registries
from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.gate.records import records
from chalicelib.kernel.jobqueue import queue_url
from chalicelib.kernel.settings import get_settings
from chalicelib.sweep import jobs as sweep
from steward_tools.local.jobs import sqs_event
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built
from tests.paths import EVENTS

POLICY = """
tagging:
  - repositories: ["team/*"]
    semver_aliases: true
    latest: true
gate:
  rules:
    - repositories: ["team/*"]
      max_counts: {CRITICAL: 0}
      promotion_tags: [approved]
      quarantine_removes: [latest]
"""
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def tags(registry: Registry, repository: str = "team/app") -> dict[str, set[str]]:
    return {i.digest: set(i.tags) for i in registry.iter_images(repository)}


def retag(registry: Registry, tag: str, digest: str) -> None:
    registry.put_manifest("team/app", registry.get_manifest("team/app", digest=digest), tag)


def run_job(dry_run: bool) -> dict:
    registry = registries.registry(ACCOUNT, REGION)
    job = sweep.RepositoryJob(
        sweep_id="s",
        account=ACCOUNT,
        region=REGION,
        repository=registry.describe_repository("team/app"),
        started_at=NOW,
        dry_run=dry_run,
    )
    return sweep.run_repository_job(job, NOW)


def scan(digest: str, counts: dict, event_id: str) -> dict:
    event = json.loads((EVENTS / "ecr_image_scan_basic_complete.json").read_text())
    event.update(id=event_id, account=ACCOUNT, region=REGION)
    event["detail"].update(
        {"repository-name": "team/app", "image-digest": digest, "finding-severity-counts": counts}
    )
    return app.on_ecr_event(event, LocalLambdaContext())


@pytest.fixture
def releases(aws, registry, policy_file) -> dict[str, str]:
    """1.4.0..1.4.3 pushed, with the aliases left where a raced event would leave them."""
    policy_file(POLICY)
    registry.create_repository("team/app")
    digests = {
        f"1.4.{n}": push_built(registry, build_image([64], seed=60 + n), "team/app", f"1.4.{n}")
        for n in range(4)
    }
    for alias in ("1.4", "1", "latest"):
        retag(registry, alias, digests["1.4.1"])  # behind: 1.4.3 is the highest
    boto3.client("sqs").purge_queue(QueueUrl=aws.resources.events_queue_url)
    return digests


def test_dry_run_sweep_lists_the_alias_repairs_and_changes_nothing(releases, registry) -> None:
    before = tags(registry)

    outcome = run_job(dry_run=True)["reconcile"]

    assert outcome["dry_run"] is True
    planned = {a["tag"]: a for a in outcome["aliases"]}
    assert set(planned) == {"1.4", "1", "latest"}
    assert all(a["outcome"] == "planned" for a in planned.values())
    assert "1.4 → 1.4.3: highest 1.4.x release" in planned["1.4"]["reason"]
    assert tags(registry) == before
    assert outcome.get("gate", []) == []  # nothing decided yet


def test_sweep_repairs_aliases_a_lost_event_left_behind(releases, registry) -> None:
    outcome = run_job(dry_run=False)["reconcile"]

    assert {a["tag"] for a in outcome["aliases"] if a["outcome"] == "applied"} == {
        "1.4",
        "1",
        "latest",
    }
    assert tags(registry)[releases["1.4.3"]] == {"1.4.3", "1.4", "1", "latest"}
    assert run_job(dry_run=False)["reconcile"].get("aliases") == []  # converged: nothing to do


def test_sweep_repairs_a_removed_promotion_tag(releases, registry) -> None:
    top = releases["1.4.3"]
    assert scan(top, {}, "scan-top")["gate"]["status"] == "pass"
    assert "approved" in tags(registry)[top]
    registry.delete_images("team/app", [{"imageDigest": top, "imageTag": "approved"}])

    planned = run_job(dry_run=True)["reconcile"]["gate"]
    assert planned == [{"digest": top, "status": "pass", "drift": ["put approved"]}]
    assert "approved" not in tags(registry)[top]

    run_job(dry_run=False)
    assert "approved" in tags(registry)[top]
    record = records().get("team/app", top)
    assert record is not None and record.applied


def test_sweep_never_moves_an_alias_onto_a_quarantined_image(releases, registry) -> None:
    top = releases["1.4.3"]
    retag(registry, "latest", top)
    assert scan(top, {"CRITICAL": 2}, "scan-bad")["gate"]["status"] == "fail"
    assert "latest" not in tags(registry)[top]  # the quarantine removed it

    outcome = run_job(dry_run=False)["reconcile"]

    assert "latest" not in tags(registry)[top]
    assert not any(a["tag"] == "latest" and a["outcome"] == "applied" for a in outcome["aliases"])


def test_a_dry_run_sweep_sends_dry_run_jobs(releases) -> None:
    summary = sweep.start_sweep(account=ACCOUNT, region=REGION, now=NOW, dry_run=True)
    assert summary["dry_run"] is True and summary["started"] is True
    url = queue_url(get_settings().sweep_queue)
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=url).get("Messages", [])
    page = sweep.PageJob.model_validate_json(message["Body"])
    assert page.dry_run
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    listed = sweep.run_page_job(page, message["MessageId"], NOW)
    assert listed["queued"] == 1
    [message] = sqs.receive_message(QueueUrl=url).get("Messages", [])
    job = sweep.RepositoryJob.model_validate_json(message["Body"])
    assert job.dry_run and job.repository.name == "team/app"


def test_the_repository_job_function_repairs_aliases_and_a_decision_left_unapplied(
    releases, registry, monkeypatch
) -> None:
    top = releases["1.4.3"]
    original = Registry.put_manifest

    def denied(self, repository, manifest, tag=None):
        raise RegistryError("AccessDeniedException", "not allowed", "put_image")

    monkeypatch.setattr(Registry, "put_manifest", denied)
    scan(top, {}, "scan-denied")  # pass, but `approved` could not be put
    monkeypatch.setattr(Registry, "put_manifest", original)
    record = records().get("team/app", top)
    assert record is not None and record.status == "pass" and not record.applied
    job = sweep.RepositoryJob(
        sweep_id="s",
        account=ACCOUNT,
        region=REGION,
        repository=registry.describe_repository("team/app"),
        started_at=NOW,
    )
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": job.model_dump_json()}
    event = sqs_event([message], f"arn:aws:sqs:{REGION}:{ACCOUNT}:steward-repository-jobs", REGION)

    # Through the Lambda entry point: the function's IAM grants are checked against this.
    response = app.on_repository_job(event, LocalLambdaContext())

    assert response == {"batchItemFailures": []}
    assert tags(registry)[top] == {"1.4.3", "1.4", "1", "latest", "approved"}
    record = records().get("team/app", top)
    assert record is not None and record.applied
