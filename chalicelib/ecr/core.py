"""The gateway's core: the ECR clients of one registry, how a call is made (pacing, retries, error
mapping), and ECR's batch and page limits. The calls live in one module per kind of resource
(`repositories`, `images`, `layers`, `scans`), mixed into `chalicelib.ecr.gateway.Registry`."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO, Any

from botocore import xform_name
from botocore.config import Config

from chalicelib.ecr.errors import (
    Throttled,
    _translate,
)
from chalicelib.kernel import aws
from chalicelib.kernel.errors import THROTTLING_CODES
from chalicelib.kernel.pacing import count_throttled

BATCH_IMAGE_IDS = 100
BATCH_LAYER_DIGESTS = 100
PAGE_SIZE = 1000
REFERRERS_PAGE = 50  # list-image-referrers' largest page
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 10 * 1024 * 1024
ARN_ADDRESSED_OPERATIONS = frozenset({"list_tags_for_resource", "tag_resource", "untag_resource"})


class GatewayCore:
    """ECR in one account and region. Clients are built lazily so importing costs nothing."""

    def __init__(
        self,
        *,
        region: str | None = None,
        registry_id: str | None = None,
        client: Any = None,
        session: Any = None,
        max_attempts: int = 10,
        limiter: Callable[[str], None] | None = None,
    ) -> None:
        # Paces each call by operation (`chalicelib.kernel.pacing`) before it is sent.
        self._limiter = limiter
        self._region = region
        self._registry_id = registry_id
        self._client = client
        self._client_injected = client is not None
        self._single_attempt: Any = None
        self._session = session
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        # ECR calls made, by operation: benchmarks and tests read it to count cost.
        self.calls: Counter[str] = Counter()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build_client("adaptive", self._max_attempts + 1)
        return self._client

    @property
    def single_attempt_client(self) -> Any:
        """A client that never retries, for calls where ECR's LimitExceededException is a quota
        answer (start-image-scan: once per image per day), which botocore's retry modes would
        otherwise retry as throttling for a minute. Throttling is retried by the caller."""
        if self._single_attempt is None:
            with self._lock:
                if self._single_attempt is None:
                    self._single_attempt = (
                        self._client if self._client_injected else self._build_client("standard", 1)
                    )
        return self._single_attempt

    def _build_client(self, mode: str, total_attempts: int) -> Any:
        session = self._session or aws.session()
        client = session.client(
            "ecr",
            region_name=self._region,
            config=Config(
                # botocore's `max_attempts` counts retries; `total_max_attempts` counts requests.
                retries={"mode": mode, "total_max_attempts": total_attempts},
                max_pool_connections=32,
            ),
        )
        client.meta.events.register("needs-retry.ecr", _count_throttling)
        return client

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    @property
    def registry_id(self) -> str | None:
        """The account whose registry this is, when named (else the caller's own)."""
        return self._registry_id

    @property
    def endpoint_url(self) -> str:
        """Where the control API is (ECR's, or the embedded backend's)."""
        return str(self.client.meta.endpoint_url)

    def _ids(self) -> dict[str, str]:
        return {"registryId": self._registry_id} if self._registry_id else {}

    def _pace(self, operation: str) -> None:
        self.calls[operation] += 1
        if self._limiter is not None:
            self._limiter(operation)

    def _call(self, operation: str, *, _via: Any = None, **params: Any) -> dict[str, Any]:
        self._pace(operation)
        try:
            # Tag operations name the repository by ARN and take no registryId.
            ids = {} if operation in ARN_ADDRESSED_OPERATIONS else self._ids()
            client = _via if _via is not None else self.client
            response: dict[str, Any] = getattr(client, operation)(**ids, **params)
        except Exception as error:  # botocore raises several unrelated types
            raise _translate(error, operation) from error
        return response

    def _pages(self, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Each page of a paginated call, following `nextToken`, one call a page as it is read."""
        token: str | None = None
        while True:
            page = self._call(operation, **params, **({"nextToken": token} if token else {}))
            yield page
            token = page.get("nextToken")
            if not token:
                return

    def _call_once_per_quota(
        self, operation: str, attempts: int = 5, **params: Any
    ) -> dict[str, Any]:
        """`_call` where LimitExceededException means "quota reached", not "slow down": only
        real throttling is retried, with exponential backoff."""

        for attempt in range(attempts):
            try:
                return self._call(operation, _via=self.single_attempt_client, **params)
            except Throttled:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")


def _count_throttling(response: Any = None, operation: Any = None, **_: Any) -> None:
    """botocore's `needs-retry` hook, called after every attempt, retried or not: each answer of
    ECR's that is throttling counts, under the operation's API name. Returns None, which leaves
    the retry decision to botocore."""
    if response is None or operation is None:
        return  # no answer (a connection error)
    code = response[1].get("Error", {}).get("Code", "")
    if code in THROTTLING_CODES:
        count_throttled(xform_name(operation.name))


def _exclusion_filters(patterns: list[str]) -> list[dict[str, str]]:
    return [{"filterType": "WILDCARD", "filter": p} for p in patterns]


def _read_exactly(reader: IO[bytes], size: int) -> bytes:
    """Read up to `size` bytes, looping over short reads (sockets and pipes return early)."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = reader.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
