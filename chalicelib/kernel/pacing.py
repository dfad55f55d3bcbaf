"""ECR's rate quotas per account and region, shared by every function: token buckets in DynamoDB.

ECR throttles each account and region with a token bucket per API (its "API rate quotas"). A
bucket per process (`chalicelib.kernel.ratelimit`) would let 10 concurrent functions make 100
PutImage calls a second against a quota of 10, so each (account, region, operation) with a
published rate has one bucket, an item of the pacing table, that every function claims from.

The item holds `tat`, the moment (epoch seconds) at which the bucket is empty: at `now` it holds
min(burst, (now - tat) * rate) tokens. Claiming k tokens moves `tat` forward by k / rate in one
conditional UpdateItem, and the answer says when each token is due: token i at start + i / rate,
`start` being `tat` before the claim (now - burst / rate for a full bucket). So an empty bucket
costs the claimant a wait it computed, never a second request, and claimants queue in the order
their writes landed. DynamoDB has no min() in update expressions, hence two forms of the write:
"busy" adds to `tat`, "idle" restarts it from a full bucket; each one's condition holds only when
it is the right one, and `tat` never moves back, so at most three writes settle any race.

A process spends its claimed tokens itself, each no earlier than it is due, and drops those it
has not spent `HOLD` seconds after they fell due (or after the claim, for a full bucket's): spent
later, they would crowd a later moment. Any window's calls thus stay within the bucket's bound
(burst + rate * window), plus `HOLD` of the rate, plus the quota of the time a claim takes to
land (a claim finds the bucket of the moment it was sent: milliseconds on DynamoDB).

Batches start at 1 token, double each time one was spent in full and halve when tokens were
dropped, up to `CLAIM_WINDOW` of the rate: PutImage (10/s) always claims 1, UploadLayerPart
(500/s) up to 25, BatchGetImage (2,000/s) up to 100. A function making one call claims one
token; a copy making thousands pays a write per batch.

DynamoDB failing never stops an ECR call. A claim that still fails after botocore's retries (the
client's standard mode, as every AWS call) paces that operation with a local bucket at
`pacing_fallback_share` of the quota for `FALLBACK_SECONDS`, then tries the table again; every
call paced so is counted (`EcrPacingFallback`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.kernel import aws
from chalicelib.kernel.errors import AwsCallError, aws_errors, error_code
from chalicelib.kernel.observability import add_per_operation, logger
from chalicelib.kernel.ratelimit import ECR_TPS, TokenBucket
from chalicelib.kernel.settings import get_settings

# Metrics, per ECR operation (`Operation` dimension, and all operations under `service`).
THROTTLED_METRIC = "EcrThrottled"
WAIT_METRIC = "EcrPacingWait"
CLAIMS_METRIC = "EcrPacingClaims"
FALLBACK_METRIC = "EcrPacingFallback"

# A batch holds at most this many seconds of the quota, and tokens are dropped this long after
# they fell due: a process spends a batch at its own pace, and later than this it would add to a
# later moment's calls.
CLAIM_WINDOW = 0.05
HOLD = 0.25
FALLBACK_SECONDS = 30.0
# Items of registries no longer called expire (TTL attribute `expires_at`).
ITEM_TTL_SECONDS = 86400

_BUSY = "SET tat = if_not_exists(tat, :floor) + :span, expires_at = :ttl"
_BUSY_WHEN = "attribute_not_exists(tat) OR tat >= :floor"
_IDLE = "SET tat = :start, expires_at = :ttl"
_IDLE_WHEN = "attribute_not_exists(tat) OR tat < :floor"


def api_name(operation: str) -> str:
    """The gateway's `put_image` as ECR's API and its quotas name it: `PutImage`."""
    return "".join(word.capitalize() for word in operation.split("_"))


def _number(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 6))}


class SharedBucket:
    """One operation's bucket of one registry: claimed from the pacing table in batches, spent
    locally. `acquire` returns the seconds it waited."""

    def __init__(
        self,
        table: str,
        registry: tuple[str, str],
        operation: str,
        rate: float,
        *,
        burst: float | None = None,
        fallback_share: float = 0.1,
        client: Callable[[], Any] = lambda: aws.client("dynamodb"),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        account, region = registry
        self.table = table
        self.key = f"{account or 'self'}|{region}|{operation}"
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.operation = api_name(operation)
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._cap = max(1, int(rate * CLAIM_WINDOW))
        self._batch = 1
        self._left = 0
        self._next_due = 0.0
        self._claimed_at = 0.0
        self._tat: float | None = None  # the table's `tat` as this process last saw it
        self._in_debt = False  # whether that claim's tokens fell due after it
        self._local_until = 0.0
        self._local = TokenBucket(
            rate * fallback_share, max(1.0, self.burst * fallback_share), clock=clock, sleep=sleep
        )
        self._lock = threading.Lock()
        self.claims = 0  # writes to the table, for tests and benchmarks

    def acquire(self) -> float:
        with self._lock:
            now = self._clock()
            if now < self._local_until:
                due = None
            else:
                try:
                    due = self._take(now)
                except AwsCallError as error:
                    self._local_until = now + FALLBACK_SECONDS
                    logger().warning(
                        "pacing table unavailable: pacing locally",
                        extra={"operation": self.operation, "reason": error.reason},
                    )
                    due = None
        if due is None:
            add_per_operation(FALLBACK_METRIC, self.operation)
            return self._local.acquire()
        wait = max(0.0, due - self._clock())
        if wait:
            self._sleep(wait)
        return wait

    def expect(self, calls: int) -> None:
        """This process is about to make `calls` calls: the next claim takes that many tokens
        at once (up to the batch cap) instead of growing its batch from 1, a write per step."""
        with self._lock:
            if not self._left:
                self._batch = max(self._batch, min(calls, self._cap))

    def _take(self, now: float) -> float:
        """The due time of this process's next token, claiming a batch when none is left."""
        if self._left and now > max(self._next_due, self._claimed_at) + HOLD:
            self._left = 0  # due too long ago: spent now, it would crowd a later moment
            self._batch = max(1, self._batch // 2)
        if not self._left:
            start = self._claim(self._batch)
            self._claimed_at = self._clock()
            self._in_debt = start + 1 / self.rate > now
            self._left = self._batch
            self._next_due = start + 1 / self.rate
        due = self._next_due
        self._next_due += 1 / self.rate
        self._left -= 1
        if not self._left:
            self._batch = min(self._cap, self._batch * 2)
        return due

    def _claim(self, tokens: int) -> float:
        """Claim `tokens` from the table; returns the moment after which they fall due."""
        with aws_errors("dynamodb", "update_item"):
            client = self._client()
            # The moment the write stands for is taken once the client exists (building one
            # takes tens of milliseconds): a full bucket's tokens are granted as of this moment,
            # and every bit it lags behind the write landing is quota granted twice.
            now = self._clock()
            span = tokens / self.rate
            floor = now - self.burst / self.rate
            values = {":floor": _number(floor), ":ttl": {"N": str(int(now) + ITEM_TTL_SECONDS)}}
            # The form to try first: the bucket is still in debt, or was within a burst of it,
            # as this process last saw it. A new process guesses idle: the idle form also
            # creates a missing item, and most first claims (a warm container's first call of
            # an operation, a job of a quiet registry) find the bucket full. A wrong guess
            # costs a second write.
            busy = self._tat is not None and (self._in_debt or self._tat >= floor)
            for _ in range(3):
                self.claims += 1
                add_per_operation(CLAIMS_METRIC, self.operation)
                try:
                    if busy:
                        answer = client.update_item(
                            TableName=self.table,
                            Key={"id": {"S": self.key}},
                            UpdateExpression=_BUSY,
                            ConditionExpression=_BUSY_WHEN,
                            ExpressionAttributeValues={**values, ":span": _number(span)},
                            ReturnValues="UPDATED_NEW",
                        )
                        self._tat = float(answer["Attributes"]["tat"]["N"])
                    else:
                        client.update_item(
                            TableName=self.table,
                            Key={"id": {"S": self.key}},
                            UpdateExpression=_IDLE,
                            ConditionExpression=_IDLE_WHEN,
                            ExpressionAttributeValues={**values, ":start": _number(floor + span)},
                        )
                        self._tat = floor + span
                    return self._tat - span
                except ClientError as error:
                    if error_code(error) != "ConditionalCheckFailedException":
                        raise
                    busy = not busy  # the other form is the right one now
        raise AssertionError("unreachable: `tat` only grows, so the third write holds")


class Pacer:
    """A registry's shared buckets, one per operation with a published rate; the gateway's
    `limiter(operation)` hook. Other operations are not paced here (adaptive retries only)."""

    def __init__(
        self,
        account: str,
        region: str,
        *,
        table: str,
        rates: dict[str, float] | None = None,
        fallback_share: float = 0.1,
        client: Callable[[], Any] = lambda: aws.client("dynamodb"),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = {
            operation: SharedBucket(
                table,
                (account, region),
                operation,
                rate,
                fallback_share=fallback_share,
                client=client,
                clock=clock,
                sleep=sleep,
            )
            for operation, rate in (ECR_TPS if rates is None else rates).items()
        }

    def __call__(self, operation: str) -> None:
        bucket = self.buckets.get(operation)
        if bucket is None:
            return
        waited = bucket.acquire()
        if waited:
            add_per_operation(WAIT_METRIC, bucket.operation, waited, "Seconds")

    def expect(self, operation: str, calls: int) -> None:
        """A hint: `calls` calls of `operation` (the gateway's name) are coming."""
        bucket = self.buckets.get(operation)
        if bucket is not None:
            bucket.expect(calls)


def count_throttled(operation: str) -> None:
    """ECR answered `operation` (the gateway's name) with throttling."""
    add_per_operation(THROTTLED_METRIC, api_name(operation))


_PACERS: dict[tuple[str, str, str], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(account: str, region: str) -> Pacer:
    """The process's pacer for one registry: ECR's quotas are per account and region."""
    settings = get_settings()
    key = (account, region, settings.pacing_table)
    with _PACERS_LOCK:
        if key not in _PACERS:
            _PACERS[key] = Pacer(
                account,
                region,
                table=settings.pacing_table,
                fallback_share=settings.pacing_fallback_share,
            )
        return _PACERS[key]


def _forget() -> None:
    with _PACERS_LOCK:
        _PACERS.clear()


aws.on_reset(_forget)
