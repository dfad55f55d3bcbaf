"""Scan gate benchmark: decisions per second in-process, and ECR calls per decision.

    .venv/bin/python benchmarks/bench_gate.py

The pure decision runs alone; the whole path (scan event → on_ecr_event → decision → tags →
record → steward.gate event) runs against the embedded AWS backend on loopback. Figures are
printed, not asserted.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import boto3

import app
from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import Finding
from chalicelib.gate.decide import decide
from chalicelib.gate.records import ScanResult, records
from chalicelib.policy.gate import GateRule
from steward_tools.local import scanning
from steward_tools.local.delivery import EventPump
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.local.server import EmbeddedAWS, bootstrap
from steward_tools.samples import build_image

ACCOUNT, REGION = "123456789012", "us-east-1"
POLICY = """
gate:
  rules:
    - repositories: ["bench/counts"]
      max_counts: {CRITICAL: 0, HIGH: 0}
      promotion_tags: [approved]
      quarantine_removes: ["v*"]
    - repositories: ["bench/allowlist"]
      max_counts: {CRITICAL: 0}
      allowlist:
        - {cve: CVE-2024-0000, reason: bench, expires: 2999-12-31}
"""


def pure_decisions() -> None:

    now = datetime.now(UTC)
    counts_rule = GateRule(repositories=["*"], max_counts={"CRITICAL": 0, "HIGH": 0})
    scan = ScanResult(source="basic", status="COMPLETE", counts={"MEDIUM": 3}, received_at=now)
    allowlist_rule = GateRule(
        repositories=["*"],
        max_cvss=9.0,
        allowlist=[
            {"cve": f"CVE-2024-{i:04d}", "reason": "bench", "expires": "2999-12-31"}
            for i in range(20)
        ],
    )
    findings = [
        Finding(id=f"CVE-2024-{i:04d}", severity="HIGH", package="p", score=7.5) for i in range(200)
    ]
    print("gate decisions per second, in-process (pure decide())")
    for label, rule, found in (
        ("counts only", counts_rule, None),
        ("200 findings, 20 allowlisted", allowlist_rule, findings),
    ):
        n = 20_000 if found is None else 500
        started = time.perf_counter()
        for _ in range(n):
            decide(rule, scan=scan, findings=found, pending_since=now, now=now)
        rate = n / (time.perf_counter() - started)
        print(f"  {label:32} {rate:10.0f} /s")


def end_to_end() -> None:

    with EmbeddedAWS(port=0) as aws, tempfile.TemporaryDirectory() as scratch:
        policy = Path(scratch) / "policy.yaml"
        policy.write_text(POLICY)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": aws.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "STEWARD_POLICY": str(policy),
            }
        )
        resources = bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        registry = Registry(region=REGION)
        n = 60
        print(f"the whole path through on_ecr_event ({n} images each, half with a CRITICAL)")
        for repository in ("bench/counts", "bench/allowlist"):
            registry.create_repository(repository, scan_on_push=True)
            for k in range(n):
                image = build_image([512], seed=hash((repository, k)) & 0xFFFF)
                if k % 2:
                    bad = [{"name": f"CVE-2024-{k:04d}", "severity": "CRITICAL"}]
                    scanning.set_findings(ACCOUNT, REGION, repository, image.digest, bad)
                for data in image.blobs.values():
                    registry.upload_bytes(repository, data)
                registry.put_manifest(repository, image.manifest, f"v{k}")
            # Push events first (pending records), then scan events (decisions), as ECR emits.
            sqs = boto3.client("sqs")
            events: list[dict] = []
            EventPump(sqs, resources.events_queue_url, events.append).drain()
            scans = [e for e in events if e["detail-type"] == "ECR Image Scan"]
            pushes = [e for e in events if e["detail-type"] != "ECR Image Scan"]
            for e in pushes:
                app.on_ecr_event({**e, "id": str(uuid.uuid4())}, LocalLambdaContext())
            gateway = registries.registry(ACCOUNT, REGION)
            gateway.calls.clear()
            store = records()
            store.calls = 0
            started = time.perf_counter()
            for e in scans:
                app.on_ecr_event(e, LocalLambdaContext())
            elapsed = time.perf_counter() - started
            calls: Counter[str] = Counter(gateway.calls)
            total = sum(calls.values())
            print(f"  {repository}")
            print(f"    decisions per second          {len(scans) / elapsed:7.1f} /s")
            print(f"    ECR calls per decision        {total / len(scans):7.2f}   {dict(calls)}")
            print(f"    DynamoDB calls per decision   {store.calls / len(scans):7.2f}")
            # The tag puts emitted PUSH events of their own; they cost reads only.
            follow: list[dict] = []
            EventPump(sqs, resources.events_queue_url, follow.append).drain()
            gateway.calls.clear()
            for e in follow:
                app.on_ecr_event(e, LocalLambdaContext())
            echo = sum(gateway.calls.values())
            print(
                f"    the gate's own tag pushes     {len(follow)} events, "
                f"{echo / max(len(follow), 1):.2f} ECR calls each"
            )


if __name__ == "__main__":
    pure_decisions()
    end_to_end()
