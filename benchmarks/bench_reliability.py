"""Reliability figures under concurrency and injected faults, against the embedded backend.

    .venv/bin/python benchmarks/bench_reliability.py [--runs 20] [--backoff 0.1]

- **Convergence**: `--runs` runs of 16 concurrent pushes of one minor line (1.4.0..1.4.15) from
  8 processes, with 30% throttling and 5% dropped connections on ECR. Counted: runs whose
  aliases (`1.4`, `1`, `latest`) end on 1.4.15 straight from the events, runs a sweep repaired,
  runs left wrong; every tag resolving; events lost. Side by side with the same runs without
  the re-read after a raced write (the baseline: read, plan, apply, nothing re-checks).
- **Faults on ECR, DynamoDB and SQS together at 20%**, one request per AWS call (the faults
  reach Lambda's retries): events processed, dead-lettered, and whether redriving the dead
  letters ends in the state of a fault-free run.
- **ECR calls per push** with tagging, the gate and replication all reacting: a push that adds
  aliases, and a converged push.

botocore's backoff is scaled by `--backoff` (1.0 is botocore's own) so a run takes seconds;
a longer backoff widens the race the re-read closes. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import boto3

import app
from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.gate.records import records
from chalicelib.kernel import aws as aws_clients
from chalicelib.kernel.settings import get_settings
from chalicelib.sweep import jobs as sweep
from chalicelib.tagging import react as tagging_react
from steward_tools.local.runner import LocalLambdaContext, configure_environment
from steward_tools.local.server import EmbeddedAWS, bootstrap
from steward_tools.samples import build_image
from tests.concurrency import (
    ACCOUNT,
    REGION,
    Outcome,
    invoke_like_lambda,
    push_event,
    run_pushers,
    tags_by_digest,
)
from tests.imagefactory import push_built

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
replication:
  - name: mirror
    repositories: ["team/calls"]
    triggers: [push]
    destinations:
      - repository: "mirror/{repository}"
"""
RELEASES = [(f"1.4.{n}", 900 + n) for n in range(16)]


def sweep_once(repository: str) -> None:
    registry = registries.registry(ACCOUNT, REGION)
    job = sweep.RepositoryJob(
        sweep_id="bench",
        account=ACCOUNT,
        region=REGION,
        repository=registry.describe_repository(repository),
        started_at=datetime.now(UTC),
    )
    sweep.run_repository_job(job, datetime.now(UTC))


def aliases_on_top(registry: Registry, repository: str) -> bool:
    tags = tags_by_digest(registry, repository)
    top = next(t for t in tags.values() if "1.4.15" in t)
    return {"1.4", "1", "latest"} <= top


def convergence(endpoint: str, runs: int, label: str, backoff: float) -> None:
    registry = Registry(region=REGION, session=boto3.session.Session())
    straight = repaired = wrong = unresolved = lost = 0
    started = time.monotonic()
    outcome = Outcome()
    for run in range(runs):
        repository = f"team/{label.split()[0]}-{run}"
        registry.create_repository(repository)
        part = run_pushers(
            endpoint,
            repository,
            RELEASES,
            processes=8,
            rates={"ecr": {"throttle": 0.30, "drop": 0.05}},
            seed=run + 1,
            backoff=backoff,
        )
        if part.crashes:
            raise RuntimeError(f"a worker crashed:\n{part.crashes[0]}")
        outcome.retries += part.retries
        outcome.injected.update(part.injected)
        lost += len(RELEASES) - part.statuses["handled"] - len(part.dead_letters)
        if aliases_on_top(registry, repository):
            straight += 1
        else:
            sweep_once(repository)
            if aliases_on_top(registry, repository):
                repaired += 1
            else:
                wrong += 1
        for tag, _ in RELEASES:
            if tag not in registry.describe_image(repository, tag=tag).tags:
                unresolved += 1
    seconds = time.monotonic() - started
    print(
        f"  {label:<22} aliases on 1.4.15: {straight}/{runs} from the events, "
        f"{repaired} repaired by one sweep, {wrong} wrong; tags not resolving: {unresolved}; "
        f"events lost: {lost}; Lambda retries: {outcome.retries}; "
        f"faults injected: {dict(outcome.injected)}; {seconds / runs:.1f} s a run"
    )


def faults_and_redrive(endpoint: str) -> None:
    registry = Registry(region=REGION, session=boto3.session.Session())
    for name in ("team/faulty", "team/clean"):
        registry.create_repository(name)
    each = {"throttle": 0.08, "server": 0.04, "drop": 0.04, "lost": 0.04}
    faulty = run_pushers(
        endpoint,
        "team/faulty",
        RELEASES,
        processes=4,
        rates={"ecr": each, "dynamodb": each, "sqs": each},
        seed=77,
        attempts=1,
    )
    redriven = Outcome()
    for letter in faulty.dead_letters:
        invoke_like_lambda(letter["event"], redriven)
    run_pushers(endpoint, "team/clean", RELEASES, processes=1, rates={}, seed=78)
    same_tags = tags_by_digest(registry, "team/faulty") == tags_by_digest(registry, "team/clean")
    decisions = [
        {r.digest: (r.status, r.applied) for r in records().for_repository(name)}
        for name in ("team/faulty", "team/clean")
    ]
    reasons = sorted({letter["reason"].split(":")[0] for letter in faulty.dead_letters})
    print(
        f"  {len(RELEASES)} events, 4 processes: {faulty.statuses['handled']} processed, "
        f"{faulty.retries} Lambda retries, {len(faulty.dead_letters)} dead-lettered "
        f"({', '.join(reasons) or '-'}); redriven: {redriven.statuses['handled']} processed; "
        f"end state equals the fault-free run: tags {same_tags}, gate decisions "
        f"{decisions[0] == decisions[1]}; faults injected: {sum(faulty.injected.values())}"
    )


def calls_per_push() -> None:
    registry = Registry(region=REGION, session=boto3.session.Session())
    registry.create_repository("team/calls")
    registry.create_repository("mirror/team/calls")
    digest = push_built(registry, build_image([64], seed=5), "team/calls", "2.0.0")
    gateway = registries.registry(ACCOUNT, REGION)
    for label, tag in (("push adding 3 aliases", "2.0.0"), ("converged push (alias)", "2.0")):
        gateway.calls.clear()
        app.on_ecr_event(
            push_event("team/calls", digest, tag, f"calls-{tag}"), LocalLambdaContext()
        )
        calls = dict(sorted(gateway.calls.items()))
        print(f"  {label:<24} {sum(calls.values())} ECR calls {calls}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backoff", type=float, default=0.1)
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # figures, not metric lines
    with tempfile.TemporaryDirectory() as scratch, EmbeddedAWS(port=0) as embedded:
        configure_environment(embedded.endpoint_url)
        policy = Path(scratch) / "policy.yaml"
        policy.write_text(POLICY)
        os.environ["STEWARD_POLICY"] = str(policy)
        get_settings.cache_clear()
        bootstrap(boto3.session.Session(), account=ACCOUNT, region=REGION)
        aws_clients.reset()
        print(
            f"Convergence: 16 pushes of 1.4.x from 8 processes, 30% throttling and 5% "
            f"dropped connections on ECR, backoff x{args.backoff}"
        )
        convergence(embedded.endpoint_url, args.runs, "re-read when raced", args.backoff)
        rounds = tagging_react.MAX_ROUNDS
        tagging_react.MAX_ROUNDS = 0  # the baseline: nothing re-checks after writing
        try:
            convergence(embedded.endpoint_url, args.runs, "baseline (no re-read)", args.backoff)
        finally:
            tagging_react.MAX_ROUNDS = rounds
        print("Faults at 20% on ECR, DynamoDB and SQS together, one request per AWS call")
        faults_and_redrive(embedded.endpoint_url)
        print("ECR calls per push (tagging, gate and replication react)")
        calls_per_push()


if __name__ == "__main__":
    main()
