"""Fault injection in front of the embedded endpoint: a botocore `before-send` hook.

Every request an AWS client of the service sends (ECR, DynamoDB, SQS, EventBridge, STS, SSM)
passes the hook first. At a seeded rate per service, it answers instead of the endpoint:

- `throttle`: a 400 with the service's throttling error code;
- `server`: a 500 with the service's internal-failure code;
- `drop`: the connection closes before the request is sent (`ConnectionClosedError`);
- `lost`: the request is sent and applied, then the connection resets before the answer
  arrives (`ConnectionClosedError`), so a retry repeats a write that already happened.

botocore's own retries see exactly what they would see on AWS. `fast_backoff()` shrinks
botocore's backoff so a suite with thousands of injected faults stays fast; the decisions
(what is retried, what raises) are unchanged.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session
from botocore.retries import adaptive, standard

from chalicelib.kernel import aws

KINDS = ("throttle", "server", "drop", "lost")

THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException", "sts": "Throttling"}
SERVER_CODES = {"ecr": "ServerException", "dynamodb": "InternalServerError"}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


class FaultInjector:
    """Answers a seeded share of requests with a fault. `rates` maps a service (botocore's
    hyphenated service id, lower-case: `ecr`, `dynamodb`, `sqs`, `eventbridge`, `sts`, `ssm`)
    to {kind: probability}; `operations` limits faults to those operation names."""

    def __init__(
        self,
        rates: Mapping[str, Mapping[str, float]],
        *,
        seed: int = 0,
        operations: set[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self.rates = {service: dict(kinds) for service, kinds in rates.items()}
        self.operations = operations
        # At most this many faults in all (None: no limit), e.g. only the first request fails.
        self.limit = limit
        self.injected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._sender: URLLib3Session | None = None

    def install(self, *, keep_session: bool = False) -> FaultInjector:
        """Hook every client of the service built from now on (existing ones are forgotten;
        with `keep_session`, the session and the models it loaded are kept)."""
        aws.reset(keep_session=keep_session)
        aws.session()._session.register("before-send", self._before_send)
        return self

    def _choose(self, service: str, operation: str) -> str | None:
        with self._lock:
            self.requests[service] += 1
            if self.operations is not None and operation not in self.operations:
                return None
            if self.limit is not None and sum(self.injected.values()) >= self.limit:
                return None
            roll = self._random.random()
            for kind, rate in self.rates.get(service, {}).items():
                if roll < rate:
                    self.injected[f"{service}:{kind}"] += 1
                    return kind
                roll -= rate
        return None

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        _hook, service, operation = event_name.split(".", 2)  # before-send.<service>.<Operation>
        kind = self._choose(service.lower(), operation)
        if kind is None:
            return None
        if kind == "drop":
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "lost":
            if self._sender is None:
                self._sender = URLLib3Session()
            self._sender.send(request)  # applied by the endpoint; the answer never arrives
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "throttle":
            code = THROTTLE_CODES.get(service.lower(), "ThrottlingException")
            return _error(request, 400, code, "Rate exceeded (injected)")
        code = SERVER_CODES.get(service.lower(), "InternalFailure")
        return _error(request, 500, code, "Internal failure (injected)")


def _error(request: Any, status: int, code: str, message: str) -> AWSResponse:
    content_type = str(request.headers.get("Content-Type", ""))
    if "json" in content_type:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": content_type, "x-amzn-RequestId": "injected"}
    else:  # query protocol (STS): an XML error document
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    return AWSResponse(request.url, status, headers, _Body(body))


@contextmanager
def injected(
    rates: Mapping[str, Mapping[str, float]],
    *,
    seed: int = 0,
    operations: set[str] | None = None,
    limit: int | None = None,
) -> Iterator[FaultInjector]:
    """Faults for the block; afterwards every client is rebuilt without the hook."""
    injector = FaultInjector(rates, seed=seed, operations=operations, limit=limit).install()
    try:
        yield injector
    finally:
        aws.reset()


@contextmanager
def fast_backoff(scale: float = 0.01) -> Iterator[None]:
    """botocore's retry delays times `scale`, and no client-side rate limiting (adaptive mode
    would otherwise hold requests for seconds after injected throttling)."""
    delay = standard.ExponentialBackoff.delay_amount
    sending = adaptive.ClientRateLimiter.on_sending_request
    standard.ExponentialBackoff.delay_amount = lambda self, context: delay(self, context) * scale
    adaptive.ClientRateLimiter.on_sending_request = lambda self, request, **kwargs: None
    try:
        yield
    finally:
        standard.ExponentialBackoff.delay_amount = delay
        adaptive.ClientRateLimiter.on_sending_request = sending
