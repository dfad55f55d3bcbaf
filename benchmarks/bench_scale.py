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
- A full backfill runs the real streaming job generator (`backfill_jobs`: pages of repositories and
  of images from the real gateway) and the real queued enqueuer (`enqueue_backfill`: batches of
  10, a look at the queue's depth every 1,000 jobs, waiting above its high water) against a fake
  ECR and SQS, on a simulated clock: nothing sleeps. `on_copy_job` (reserved concurrency 10,
  batches of 10) is simulated job by job: each copy is charged its modelled calls and time, and
  its PutImage waits for a token from the real `TokenBucket` at ECR_TPS's 10/s, one bucket for
  the account and region. A sample of the registry (1,000 repositories, 100,000 images) runs and
  the rest is extrapolated from its steady state.

Peak memory is tracemalloc's peak of Python allocations during one invocation, plus the measured
resident size of an idle interpreter with the functions' imports (Lambda's baseline).
"""

from __future__ import annotations

import argparse
import heapq
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
from chalicelib.kernel.ratelimit import ECR_TPS, TokenBucket
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import current_policy, parse_policy
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication import backfill
from chalicelib.replication.jobs import CopyJob
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
    "GetQueueAttributes": 10,
    "BatchCheckLayerAvailability": 20,
    "GetDownloadUrlForLayer": 20,
    "InitiateLayerUpload": 40,
    "UploadLayerPart": 40,
    "CompleteLayerUpload": 60,
    "GetItem": 5,
    "PutItem": 8,
    "UpdateItem": 8,
    "Query": 12,
    "Scan": 60,
}
# Published ECR TPS quotas per account and region (/work/shared/reference/limits.md).
QUOTA_TPS = {
    "PutImage": 10,
    "BatchGetImage": 2000,
    "UploadLayerPart": 500,
    "InitiateLayerUpload": 100,
    "CompleteLayerUpload": 100,
    "BatchCheckLayerAvailability": 1000,
    "GetDownloadUrlForLayer": 3000,
}
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


# --- full backfill ------------------------------------------------------------------------------

BACKFILL_RULE = ReplicationRule.model_validate(
    {
        "name": "backfill-eu",
        "repositories": ["*"],
        "triggers": ["backfill"],
        "destinations": [{"region": "eu-west-1"}],
    }
)
BACKFILL_SAMPLE_REPOSITORIES = 2000
COPY_CONCURRENCY = 10  # on_copy_job's reserved concurrency (prod stage)
COPY_BATCH = 10  # records per on_copy_job invocation
COPY_MEMORY_MB = 512
COPY_TIMEOUT_S = 900
# One copy job of a single-manifest image whose base layers the destination already has: the
# calls the /v2 engine makes (source: GET manifest, 3 cosign HEADs, referrers; destination: HEAD
# of the manifest and the tag, of 3 blobs; one new layer: mount-or-upload, one 64 MiB part,
# complete; the manifest put; the ledger's record; whether the repository exists), by the ECR
# operation each stands for.
COPY_JOB_CALLS = {
    "BatchGetImage": 7,
    "BatchCheckLayerAvailability": 3,
    "GetDownloadUrlForLayer": 1,
    "InitiateLayerUpload": 1,
    "UploadLayerPart": 1,
    "CompleteLayerUpload": 1,
    "PutImage": 1,
    "UpdateItem": 1,
    "DescribeRepositories": 1,
}
COPY_JOB_BYTES_S = 0.2  # its one new 20 MiB layer, streamed at 100 MiB/s
# The /v2 engine's peak RSS per copying process (benchmarks/bench_copy.py), of 512 MB.
COPY_PEAK_RSS_MB = 62


class FakeListing(FakeECR):
    """A registry of `count` repositories of `per_repository` tagged images each, listed as
    describe-repositories and describe-images pages."""

    def __init__(self, count: int, per_repository: int) -> None:
        super().__init__(count)
        self.per_repository = per_repository

    def describe_images(self, repositoryName: str, imageIds: Any = None, **params: Any):
        if imageIds:
            return super().describe_images(repositoryName, imageIds)
        METER.call("DescribeImages")
        start = int(params.get("nextToken") or 0)
        end = min(start + int(params.get("maxResults") or 100), self.per_repository)
        return {
            "imageDetails": [
                {
                    "repositoryName": repositoryName,
                    "registryId": ACCOUNT,
                    "imageDigest": "sha256:"
                    + f"{repositoryName}#{n}".encode().hex()[-64:].zfill(64),
                    "imageTags": [f"1.0.{n}"],
                    "imagePushedAt": datetime(2026, 11, 1, tzinfo=UTC),
                    "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
                    "imageSizeInBytes": 50_000_000,
                }
                for n in range(start, end)
            ],
            **({"nextToken": str(end)} if end < self.per_repository else {}),
        }


class CopyQueue:
    """SQS for the copy queue: messages counted, a few validated as copy jobs."""

    def __init__(self) -> None:
        self.waiting = 0
        self.sent = 0
        self.checked = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]):
        METER.call("SendMessageBatch")
        if self.checked < 100:
            for entry in Entries:
                CopyJob.model_validate_json(entry["MessageBody"])
            self.checked += len(Entries)
        self.waiting += len(Entries)
        self.sent += len(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]):
        METER.call("GetQueueAttributes")
        return {"Attributes": {"ApproximateNumberOfMessages": str(self.waiting)}}


class CopyFunctions:
    """`on_copy_job` at its reserved concurrency, in simulated time, job by job: each function
    takes a batch when the queue has one and copies it, PutImage waiting for the shared bucket."""

    def __init__(self, queue: CopyQueue) -> None:
        self.queue = queue
        self.now = 0.0
        self.put_image = TokenBucket(
            ECR_TPS["put_image"], clock=lambda: self.now, sleep=lambda s: None
        )
        work = {op: n for op, n in COPY_JOB_CALLS.items() if op != "PutImage"}
        self.job_seconds = (
            COPY_JOB_BYTES_S + sum(LATENCY_MS[op] * n for op, n in work.items()) / 1000
        )
        # (time free, function, jobs left in its batch, when its invocation began)
        self.functions = [(0.0, n, 0, 0.0) for n in range(COPY_CONCURRENCY)]
        self.copied = 0
        self.invocations = 0
        self.busy_seconds = 0.0
        self.longest = 0.0
        self.finished_at = 0.0
        self.progress: list[tuple[float, int]] = []  # (time, copies done), every 1,000 copies

    def run_until(self, moment: float) -> None:
        while self.functions[0][0] <= moment:
            free, n, left, began = heapq.heappop(self.functions)
            if left:
                self.now = free + self.job_seconds
                waited = self.put_image.acquire()
                done = self.now + waited + LATENCY_MS["PutImage"] / 1000
                self.copied += 1
                self.finished_at = done
                if self.copied % 1000 == 0:
                    self.progress.append((done, self.copied))
                if left == 1:
                    self.invocations += 1
                    self.busy_seconds += done - began
                    self.longest = max(self.longest, done - began)
                heapq.heappush(self.functions, (done, n, left - 1, began))
            elif self.queue.waiting:
                batch = min(COPY_BATCH, self.queue.waiting)
                self.queue.waiting -= batch
                start = free + LAMBDA_START_MS / 1000
                heapq.heappush(self.functions, (start, n, batch, free))
            else:
                heapq.heappush(self.functions, (free + 1.0, n, 0, 0.0))  # polls again
                if self.queue.waiting == 0 and moment == math.inf and self.idle():
                    return

    def idle(self) -> bool:
        return all(left == 0 for _, _, left, _ in self.functions)

    def steady_rate(self, start: float, end: float) -> float:
        """Copies a second between `start` and `end` (while the queue was kept filled)."""
        window = [(t, n) for t, n in self.progress if start <= t <= end]
        (t0, n0), (t1, n1) = window[0], window[-1]
        return (n1 - n0) / (t1 - t0)


def simulate_backfill(repositories: int, per_repository: int, *, trace: bool) -> dict[str, Any]:
    """The queued backfill of `repositories` x `per_repository` images, in simulated time;
    `trace` measures the enqueuer's peak allocations (and slows it)."""
    METER.total.clear()
    METER.take()
    ecr, queue = FakeListing(repositories, per_repository), CopyQueue()
    copies = CopyFunctions(queue)
    setattr(jobqueue, "aws_client", lambda *a, **k: queue)  # noqa: B010
    slept = [0.0]

    def enqueuer_time() -> float:  # its calls' latency and its waits: the enqueuer's own clock
        return (
            sum(LATENCY_MS.get(op, 10) * n for op, n in METER.invocation.items()) / 1000 + slept[0]
        )

    def depth(name: str) -> int:
        copies.run_until(enqueuer_time())
        return jobqueue.waiting_messages(name)

    def sleep(seconds: float) -> None:
        slept[0] += seconds
        copies.run_until(enqueuer_time())

    registry = Registry(region=REGION, client=ecr)
    if trace:
        tracemalloc.start()
    cpu = time.process_time()
    jobs = backfill.backfill_jobs(BACKFILL_RULE, registry, ACCOUNT, REGION)
    sent = backfill.enqueue_backfill(
        jobs, queue="https://sqs.fake/steward-replication-jobs", depth=depth, sleep=sleep
    )
    enqueued_at = enqueuer_time()
    cpu = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    copies.run_until(math.inf)
    return {
        "images": repositories * per_repository,
        "sent": sent,
        "enqueuer_calls": Counter(METER.invocation),
        "enqueuer_cpu_s": cpu,
        "enqueuer_peak_mb": peak / 2**20,
        "enqueued_at": enqueued_at,
        "copies": copies,
        "wall_s": copies.finished_at,
    }


def print_backfill(args: argparse.Namespace) -> None:
    images = args.images
    per_repository = max(1, images // args.repositories)
    sampled = min(BACKFILL_SAMPLE_REPOSITORIES, args.repositories)
    sample = simulate_backfill(sampled, per_repository, trace=True)
    half = simulate_backfill(max(1, sampled // 2), per_repository, trace=True)
    untraced = simulate_backfill(max(1, sampled // 2), per_repository, trace=False)
    cpu_per_job = untraced["enqueuer_cpu_s"] / untraced["images"]
    copies: CopyFunctions = sample["copies"]
    scale = images / sample["images"]
    # Steady state: copies a second while the enqueuer kept the queue filled.
    rate = copies.steady_rate(600.0, sample["enqueued_at"])
    wall = sample["wall_s"] + (images - sample["images"]) / rate
    bound = images * COPY_JOB_CALLS["PutImage"] / ECR_TPS["put_image"]
    calls: Counter[str] = Counter(
        {op: round(n * scale) for op, n in sample["enqueuer_calls"].items()}
    )
    for op, n in COPY_JOB_CALLS.items():
        calls[op] += n * images
    invocations = copies.invocations * scale
    gb_seconds = copies.busy_seconds * scale * COPY_MEMORY_MB / 1024
    rates = {op: n / wall for op, n in calls.items()}
    over = [op for op, r in rates.items() if r > QUOTA_TPS.get(op, float("inf"))]
    print(
        f"== full backfill: {images:,} images in {args.repositories:,} repositories, one "
        "destination region (`steward replicate --queue`, on_copy_job)"
    )
    print(
        f"  invocations            {invocations:,.0f} on_copy_job (batches of {COPY_BATCH}, "
        f"reserved concurrency {COPY_CONCURRENCY}) + 1 enqueuer process"
    )
    print(f"  GB-seconds             {gb_seconds:,.0f} (on_copy_job at {COPY_MEMORY_MB} MB)")
    print("  calls by operation     " + ", ".join(f"{op} {n:,}" for op, n in sorted(calls.items())))
    print(
        f"  peak memory            enqueuer +{sample['enqueuer_peak_mb']:.1f} MB of Python "
        f"allocations at {sample['images']:,} images, +{half['enqueuer_peak_mb']:.1f} MB at "
        f"{half['images']:,} (flat: a page of repositories, a page of images and a chunk of "
        f"jobs); on_copy_job {COPY_PEAK_RSS_MB} MB of {COPY_MEMORY_MB} (bench_copy.py)"
    )
    print(
        f"  longest invocation     {copies.longest:.1f} s of {COPY_TIMEOUT_S} (a batch of "
        f"{COPY_BATCH}, each copy {copies.job_seconds:.2f} s plus its wait for a PutImage token)"
    )
    print(
        f"  enqueuer               CPU {cpu_per_job * images:,.0f} s in all "
        f"({cpu_per_job * 1e6:.0f} us a job); the queue holds at most "
        f"{backfill.QUEUE_HIGH_WATER:,} jobs, so it sends its last about "
        f"{backfill.QUEUE_HIGH_WATER / rate / 3600:.0f} h before the end, waiting meanwhile"
    )
    print(
        f"  wall time              {wall:,.0f} s = {wall / 86400:.1f} days; PutImage's quota "
        f"allows {bound:,.0f} s ({images:,} at {ECR_TPS['put_image']:.0f}/s): "
        f"{wall / bound:.3f}x -> {'within' if wall <= 1.1 * bound else 'OVER'} 10 %"
    )
    print(
        "  mean rate (calls/s)    "
        + ", ".join(f"{op} {r:.1f}" for op, r in sorted(rates.items()) if r >= 0.05)
        + f"; over a published quota: {', '.join(over) or 'none'}"
    )
    print(
        f"  (simulated time; {sample['images']:,} images run through the real generator, "
        f"enqueuer and PutImage bucket, the rest extrapolated at the steady {rate:.0f} jobs/s;"
    )
    print(
        "   each copy's calls and time modelled; one PutImage bucket shared by the copy "
        "functions of the account and region)"
    )


if __name__ == "__main__":
    main()
