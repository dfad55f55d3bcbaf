"""Mirror rules end to end against the CNCF distribution registry: `steward mirror plan|run`,
and the scheduled `mirror_sync` fanning out copy jobs that `on_copy_job` runs."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

import app
from chalicelib.kernel.aws import reset as reset_clients
from chalicelib.oci.referrers import cosign_tag
from chalicelib.registry_client.transport import Endpoint, RegistryClient
from steward_tools.cli import main
from steward_tools.local.jobs import SqsJobPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image, build_index, build_signature
from tests.aws_helpers import scheduled_event
from tests.distribution import available, distribution
from tests.e2e.test_mirror_registry import push

MiB = 1024 * 1024
pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(autouse=True)
def _fresh_clients(aws):
    reset_clients()
    yield
    reset_clients()


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def tags_in(repository: str) -> dict[str, str]:
    details = boto3.client("ecr").describe_images(repositoryName=repository)["imageDetails"]
    return {t: d["imageDigest"] for d in details for t in d.get("imageTags", [])}


def upstream_with_images(url: str):
    client = RegistryClient(Endpoint(url=url))
    index = build_index(
        [build_image([2 * MiB], seed=41), build_image([1024], seed=42, architecture="arm64")]
    )
    older = build_image([1024], seed=43)
    push(client, "upstream/app", index, "1.1.0")
    push(client, "upstream/app", build_signature(index, seed=44), cosign_tag(index.digest))
    push(client, "upstream/app", older, "1.0.0")
    push(client, "upstream/app", build_image([512], seed=45), "edge")
    return index, older


def policy(url: str) -> str:
    return (
        "mirror:\n  - name: up\n"
        f"    upstream: {url}\n"
        "    repositories: [upstream/app]\n"
        '    tag_semver: ">=1.0.0"\n'
        '    destination: "mirror/{name}"\n'
        "    platforms: [linux/amd64, linux/arm64]\n"
    )


def test_steward_mirror_plan_then_run_then_nothing_left(aws, policy_file, tmp_path: Path) -> None:
    with distribution(tmp_path) as url:
        index, older = upstream_with_images(url)
        policy_file(policy(url))

        planned = cli("mirror", "plan", "--rule", "up", "--json")
        items = json.loads(planned.output)["items"]
        assert {(i["digest"], tuple(i["tags"]), i["action"]) for i in items} == {
            (index.digest, ("1.1.0",), "copy"),
            (older.digest, ("1.0.0",), "copy"),
        }

        dry = cli("mirror", "run", "--rule", "up", "--dry-run")
        assert "(dry run): 2 images" in dry.output
        assert boto3.client("ecr").describe_repositories()["repositories"] == []

        ran = cli("mirror", "run", "--rule", "up")
        assert "rule up: 2 images" in ran.output and "0 failed" in ran.output
        found = tags_in("mirror/app")
        assert found["1.1.0"] == index.digest and found["1.0.0"] == older.digest
        assert cosign_tag(index.digest) in found and "edge" not in found

        again = cli("mirror", "run", "--rule", "up")
        assert "0 blobs, 0 bytes moved" in again.output


def test_mirror_sync_fans_out_jobs_that_on_copy_job_runs(aws, policy_file, tmp_path: Path) -> None:
    with distribution(tmp_path) as url:
        index, older = upstream_with_images(url)
        policy_file(policy(url))

        started = app.mirror_sync(
            scheduled_event("mirror_sync", "2026-11-27T00:00:00Z"), LocalLambdaContext()
        )
        assert started == {"jobs": {"up": 2}, "failed": {}}

        responses: list[dict] = []

        def invoke(event: dict) -> dict:
            response = app.on_copy_job(event, LocalLambdaContext())
            responses.append(response)
            return response

        SqsJobPump(boto3.client("sqs"), aws.resources.replication_queue_url, invoke).drain(20)
        assert all(r == {"batchItemFailures": []} for r in responses)
        found = tags_in("mirror/app")
        assert found["1.1.0"] == index.digest and found["1.0.0"] == older.digest
