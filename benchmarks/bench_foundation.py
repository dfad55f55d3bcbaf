"""Foundation benchmark: cold import, ECR calls per retagged tag, events per second.

    .venv/bin/python benchmarks/bench_foundation.py        (or: make bench)

Everything runs against the embedded AWS backend on loopback; figures are printed, not asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT, REGION = "123456789012", "us-east-1"
RUNS = 15


def _time_process(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - started


def cold_import() -> None:
    """Whole-process time of `import app` beside a bare `import boto3`, interleaved."""
    for code in ("import app", "import boto3"):  # warm the bytecode and page caches
        _time_process(code)
    samples: dict[str, list[float]] = {"app": [], "boto3": [], "handler": []}
    handler_chain = (
        "import app; import chalicelib.intake, chalicelib.policy, chalicelib.registry;"
        " import aws_lambda_powertools.utilities.idempotency"
    )
    for _ in range(RUNS):
        samples["app"].append(_time_process("import app"))
        samples["boto3"].append(_time_process("import boto3"))
        samples["handler"].append(_time_process(handler_chain))
    app_s, boto_s = statistics.median(samples["app"]), statistics.median(samples["boto3"])
    handler_s = statistics.median(samples["handler"])
    print(f"cold import (whole process, median of {RUNS})")
    print(f"  import boto3                  {boto_s * 1000:7.1f} ms")
    print(f"  import app                    {app_s * 1000:7.1f} ms   ratio {app_s / boto_s:.2f}x")
    first_call = handler_s * 1000
    print(f"  + on_ecr_event's first call   {first_call:7.1f} ms   (intake, policy, idempotency)")


def _environment(endpoint: str, policy: Path) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "STEWARD_POLICY": str(policy),
        }
    )


def _push(registry, repository: str, tag: str, seed: int) -> str:  # type: ignore[no-untyped-def]
    from steward_tools.samples import build_image

    image = build_image([1024], seed=seed)
    for data in image.blobs.values():
        registry.upload_bytes(repository, data)
    registry.put_manifest(repository, image.manifest, tag)
    return image.digest


def _push_event(repository: str, digest: str, tag: str) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-11-27T00:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": "PUSH",
            "image-tag": tag,
        },
    }


def in_process() -> None:
    import boto3

    from steward_tools.local.server import EmbeddedAWS, bootstrap

    with EmbeddedAWS(port=0) as aws, tempfile.TemporaryDirectory() as scratch:
        policy = Path(scratch) / "policy.yaml"
        policy.write_text(
            "tagging:\n  - repositories: ['*']\n    semver_aliases: true\n    latest: true\n"
        )
        _environment(aws.endpoint_url, policy)
        bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        calls_per_tag()
        events_per_second()


def calls_per_tag() -> None:
    from datetime import UTC, datetime

    from chalicelib.policy import current_policy
    from chalicelib.registry import Registry
    from chalicelib.tagging import tag_pushed_image

    registry = Registry(region=REGION)
    registry.create_repository("bench/calls")
    digest = _push(registry, "bench/calls", "1.2.3", seed=1)
    rules = current_policy().policy.tagging
    registry.calls.clear()
    result = tag_pushed_image(
        registry, rules, "bench/calls", digest, "1.2.3", now=datetime.now(UTC)
    )
    applied = len(result.tags_with("applied"))
    writes = registry.calls["batch_get_image"] + registry.calls["put_image"]
    reads = registry.calls["describe_repositories"] + registry.calls["describe_images"]
    print("ECR calls per retagged tag (push of 1.2.3 → 1.2, 1, latest)")
    print(f"  tags applied                  {applied}")
    print(f"  batch-get + put per tag       {writes / applied:.2f}   (target 2)")
    print(f"  plus reads per event          {reads}   (describe-repositories, describe-images)")
    registry.calls.clear()
    tag_pushed_image(registry, rules, "bench/calls", digest, "1.2.3", now=datetime.now(UTC))
    print(f"  same push again: writes       {registry.calls['put_image']}")


def events_per_second() -> None:
    import app
    from chalicelib.registry import Registry
    from steward_tools.local.runner import LocalLambdaContext

    def run(events: list[dict]) -> float:
        started = time.perf_counter()
        for event in events:
            app.on_ecr_event(event, LocalLambdaContext())
        return len(events) / (time.perf_counter() - started)

    registry = Registry(region=REGION)
    registry.create_repository("bench/events")
    n = 200
    ignored = [
        {**_push_event("bench/events", "sha256:" + "0" * 64, "x"), "detail-type": "ECR Image Scan"}
        for _ in range(n)
    ]
    for event in ignored:
        event["detail"] = {
            "scan-status": "COMPLETE",
            "repository-name": "bench/events",
            "image-digest": "sha256:" + "0" * 64,
            "finding-severity-counts": {},
        }
    pushes: list[dict] = []
    for k in range(n):
        tag = f"1.{k // 10}.{k % 10}"
        pushes.append(
            _push_event("bench/events", _push(registry, "bench/events", tag, 100 + k), tag)
        )
    steady = [
        _push_event("bench/events", e["detail"]["image-digest"], e["detail"]["image-tag"])
        for e in pushes
    ]
    duplicates = [json.loads(json.dumps(e)) for e in pushes]

    print(f"events per second through on_ecr_event, in-process ({n} events each)")
    print(f"  acknowledged (no action)      {run(ignored):7.1f} /s")
    print(f"  push → new aliases put        {run(pushes):7.1f} /s")
    print(f"  push, tags already converged  {run(steady):7.1f} /s")
    print(f"  duplicate deliveries          {run(duplicates):7.1f} /s")


if __name__ == "__main__":
    cold_import()
    in_process()
