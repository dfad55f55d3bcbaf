"""Pacing shared by every function, against the per-process buckets it replaced.

    .venv/bin/python benchmarks/bench_pacing.py [--functions 10] [--seconds 8]   (or: make bench)

N forked processes stand for N concurrent functions. Each paces its calls of one ECR operation
through the real pacer (`chalicelib.kernel.pacing`, its buckets in the embedded DynamoDB) and
stands for the ECR call itself with a sleep of the call's latency (a model: ECR itself is not
called, so the embedded server only answers the pacing table). Side by side, the same processes
with today's buckets per process (`chalicelib.kernel.ratelimit.RateLimiter`), and with the pacing
table unreachable (each process at its fallback share). Printed per run: the aggregate rate
(calls per second once the burst is spent, and the busiest one-second window) against the quota,
and the DynamoDB writes the pacing cost per ECR call. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.kernel import aws
from chalicelib.kernel.pacing import Pacer, pacer_for
from chalicelib.kernel.ratelimit import ECR_TPS, RateLimiter
from chalicelib.kernel.settings import get_settings
from steward_tools.local.runner import configure_environment
from steward_tools.local.server import EmbeddedAWS, bootstrap
from tests.concurrency import in_processes

ACCOUNT, REGION = "123456789012", "us-east-1"
# On-demand writes in us-east-1, USD per million write request units (a claim is one WRU).
PRICE_PER_MILLION_WRITES = 0.625
STEADY_FROM = 2.0  # seconds into a run


@dataclass
class Scenario:
    name: str
    operation: str
    threads: int  # concurrent calls inside one function (the copy engine runs several)
    latency: float  # seconds an ECR call of this operation takes (a model)


SCENARIOS = [
    Scenario("PutImage (10/s), one call at a time, 60 ms each", "put_image", 1, 0.060),
    Scenario("UploadLayerPart (500/s), 4 at a time, 40 ms each", "upload_layer_part", 4, 0.040),
]


@dataclass
class Run:
    moments: list[float] = field(default_factory=list)
    claims: int = 0


def _worker(
    endpoint: str, mode: str, scenario: Scenario, start: float, seconds: float, results: Any
) -> None:
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # the fallback's warning, once per process
    if mode == "unreachable":
        os.environ["STEWARD_PACING_TABLE"] = "no-such-table"
    get_settings.cache_clear()
    aws.reset(keep_session=True)  # the parent's clients share its sockets
    limiter: Any = RateLimiter() if mode == "per-process" else pacer_for(ACCOUNT, REGION)
    # Warm, as a Lambda container after its first invocation: the DynamoDB client built and
    # connected. A cold process's first claim lands late (on 2 shared cores, up to a second),
    # and the full bucket it finds is the bucket of the moment it was sent.
    aws.client("dynamodb").list_tables(Limit=1)
    moments: list[float] = []
    lock = threading.Lock()

    def calls() -> None:
        while time.time() < start + seconds:
            limiter(scenario.operation)
            with lock:
                moments.append(time.time())
            time.sleep(scenario.latency)

    time.sleep(max(0.0, start - time.time()))
    threads = [threading.Thread(target=calls) for _ in range(scenario.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claims = limiter.buckets[scenario.operation].claims if isinstance(limiter, Pacer) else 0
    results.put(Run(moments, claims))


def run(endpoint: str, mode: str, scenario: Scenario, functions: int, seconds: float) -> Run:
    start = time.time() + 1.5  # every process forked and warm before the first call
    parts = in_processes(
        _worker, [(endpoint, mode, scenario, start, seconds)] * functions, timeout=120
    )
    moments = sorted(m - start for part in parts for m in part.moments)
    return Run(moments, sum(part.claims for part in parts))


def busiest_second(moments: list[float]) -> int:
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def report(label: str, result: Run, quota: float, seconds: float) -> None:
    # The first seconds spend the bucket's burst (a second's quota, unused while the processes
    # start); the steady rate is what follows.
    steady = [m for m in result.moments if STEADY_FROM <= m < seconds]
    rate = len(steady) / (seconds - STEADY_FROM)
    line = (
        f"  {label:<26} {rate:7.1f} calls/s steady ({rate / quota:5.2f}x the quota), "
        f"busiest second {busiest_second(result.moments):5d} (a bucket allows {2 * quota:.0f})"
    )
    if result.claims:
        per_call = result.claims / max(1, len(result.moments))
        cost = per_call * PRICE_PER_MILLION_WRITES
        line += (
            f"; {result.claims} DynamoDB writes, {per_call:.3f} per ECR call "
            f"(${cost:.3f} per million ECR calls)"
        )
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with EmbeddedAWS(port=0) as embedded:
        configure_environment(embedded.endpoint_url)
        get_settings.cache_clear()
        bootstrap(aws.session(), account=ACCOUNT, region=REGION)
        aws.session().client("dynamodb", region_name=REGION)  # models loaded before the fork
        share = get_settings().pacing_fallback_share
        print(
            f"{args.functions} concurrent functions, {args.seconds:.0f} s each run "
            f"(fallback share {share:.0%} of the quota); load average {os.getloadavg()[0]:.2f} "
            f"on {os.cpu_count()} cores (pacing is only as punctual as the processes get the CPU)"
        )
        for scenario in SCENARIOS:
            quota = ECR_TPS[scenario.operation]
            print(f"{scenario.name}; quota {quota:.0f}/s per account and region")
            modes = [
                ("per process (before)", "per-process"),
                ("shared bucket (DynamoDB)", "shared"),
                ("pacing table unreachable", "unreachable"),
            ]
            for label, mode in modes:
                result = run(embedded.endpoint_url, mode, scenario, args.functions, args.seconds)
                report(label, result, quota, args.seconds)


if __name__ == "__main__":
    main()
