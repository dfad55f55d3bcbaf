"""Pacing shared by every function (`chalicelib.kernel.pacing`), against the embedded DynamoDB:
processes claiming from one bucket stay within the quota together; DynamoDB failing leaves calls
paced locally, counted; ECR's throttling is counted per operation."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import pytest

import app
from chalicelib.kernel import aws as kernel_aws
from chalicelib.kernel.observability import flush_metrics
from chalicelib.kernel.pacing import FALLBACK_SECONDS, Pacer, pacer_for
from chalicelib.kernel.ratelimit import ECR_TPS, RateLimiter
from chalicelib.kernel.settings import DEFAULT_PACING_TABLE
from steward_tools.local.runner import LocalLambdaContext
from steward_tools.samples import build_image
from tests.conftest import ACCOUNT, REGION
from tests.faults import fast_backoff, injected
from tests.imagefactory import push_built
from tests.integration.test_reliability import push_event

START = 1_800_000_000.0  # epoch seconds: the table's clock is the wall clock


class Process:
    """A simulated function: its own clock, which only its own sleeps (and calls) advance."""

    def __init__(self) -> None:
        self.now = START
        self.calls: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(
    processes: list[Process],
    limiters: Sequence[Callable[[str], None]],
    operation: str,
    calls_each: int,
    latency: float = 0.0,
) -> list[float]:
    """Each process makes `calls_each` calls of `operation` as fast as its limiter lets it, each
    call taking `latency`; the process furthest behind in time goes next, so the table sees the
    claims in the order of their moments. Returns every call's moment, sorted."""
    while any(len(p.calls) < calls_each for p in processes):
        index = min(
            (i for i, p in enumerate(processes) if len(p.calls) < calls_each),
            key=lambda i: processes[i].now,
        )
        limiters[index](operation)
        processes[index].calls.append(processes[index].now)
        processes[index].now += latency
    return sorted(t for p in processes for t in p.calls)


def busiest(moments: list[float], window: float) -> int:
    """The most calls in any window of `window` seconds."""
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= window - 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


def shared_pacers(processes: list[Process], **kwargs: Any) -> list[Pacer]:
    return [
        Pacer(ACCOUNT, REGION, table=DEFAULT_PACING_TABLE, clock=p.clock, sleep=p.sleep, **kwargs)
        for p in processes
    ]


def test_two_processes_sharing_a_bucket_never_exceed_the_quota_together(aws) -> None:
    rate = ECR_TPS["put_image"]  # 10/s, burst of one second's worth
    processes = [Process(), Process()]
    pacers = shared_pacers(processes)
    moments = run(processes, pacers, "put_image", calls_each=60, latency=0.02)

    for window in (1.0, 5.0, 10.0):
        assert busiest(moments, window) <= rate + rate * window, window
    # The quota is used, not wasted: 120 calls take the 11 s that 10/s after a full burst allows.
    assert moments[-1] - moments[0] == pytest.approx((120 - rate) / rate, abs=0.5)
    # Claimed in the order the writes landed: neither process starves the other, both finish
    # their 60 calls within a call of each other.
    assert abs(processes[0].calls[-1] - processes[1].calls[-1]) <= 1 / rate + 0.02
    # PutImage claims one token at a time: a write per call (two when the guess of the
    # bucket's state was wrong).
    claims = sum(p.buckets["put_image"].claims for p in pacers)
    assert 120 <= claims <= 130

    # Today's buckets per process, for the same two processes: twice the quota.
    processes = [Process(), Process()]
    local = [RateLimiter(clock=p.clock, sleep=p.sleep) for p in processes]
    moments = run(processes, local, "put_image", calls_each=60, latency=0.02)
    assert busiest(moments, 5.0) > 2 * rate * 5


def test_a_claim_stands_for_the_moment_it_is_sent_not_when_it_was_asked_for(aws) -> None:
    """A cold process builds its DynamoDB client first (tens of milliseconds on Lambda, here
    half a second): the full bucket it finds is the bucket of the moment the write goes out,
    or two processes would be granted that half second's refill on top of the burst."""
    rate = ECR_TPS["put_image"]
    processes = [Process(), Process()]

    def slow_first_client(process: Process) -> Callable[[], Any]:
        built: list[bool] = []

        def client() -> Any:
            if not built:
                built.append(True)
                process.sleep(0.5)
            return kernel_aws.client("dynamodb")

        return client

    pacers = [
        Pacer(
            ACCOUNT,
            REGION,
            table=DEFAULT_PACING_TABLE,
            client=slow_first_client(p),
            clock=p.clock,
            sleep=p.sleep,
        )
        for p in processes
    ]
    moments = run(processes, pacers, "put_image", calls_each=20)
    assert busiest(moments, 1.0) <= rate + rate * 1.0


def test_fast_operations_claim_in_batches_within_the_quota(aws) -> None:
    rate = ECR_TPS["upload_layer_part"]  # 500/s
    processes = [Process(), Process(), Process()]
    pacers = shared_pacers(processes)
    moments = run(processes, pacers, "upload_layer_part", calls_each=1000, latency=0.001)

    for window in (0.5, 1.0, 4.0):
        assert busiest(moments, window) <= rate + rate * window + 1, window
    claims = sum(p.buckets["upload_layer_part"].claims for p in pacers)
    assert claims < 3000 / 10  # batches of up to 25 tokens: a write per tenth of the calls at most
    item = boto3.client("dynamodb").get_item(
        TableName=DEFAULT_PACING_TABLE,
        Key={"id": {"S": f"{ACCOUNT}|{REGION}|upload_layer_part"}},
    )["Item"]
    assert float(item["tat"]["N"]) >= moments[-1] - 1 / rate
    assert int(item["expires_at"]["N"]) > START


def test_calls_announced_ahead_are_claimed_in_one_write(aws) -> None:
    """A copy of 8 layers says so before it starts: each operation's first claim takes its 8
    tokens (up to the batch cap) in one write instead of batches of 1, 2, 4, 1."""
    told, untold = Process(), Process()
    told.now += 10.0  # a bucket of its own moment: the two runs do not share a burst
    announced, unannounced = shared_pacers([told, untold])
    announced.expect("upload_layer_part", 8)
    announced.expect("initiate_layer_upload", 8)  # its batch cap is 5
    for operation in ("upload_layer_part", "initiate_layer_upload"):
        run([told], [announced], operation, calls_each=8)
        untold.calls.clear()
        run([untold], [unannounced], operation, calls_each=8)
        told.calls.clear()
    assert announced.buckets["upload_layer_part"].claims == 1
    assert announced.buckets["initiate_layer_upload"].claims == 2  # 5, then the next batch
    assert unannounced.buckets["upload_layer_part"].claims >= 4
    announced.expect("describe_images", 8)  # not paced: nothing to claim


def emitted(capsys: pytest.CaptureFixture[str], metric: str) -> dict[str, float]:
    """The metric's values by operation in the EMF lines flushed so far."""
    flush_metrics()
    found: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and metric in line:
            document = json.loads(line)
            value = document[metric]
            value = sum(value) if isinstance(value, list) else value
            operation = document.get("Operation", "")
            found[operation] = found.get(operation, 0.0) + value
    return found


def test_a_table_that_cannot_be_reached_leaves_calls_paced_locally_and_counted(aws, capsys) -> None:
    process = Process()
    pacer = Pacer(
        ACCOUNT,
        REGION,
        table="no-such-table",
        fallback_share=0.2,
        clock=process.clock,
        sleep=process.sleep,
    )
    for _ in range(12):
        pacer("put_image")
        process.calls.append(process.now)
    # 20 % of 10/s after a burst of 2: calls go on, at 2/s.
    assert process.calls[-1] - process.calls[0] == pytest.approx(5.0)
    assert emitted(capsys, "EcrPacingFallback") == {"PutImage": 12}

    # The table is tried again after FALLBACK_SECONDS: once it is there, the process shares it.
    bucket = pacer.buckets["put_image"]
    bucket.table = DEFAULT_PACING_TABLE
    process.sleep(FALLBACK_SECONDS)
    claims = bucket.claims
    pacer("put_image")
    assert bucket.claims > claims
    assert emitted(capsys, "EcrPacingFallback") == {}


def test_transient_dynamodb_errors_are_retried_then_paced_locally(aws, capsys) -> None:
    process = Process()
    pacer = Pacer(
        ACCOUNT, REGION, table=DEFAULT_PACING_TABLE, clock=process.clock, sleep=process.sleep
    )
    with fast_backoff(), injected({"dynamodb": {"server": 1.0}}) as faults:
        pacer("put_image")
    # botocore's standard retries, as every AWS call: 5 attempts, then the local bucket.
    assert faults.injected["dynamodb:server"] == 5
    assert emitted(capsys, "EcrPacingFallback") == {"PutImage": 1}


TAGGING_POLICY = """
tagging:
  - repositories: ["team/*"]
    semver_aliases: true
    latest: true
"""


def test_ecr_throttling_is_counted_per_operation_and_the_push_still_lands(
    aws, registry, policy_file, capsys
) -> None:
    policy_file(TAGGING_POLICY)
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[64], seed=7)
    push_built(registry, image, "team/app", tag="1.2.3")
    boto3.client("sqs").purge_queue(QueueUrl=aws.resources.events_queue_url)
    capsys.readouterr()
    event = push_event("team/app", image.manifest.digest, "1.2.3", "throttled-push-1")
    throttling = injected({"ecr": {"throttle": 1.0}}, operations={"PutImage"}, limit=3)
    with fast_backoff(), throttling as faults:
        result = app.on_ecr_event(event, LocalLambdaContext())  # flushes its metrics
    assert faults.injected["ecr:throttle"] == 3
    assert {"1.2", "1", "latest"} <= set(registry.describe_image("team/app", tag="1.2.3").tags)
    assert result
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "EcrThrottled" in x]
    assert [(x["Operation"], x["EcrThrottled"]) for x in lines] == [("PutImage", [3.0])]
    dimensions = lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert ["service"] in dimensions  # what the alarm watches: every operation together


def test_the_functions_gateway_claims_from_the_shared_table(aws, registry, policy_file) -> None:
    policy_file(TAGGING_POLICY)
    registry.create_repository("team/app")
    image = build_image(layer_sizes=[64], seed=8)
    push_built(registry, image, "team/app", tag="2.0.0")
    app.on_ecr_event(
        push_event("team/app", image.manifest.digest, "2.0.0", "shared-push-1"),
        LocalLambdaContext(),
    )
    table = boto3.client("dynamodb").scan(TableName=DEFAULT_PACING_TABLE)["Items"]
    assert {item["id"]["S"] for item in table} >= {
        f"{ACCOUNT}|{REGION}|put_image",
        f"{ACCOUNT}|{REGION}|batch_get_image",
    }
    assert pacer_for(ACCOUNT, REGION) is pacer_for(ACCOUNT, REGION)
    kernel_aws.reset()  # a reset (new endpoint, new region) forgets the process's pacers
