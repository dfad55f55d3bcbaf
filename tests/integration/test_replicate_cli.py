"""`steward replicate`: backfill dry run, copy, and native configuration, on the embedded ECR."""

from __future__ import annotations

import json

import boto3
from click.testing import CliRunner

from chalicelib.kernel.aws import reset as reset_clients
from steward_tools.cli import main
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT
from tests.imagefactory import push_built

MiB = 1024 * 1024


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


POLICY = """
replication:
  - name: backfill-eu
    repositories: ["team/*"]
    tags: "1.*"
    destinations: [{region: eu-west-1}]
  - name: prefix-eu
    repositories: ["team/*"]
    triggers: [push]
    destinations: [{region: eu-west-1}]
"""


def test_replicate_backfill_dry_run_then_copy_then_nothing_left(aws, registry, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)
    registry.create_repository("team/app")
    image = build_image([2 * MiB, 1024], seed=60)
    push_built(registry, image, "team/app", tag="1.0.0")
    push_built(registry, build_image([1024], seed=61), "team/app", tag="2.0.0")
    size = sum(len(b) for b in image.blobs.values())

    planned = cli("replicate", "--rule", "backfill-eu", "--dry-run")
    planned_line = f"1 images (1 to copy, 0 already there, 0 failed), {size} bytes to move"
    assert planned_line in planned.output
    eu = boto3.client("ecr", region_name="eu-west-1")
    assert eu.describe_repositories()["repositories"] == []

    copied = cli("replicate", "--rule", "backfill-eu")
    assert f"1 images (1 copied, 0 already there, 0 failed), {size} bytes moved" in copied.output
    found = eu.describe_images(repositoryName="team/app")["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in found] == [(image.digest, ["1.0.0"])]

    again = cli("replicate", "--rule", "backfill-eu")
    assert f"(0 copied, 1 already there, 0 failed), 0 bytes moved, {size} bytes" in again.output
    dry_again = cli("replicate", "--rule", "backfill-eu", "--dry-run", "--json")
    summary = json.loads(dry_again.stdout)  # the JSON alone on stdout
    assert (summary["unchanged"], summary["bytes_planned"]) == (1, 0)
    assert [r["status"] for r in summary["results"]] == ["unchanged"]
    # Not a terminal: plain lines, no carriage returns of a progress bar.
    assert "\r" not in planned.stderr + copied.stderr + dry_again.stderr
    assert "replicate, images 1/1: 2.0 MiB in" in copied.stderr


def test_replicate_native_writes_ecr_configuration_or_says_why(aws, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)
    refused = cli("replicate", "native", "--rule", "backfill-eu")
    assert refused.exit_code == 2
    assert "no tag filter" in refused.output

    written = cli("replicate", "native", "--rule", "prefix-eu")
    assert written.exit_code == 0
    registry = boto3.client("ecr").describe_registry()["replicationConfiguration"]["rules"]
    assert registry == [
        {
            "destinations": [{"region": "eu-west-1", "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": "team/", "filterType": "PREFIX_MATCH"}],
        }
    ]
    assert json.loads(written.output.split("\nrule")[0]) == {"rules": registry}


def test_replicate_native_all_says_which_rules_ecr_could_serve(aws, policy_file) -> None:
    reset_clients()
    policy_file(POLICY)

    report = cli("replicate", "native", "--all")

    assert report.exit_code == 0
    assert "backfill-eu: needs ecr-steward's copy engine" in report.output
    assert "it filters tags; ECR replication has no tag filter" in report.output
    assert "prefix-eu: native ECR replication could serve it" in report.output
    assert boto3.client("ecr").describe_registry()["replicationConfiguration"]["rules"] == []
