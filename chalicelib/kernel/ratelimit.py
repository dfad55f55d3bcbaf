"""Token buckets in one process, and the TPS ECR documents per operation (its "API rate quotas").

ECR throttles per account and region with token buckets; a copy that makes thousands of
upload-layer-part calls should spend its budget evenly rather than find the limit by
`ThrottlingException`. The buckets ECR's calls wait on are shared by every function
(`chalicelib.kernel.pacing`), which falls back to the local `TokenBucket` here; the gateway's
adaptive retries still absorb whatever throttling other clients of the same account cause.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# Default rate quotas per account and region (Service Quotas, API rate quotas), keyed by the
# gateway's snake_case operation names. Operations without a published rate are not paced here.
ECR_TPS: dict[str, float] = {
    "batch_check_layer_availability": 1000,
    "batch_get_image": 2000,
    "complete_layer_upload": 100,
    "get_authorization_token": 500,
    "get_download_url_for_layer": 3000,
    "initiate_layer_upload": 100,
    "put_image": 10,
    "upload_layer_part": 500,
}


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; `acquire` waits for one token."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting, for benchmarks

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens`, sleeping until they are there; returns the seconds waited."""
        with self._lock:
            self._refill()
            self._tokens -= tokens
            # A negative balance is a queue: each caller waits for its own share of the refill.
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.waited += wait
        if wait:
            self._sleep(wait)
        return wait

    def try_acquire(self, tokens: float = 1.0, *, take: bool = True) -> float:
        """Take `tokens` if they are there now and return 0; otherwise take nothing and return
        the seconds until they will be (a request refused with 429 does not queue). With
        `take=False`, only tell."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                if take:
                    self._tokens -= tokens
                return 0.0
            return (tokens - self._tokens) / self.rate


class RateLimiter:
    """One bucket per operation; callable as the gateway's `limiter(operation)` hook."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.buckets = {
            operation: TokenBucket(rate, clock=clock, sleep=sleep)
            for operation, rate in (ECR_TPS if rates is None else rates).items()
        }

    def __call__(self, operation: str) -> None:
        bucket = self.buckets.get(operation)
        if bucket is not None:
            bucket.acquire()


class KeyedBuckets:
    """One bucket per key (a caller, a source address), the `size` most recently used kept: a
    flood of new keys evicts old buckets instead of growing memory. An evicted key starts again
    with a full bucket, so `size` must exceed the keys active within one refill."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        size: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.size = size
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def try_acquire(self, key: str, *, take: bool = True) -> float:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(self.rate, self.burst, clock=self._clock)
                self._buckets[key] = bucket
                if len(self._buckets) > self.size:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
        return bucket.try_acquire(take=take)


def retry_after(seconds: float) -> str:
    """A `Retry-After` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
