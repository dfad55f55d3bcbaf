"""Scale model: the sweep, the gate sweep, a policy edit and a full backfill at 100,000 repositories
and 10 million images, with AWS-like latency and ECR's published quotas.

    .venv/bin/python benchmarks/bench_scale.py [--repositories N] [--images N]   (or: make bench)

What runs for real and what is modelled (said again in the output):
- The sweep's fan-out is the real code (`start_sweep`, `run_page_job`, `run_repository_job` with its
  claims, the real `Registry` gateway and `send_jobs`) against in-memory ECR, SQS and ledger fakes
  that answer a synthetic registry and charge each call a latency. Every page of the registry is
  walked; repository jobs run for real on a sample of 2,000 repositories and are extrapolated. The
  per-repository task is modelled at its converged cost measured on the embedded backend (issue 15:
  2 ECR calls per repository), not re-run here.
- The gate sweep is the real `chalicelib.gate.sweep.sweep` (due-index query, re-decision, records)
  against a fake decisions table holding 1,000,000 records as counts: only the due records are
  materialised (a 5-minute window's worth).
- A policy edit runs the real section fingerprints: the number of gate records made due is the
  number of records whose gate version differs, computed from the real fingerprints.
- A full backfill is modelled from the PutImage quota (10/s per account and region): replication's
  copy engine (and its pacing) is another engineer's scope, so no copy code runs here.

Peak memory is tracemalloc's peak of Python allocations during one invocation, plus the measured
resident size of an idle interpreter with the functions' imports (Lambda's baseline).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.gate import records as gate_records
from chalicelib.gate import sweep as gate_sweep
from chalicelib.kernel import jobqueue
from chalicelib.kernel.settings import get_settings
from chalicelib.policy import current_policy, parse_policy
from chalicelib.sweep import jobs as sweep
from chalicelib.sweep.ledger import LEASE_SECONDS, Lease

# Latency per call (ms, p50 within a region, from AWS SDK traces of similar calls): a model, not a
# measurement.
LATENCY_MS = {
    "DescribeRepositories": 80,
    "DescribeImages": 40,
    "BatchGetImage": 30,
    "PutImage": 60,
    "SendMessageBatch": 15,
    "GetQueueUrl": 10,
    "GetItem": 5,
    "PutItem": 8,
    "UpdateItem": 8,
    "Query": 12,
    "Scan": 60,
}
# Published ECR TPS quotas per account and region (/work/shared/reference/limits.md).
QUOTA_TPS = {"PutImage": 10, "BatchGetImage": 2000, "UploadLayerPart": 500}
LAMBDA_START_MS = 30  # per invocation, warm
ACCOUNT, REGION = "123456789012", "us-east-1"
POLICY = """
gate:
  rules:
    - repositories: ["*"]
      max_counts: {CRITICAL: 0}
      promotion_tags: [approved]
      scan_timeout_minutes: 30
retention:
  rules:
    - {kind: expire_untagged, repositories: ["*"], older_than_days: 14}
"""


class Meter:
    """Calls by operation and simulated latency, per invocation and in total."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.invocation: Counter[str] = Counter()

    def call(self, operation: str) -> None:
        self.total[operation] += 1
        self.invocation[operation] += 1

    def take(self) -> tuple[Counter[str], float]:
        calls, self.invocation = self.invocation, Counter()
        return calls, sum(LATENCY_MS.get(op, 10) * n for op, n in calls.items()) / 1000


METER = Meter()


class FakeECR:
    """describe-repositories over `count` synthetic repositories; describe-images by digest."""

    class meta:
        region_name = REGION

    def __init__(self, count: int) -> None:
        self.count = count

    def describe_repositories(self, maxResults: int = 100, nextToken: str | None = None, **_: Any):
        start = int(nextToken or 0)
        end = min(start + maxResults, self.count)
        METER.call("DescribeRepositories")
        page = [
            {
                "repositoryName": f"team-{n // 1000:03d}/app-{n:06d}",
                "repositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/app-{n}",
                "registryId": ACCOUNT,
                "repositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app-{n}",
                "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for n in range(start, end)
        ]
        return {"repositories": page, **({"nextToken": str(end)} if end < self.count else {})}

    def describe_images(self, repositoryName: str, imageIds: list[dict[str, str]], **_: Any):
        METER.call("DescribeImages")
        digest = imageIds[0]["imageDigest"]
        return {
            "imageDetails": [
                {
                    "repositoryName": repositoryName,
                    "registryId": ACCOUNT,
                    "imageDigest": digest,
                    "imageTags": ["1.0.0", "approved"],
                    "imagePushedAt": datetime(2026, 11, 1, tzinfo=UTC),
                    "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
                    "imageSizeInBytes": 50_000_000,
                }
            ]
        }


class FakeSQS:
    """Keeps page jobs (the walk goes on through them); counts repository jobs, keeping a sample."""

    def __init__(self, sample: int) -> None:
        self.pages: list[str] = []
        self.repository_jobs = 0
        self.sample: list[str] = []
        self.sample_size = sample

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]):
        METER.call("SendMessageBatch")
        for entry in Entries:
            body = entry["MessageBody"]
            if body.startswith('{"kind":"page"'):
                self.pages.append(body)
            else:
                self.repository_jobs += 1
                if len(self.sample) < self.sample_size:
                    self.sample.append(body)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


class FakeLedger:
    """The ledger's semantics (lease, page and repository claims) in memory, charged as DynamoDB."""

    def __init__(self) -> None:
        self.lease_item: dict[str, Any] | None = None
        self.claims: set[str] = set()

    def lease(self, account: str, region: str) -> Lease | None:
        METER.call("GetItem")
        item = self.lease_item
        return Lease(**item) if item else None

    def acquire(self, account: str, region: str, sweep_id: str, now: datetime):
        METER.call("PutItem")
        if self.lease_item and self.lease_item["expires_at"] > now:
            return self.lease_item["sweep_id"] == sweep_id, self.lease(account, region)
        self.lease_item = {
            "sweep_id": sweep_id,
            "started_at": now,
            "expires_at": now + timedelta(seconds=LEASE_SECONDS),
            "page": -1,
            "listed": False,
        }
        return True, self.lease(account, region)

    def claim_page(self, account: str, region: str, sweep_id: str, page: int, message: str):
        METER.call("UpdateItem")
        item = self.lease_item
        if item is None or item["sweep_id"] != sweep_id or item["page"] != page - 1:
            return False
        item["page"] = page
        return True

    def mark_listed(self, account: str, region: str, sweep_id: str) -> None:
        METER.call("UpdateItem")
        if self.lease_item:
            self.lease_item["listed"] = True

    def claim_repository(self, sweep_id: str, repository: str, message: str, now: datetime):
        METER.call("PutItem")
        key = f"{sweep_id}#{repository}"
        if key in self.claims:
            return False
        self.claims.add(key)
        return True


def converged_task(registry: Registry, repository: RepositoryInfo, now: datetime) -> dict:
    """A converged repository's sweep tasks: 2 ECR calls (issue 15's measurement)."""
    METER.call("DescribeImages")
    METER.call("DescribeRepositories")
    return {}


class Invocations:
    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.count = 0
        self.seconds = 0.0
        self.peak_bytes = 0
        self.longest = 0.0
        self.calls_max: Counter[str] = Counter()

    def run(self, body: Any, *, trace: bool) -> Any:
        if trace:
            tracemalloc.start()
        cpu = time.process_time()
        result = body()
        cpu = time.process_time() - cpu
        if trace:
            self.peak_bytes = max(self.peak_bytes, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        calls, latency = METER.take()
        seconds = LAMBDA_START_MS / 1000 + cpu + latency
        self.count += 1
        self.seconds += seconds
        self.longest = max(self.longest, seconds)
        for op, n in calls.items():
            self.calls_max[op] = max(self.calls_max[op], n)
        return result

    def gb_seconds(self) -> float:
        return self.seconds * self.memory_mb / 1024


def baseline_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate_sweep(repositories: int, sample: int, concurrency: int) -> dict[str, Any]:
    ecr, sqs, ledger = FakeECR(repositories), FakeSQS(sample), FakeLedger()
    registry = Registry(region=REGION, client=ecr)
    # The real code, its AWS clients replaced by the fakes.
    setattr(sweep, "ledger", lambda: ledger)  # noqa: B010
    setattr(sweep.registries, "registry", lambda *a, **k: registry)  # noqa: B010
    setattr(jobqueue, "aws_client", lambda *a, **k: sqs)  # noqa: B010
    sweep.REPOSITORY_TASKS = (sweep.SweepTask("converged", converged_task, lambda p, r: True),)
    queue = "https://sqs.fake/steward-repository-jobs"
    now = datetime(2026, 11, 27, 4, tzinfo=UTC)
    start = Invocations(128)
    start.run(
        lambda: sweep.start_sweep(
            account=ACCOUNT, region=REGION, now=now, queue=queue, sweep_id="s-1"
        ),
        trace=True,
    )
    pages = Invocations(1024)
    walk_seconds = 0.0
    while sqs.pages:
        body = sqs.pages.pop(0)
        job = sweep.PageJob.model_validate_json(body)
        before = pages.seconds
        pages.run(
            lambda job=job: sweep.run_page_job(job, f"m-{job.page}", now, queue=queue),
            trace=job.page < 3,
        )
        walk_seconds += pages.seconds - before
    # Repository jobs: batches of 10 as Lambda delivers them, a sample run for real.
    batches = Invocations(1024)
    jobs = [sweep.RepositoryJob.model_validate_json(b) for b in sqs.sample]
    for n in range(0, len(jobs), 10):
        batch = jobs[n : n + 10]

        def run(batch: list[sweep.RepositoryJob] = batch, n: int = n) -> None:
            lease = ledger.lease(ACCOUNT, REGION)
            for index, job in enumerate(batch):
                sweep.run_repository_job(job, now, f"r-{n + index}", lease)

        batches.run(run, trace=n < 50)
    total_batches = math.ceil(sqs.repository_jobs / 10)
    scale = total_batches / max(batches.count, 1)
    calls = Counter(METER.total)
    # Extrapolate the repository-job calls from the sample to every repository.
    per_repo = {"GetItem": 1 / 10, "PutItem": 1, "DescribeImages": 1, "DescribeRepositories": 1}
    sampled = len(jobs)
    for op, rate in per_repo.items():
        calls[op] += round(rate * (sqs.repository_jobs - sampled))
    batch_seconds = batches.seconds / max(batches.count, 1)
    drain_seconds = total_batches * batch_seconds / concurrency
    return {
        "invocations": start.count + pages.count + total_batches,
        "gb_seconds": start.gb_seconds() + pages.gb_seconds() + batches.gb_seconds() * scale,
        "calls": calls,
        "peak_mb": {
            "start_sweep": start.peak_bytes / 2**20,
            "page job": pages.peak_bytes / 2**20,
            "repository batch": batches.peak_bytes / 2**20,
        },
        "longest_s": {
            "start_sweep": start.longest,
            "page job": pages.longest,
            "repository batch": batches.longest,
        },
        "per_invocation_max": {"page job": dict(pages.calls_max)},
        # The walk is a chain (one page after another); repository batches run alongside it at
        # the function's reserved concurrency.
        "wall_s": max(walk_seconds, drain_seconds) + pages.longest,
        "pages": pages.count,
        "repository_jobs": sqs.repository_jobs,
    }


class FakeDecisions:
    """The decisions table: `total` records, of which only the due ones are materialised."""

    def __init__(self, total: int, due: list[dict[str, Any]], version: str) -> None:
        self.total = total
        self.due = due
        self.version = version
        self.marker = {"version": {"S": version}, "target": {"S": version}}
        self.by_key = {(i["repository"]["S"], i["digest"]["S"]): i for i in due}

    def get_item(self, TableName: str, Key: dict[str, Any], **_: Any):
        METER.call("GetItem")
        if Key["repository"]["S"] == "#gate":
            return {"Item": self.marker}
        item = self.by_key.get((Key["repository"]["S"], Key["digest"]["S"]))
        return {"Item": item} if item else {}

    def update_item(self, **_: Any):
        METER.call("UpdateItem")
        return {}

    def get_paginator(self, name: str):
        due = self.due

        class Pages:
            def paginate(self, **_: Any):
                # A query page holds 1 MB: about 400 records of ~2.5 KB.
                for n in range(0, max(len(due), 1), 400):
                    METER.call("Query")
                    yield {"Items": due[n : n + 400]}

        return Pages()


def gate_item(n: int, version: str, now: datetime) -> dict[str, Any]:
    record = gate_records.GateRecord(
        repository=f"team-{n % 100:03d}/app-{n:06d}",
        digest=f"sha256:{n:064x}",
        account=ACCOUNT,
        region=REGION,
        kind="image",
        pending_since=now - timedelta(days=3),
        scan=gate_records.ScanResult(source="basic", status="COMPLETE", received_at=now),
        status="pass",
        decision=gate_records.GateDecision(
            verdict="pass",
            reasons=["basic scan COMPLETE: within limits (CRITICAL 0/0)"],
            revisit_at=now,
        ),
        decided_at=now - timedelta(days=3),
        policy_version=version,
        applied=True,
    )
    return {
        "repository": {"S": record.repository},
        "digest": {"S": record.digest},
        "body": {"S": record.model_dump_json(exclude={"parents"})},
    }


def simulate_gate(records_total: int, due: int) -> dict[str, Any]:
    version = current_policy().section_fingerprint("gate")
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    table = FakeDecisions(records_total, [gate_item(n, version, now) for n in range(due)], version)
    store = gate_records.GateRecords("decisions", client=table)
    ecr = FakeECR(0)
    registry = Registry(region=REGION, client=ecr)
    setattr(gate_sweep, "records", lambda: store)  # noqa: B010
    setattr(gate_sweep.registries, "registry", lambda *a, **k: registry)  # noqa: B010
    run = Invocations(256)
    outcome = run.run(lambda: gate_sweep.sweep(now), trace=True)
    return {"outcome": outcome, "run": run, "calls": Counter(METER.total)}


def policy_edit(records_total: int) -> dict[str, Any]:
    before = current_policy()
    after = parse_policy(
        POLICY.replace("older_than_days: 14", "older_than_days: 30"), "edited.yaml"
    )
    unchanged = before.section_fingerprint("gate") == after.section_fingerprint("gate")
    return {"gate_records_due": 0 if unchanged else records_total, "put_image": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repositories", type=int, default=100_000)
    parser.add_argument("--images", type=int, default=10_000_000)
    parser.add_argument("--gate-records", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=10, help="on_repository_job reserved")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        os.environ["STEWARD_POLICY"] = str(policy)
        get_settings.cache_clear()
        baseline = baseline_rss_mb()
        result = simulate_sweep(args.repositories, sample=2000, concurrency=args.concurrency)
        print_sweep(args, result, baseline)
        METER.total.clear()
        # The due records of one 5-minute run: at most what PutImage lets be pushed in 5 minutes
        # (10/s: 3,000 images) reaching their timeout or a revisit together.
        gate = simulate_gate(args.gate_records, due=3000)
        print_gate(args, gate, baseline)
        edit = policy_edit(args.gate_records)
        print_edit(args, edit)
        print_backfill(args)


def print_sweep(args: argparse.Namespace, r: dict[str, Any], baseline: float) -> None:
    print(f"== hourly sweep: {args.repositories:,} repositories (period 3,600 s)")
    print(
        f"  invocations            {r['invocations']:,} ({r['pages']} page jobs, "
        f"{r['repository_jobs']:,} repository jobs in batches of 10, 1 start)"
    )
    print(f"  GB-seconds             {r['gb_seconds']:,.0f}")
    print(
        "  calls by operation     "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(r["calls"].items()))
    )
    print(
        "  per page job, at most  "
        + ", ".join(f"{op} {n}" for op, n in sorted(r["per_invocation_max"]["page job"].items()))
    )
    for name, peak in r["peak_mb"].items():
        print(
            f"  peak memory {name:<18} {baseline + peak:6.1f} MB "
            f"(baseline {baseline:.0f} + {peak:.1f}), "
            f"longest {r['longest_s'][name]:.2f} s"
        )
    wall = r["wall_s"]
    print(
        f"  wall time              {wall:,.0f} s  -> {'within' if wall < 3600 else 'OVER'} the hour"
    )
    rates = {op: n / wall for op, n in r["calls"].items()}
    over = [op for op, rate in rates.items() if rate > QUOTA_TPS.get(op, float("inf"))]
    print(
        "  mean rate (calls/s)    "
        + ", ".join(f"{op} {rate:.0f}" for op, rate in sorted(rates.items()))
        + f"; over a published quota: {', '.join(over) or 'none'}"
    )
    # The drain grows linearly with the registry (the walk is ~1 % of it): the hour is reached at
    largest = int(args.repositories * 3600 / wall)
    print(
        f"  largest registry the defaults sweep hourly: ~{largest:,} repositories at reserved "
        f"concurrency {args.concurrency} (ECR's default quota is 100,000 per region)"
    )
    print(
        "  (repository jobs: 2,000 run for real, the rest extrapolated; per-repository task at its"
    )
    print("   converged cost of 2 ECR calls, measured on the embedded backend, not re-run)")


def print_gate(args: argparse.Namespace, g: dict[str, Any], baseline: float) -> None:
    run: Invocations = g["run"]
    print(f"== gate sweep: {args.gate_records:,} records, 3,000 due (period 300 s, timeout 240 s)")
    print(f"  outcome                {g['outcome']}")
    print("  invocations            1")
    print(f"  GB-seconds             {run.gb_seconds():.1f}")
    print(
        "  calls by operation     "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(g["calls"].items()))
    )
    print(f"  peak memory            {baseline + run.peak_bytes / 2**20:.1f} MB of 256")
    print(
        f"  wall time              {run.longest:.1f} s -> "
        f"{'within' if run.longest < 240 else 'OVER'} its timeout"
    )
    per_record = run.longest / max(g["outcome"]["examined"], 1)
    print(
        f"  largest due set a run decides within its timeout: ~{int(240 / per_record):,} records "
        "(the rest stay due: the next run takes them)"
    )
    print("  (reads the due index only: the other records cost nothing; a full scan of 1 GB would")
    print(f"   be ~{args.gate_records * 2500 // 2**20:,} scan pages)")


def print_edit(args: argparse.Namespace, e: dict[str, Any]) -> None:
    print("== policy edit (retention's older_than_days), gate section untouched")
    print(f"  gate records made due  {e['gate_records_due']:,}; PutImage {e['put_image']}")
    print(f"  (before: the whole file's fingerprint made all {args.gate_records:,} due)")


def print_backfill(args: argparse.Namespace) -> None:
    images = args.images
    quota = QUOTA_TPS["PutImage"]
    seconds = images / quota
    print(f"== full backfill: {images:,} images, one destination (modelled from quotas)")
    print(f"  PutImage calls         {images:,} (one per manifest)")
    print(f"  bound by PutImage      {seconds:,.0f} s = {seconds / 86400:.1f} days at {quota}/s")
    print("  (the copy engine and its shared pacing are replication's scope: not run here)")
    print(
        f"  with {quota} PutImage/s shared by every function, pushes and gate tags wait meanwhile"
    )


if __name__ == "__main__":
    main()
