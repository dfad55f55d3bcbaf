"""Retention benchmark: plan one repository of 100,000 images, and count the ECR calls.

    .venv/bin/python benchmarks/bench_retention.py        (or: make bench)

The repository is synthetic describe-images data: multi-arch indexes (each with amd64, arm64 and
an attestation manifest), a cosign signature per index, OCI SBOM referrers, single images tagged
`v…`/`pr-…`/`stable`, and untagged images. Only the indexes have manifests (the planner learns
children from them; referrers name their subject in describe-images or in the cosign tag).

ECR calls are counted by the real gateway (`Registry.calls`) over a stub boto3 client that serves
the synthetic data in ECR's page and batch sizes and answers every delete with success. It
measures how many calls the gateway and the applier make, not network latency. Figures are
printed, not asserted.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.ecr.gateway import Registry
from chalicelib.oci.manifests import OCI_INDEX, OCI_MANIFEST, digest_of
from chalicelib.policy.retention import RetentionSettings
from chalicelib.retention.apply import apply_retention_plan, deletion_batches
from chalicelib.retention.plan import InUse, RetentionPlan, plan_retention
from chalicelib.retention.task import read_repository

REPO = "bench/app"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
INDEXES = 12_500  # x (index + 3 children + 1 signature) = 62,500
SBOMS = 5_000
TAGGED = 30_000
TOTAL = 100_000
RUNS = 3
SETTINGS = RetentionSettings.model_validate(
    {
        "max_deletions": TOTAL,
        "max_deletion_share": 1,
        "rules": [
            {"kind": "always_keep", "repositories": ["*"], "tags": "stable"},
            {"kind": "keep_semver", "repositories": ["*"], "count": 20},
            {"kind": "keep_newest", "repositories": ["*"], "tags": "v*", "count": 50},
            {"kind": "expire_tagged", "repositories": ["*"], "tags": "pr-*", "older_than_days": 14},
            {"kind": "expire_untagged", "repositories": ["*"], "older_than_days": 7},
        ],
    }
)


def _digest(*parts: object) -> str:
    return digest_of("/".join(map(str, parts)).encode())


def synthesize() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """describe-images entries (as ECR returns them) and index manifest bodies by digest."""
    details: list[dict[str, Any]] = []
    bodies: dict[str, str] = {}
    minute = 0

    def add(digest: str, media_type: str, tags: list[str], **extra: Any) -> None:
        nonlocal minute
        minute += 1
        entry = {
            "registryId": "123456789012",
            "repositoryName": REPO,
            "imageDigest": digest,
            "imagePushedAt": NOW - timedelta(days=200) + timedelta(minutes=minute * 2.88),
            "imageSizeInBytes": 1024,
            "imageManifestMediaType": media_type,
            **extra,
        }
        if tags:
            entry["imageTags"] = tags
        details.append(entry)

    for n in range(INDEXES):
        children = [_digest("child", n, arch) for arch in ("amd64", "arm64", "attestation")]
        for child in children:
            add(child, OCI_MANIFEST, [])
        index = _digest("index", n)
        bodies[index] = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": c, "size": 512} for c in children
                ],
            }
        )
        tag = f"v{n // 100}.{n % 100}.0" if n % 2 else f"pr-{n}"
        add(index, OCI_INDEX, [tag, *(["stable"] if n == INDEXES - 7 else [])])
        add(_digest("sig", n), OCI_MANIFEST, [f"sha256-{index[7:]}.sig"])
    for n in range(SBOMS):
        add(
            _digest("sbom", n),
            OCI_MANIFEST,
            [],
            artifactMediaType="application/spdx+json",
            subjectManifestDigest=_digest("index", n * 2),
        )
    for n in range(TAGGED):
        add(_digest("single", n), OCI_MANIFEST, [f"pr-s{n}" if n % 3 else f"v9{n}.0.0"])
    while len(details) < TOTAL:
        add(_digest("untagged", len(details)), OCI_MANIFEST, [])
    return details, bodies


class StubECR:
    """describe_images in pages of 1,000, batch_get_image and batch_delete_image of ≤100."""

    meta = type("Meta", (), {"region_name": "us-east-1"})()

    def __init__(self, details: list[dict[str, Any]], bodies: dict[str, str]) -> None:
        self.details = details
        self.bodies = bodies

    def describe_images(self, **kw: Any) -> dict[str, Any]:
        start = int(kw.get("nextToken") or 0)
        page = self.details[start : start + kw["maxResults"]]
        more = start + len(page) < len(self.details)
        return {"imageDetails": page, **({"nextToken": str(start + len(page))} if more else {})}

    def batch_get_image(self, **kw: Any) -> dict[str, Any]:
        assert len(kw["imageIds"]) <= 100
        return {
            "images": [
                {
                    "imageId": i,
                    "imageManifest": self.bodies[i["imageDigest"]],
                    "imageManifestMediaType": OCI_INDEX,
                }
                for i in kw["imageIds"]
            ],
            "failures": [],
        }

    def batch_delete_image(self, **kw: Any) -> dict[str, Any]:
        assert len(kw["imageIds"]) <= 100
        return {"imageIds": kw["imageIds"], "failures": []}


def main() -> None:
    details, bodies = synthesize()
    registry = Registry(client=StubECR(details, bodies))

    started = time.perf_counter()
    images, manifests, _ = read_repository(registry, REPO)
    read_seconds = time.perf_counter() - started

    in_use = InUse(by_tag={"pr-s1": "Lambda function bench"}, by_digest={})
    walls, cpus = [], []
    plan: RetentionPlan | None = None
    batches: list[list[str]] = []
    for _ in range(RUNS):
        plan = None  # each run starts from the same heap: the last plan collected, untimed
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        plan = plan_retention(SETTINGS, REPO, images, manifests, NOW, in_use=in_use)
        batches = deletion_batches(plan)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - started_cpu)
    plan_seconds, plan_cpu = statistics.median(walls), statistics.median(cpus)
    assert plan is not None

    result = apply_retention_plan(registry, plan)
    assert not result.failed and len(result.deleted) == len(plan.deletions)

    pages = math.ceil(len(images) / 1000)
    deletes = len(plan.deletions)
    minimum = pages + math.ceil(deletes / 100)
    describe = registry.calls["describe_images"]
    delete_calls = registry.calls["batch_delete_image"]
    batch_gets = registry.calls["batch_get_image"]
    kinds = Counter(f"{d.action} {d.role}" for d in plan.decisions)
    print(f"images: {len(images):,} ({INDEXES:,} indexes), index manifests: {len(manifests):,}")
    print(f"decisions: {dict(sorted(kinds.items()))}")
    print(
        f"plan (graph, rules, batching) : {plan_seconds:.2f} s wall, {plan_cpu:.2f} s CPU "
        f"(median of {RUNS})   (target < 2 s)"
    )
    print(f"read through the gateway      : {read_seconds:.2f} s   (stub client, no network)")
    print(
        f"ECR calls, describe-images + batch-delete-image: {describe} + {delete_calls} = "
        f"{describe + delete_calls}; minimum {pages} + {math.ceil(deletes / 100)} = {minimum}: "
        f"{(describe + delete_calls) / minimum:.2f}x   (target 1.0x)"
    )
    print(
        f"plus batch-get-image for the index manifests: {batch_gets} "
        f"({len(manifests):,} indexes / 100); all calls {sum(registry.calls.values())}: "
        f"{sum(registry.calls.values()) / minimum:.2f}x the minimum"
    )
    print(f"delete batches planned: {len(batches)}, deletions {deletes:,}")


if __name__ == "__main__":
    main()
