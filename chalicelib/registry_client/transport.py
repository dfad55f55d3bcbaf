"""One registry endpoint spoken to over pooled urllib3 connections: the auth challenge answered
(Basic or a bearer token per scope), 429 and 5xx retried after `Retry-After`, redirects followed
(Authorization only ever goes to the registry itself: a blob GET on ECR redirects to S3), and the
embedded ECR's virtual hosts (`<account>.dkr.ecr.<region>.localhost`) reached at their address.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import urllib3

from chalicelib.registry_client.auth import (
    CachedToken,
    Challenge,
    CredentialSource,
    anonymous,
    basic_header,
    parse_challenge,
    token_lifetime,
)
from chalicelib.registry_client.errors import RegistryHTTPError

REDIRECTS = {301, 302, 303, 307, 308}
RETRIED_STATUSES = {429, 502, 503, 504}
MAX_REDIRECTS = 5
MAX_RETRY_AFTER_SECONDS = 60.0
POOL_SIZE = 16

_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None


def pool() -> urllib3.PoolManager:
    """The process's connection pool: every registry client shares it (keep-alive, TLS reuse)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = urllib3.PoolManager(
                num_pools=32,
                maxsize=POOL_SIZE,
                retries=False,
                timeout=urllib3.Timeout(connect=10.0, read=300.0),
            )
        return _pool


@dataclass(frozen=True)
class Endpoint:
    """Where a registry is: `url` to connect to, `host` to name when it differs (a virtual host of
    the embedded ECR), its credentials and a label that identifies the registry (same label:
    blobs can be mounted across repositories)."""

    url: str
    host: str | None = None
    credentials: CredentialSource = field(default=anonymous, compare=False)
    label: str = ""

    @property
    def public_host(self) -> str:
        return self.host or urlsplit(self.url).netloc

    @property
    def identity(self) -> str:
        return self.label or self.public_host


class RegistryClient:
    """Requests to one registry with its authentication. Thread-safe; share one per registry."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        attempts: int = 6,
        sleep: Any = time.sleep,
        pace: Callable[[str], None] | None = None,
        throttled: Callable[[str], None] | None = None,
        expect: Callable[[str, int], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        # ECR: each /v2 request waits for a token of the API operation it stands for
        # (`chalicelib.kernel.pacing`), so both paths share one registry's quotas, and each 429
        # is reported under that operation.
        self._pace = pace
        self._throttled = throttled
        self._expect = expect
        self.attempts = attempts
        self._sleep = sleep
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._pinged = False
        self._tokens: dict[tuple[str, ...], CachedToken] = {}
        self.requests = 0  # counted for tests and benchmarks

    def expect(self, calls: dict[str, int]) -> None:
        """Tell the pacing how many requests of each operation are coming, so that it claims
        their tokens in one write each (`chalicelib.kernel.pacing`)."""
        if self._expect is not None:
            for operation, n in calls.items():
                self._expect(operation, n)

    # addresses ---------------------------------------------------------------------------------

    def url(self, path: str, query: dict[str, str] | None = None) -> str:
        base = self.endpoint.url.rstrip("/")
        return base + path + (("?" + urlencode(query)) if query else "")

    def _address(self, url: str) -> tuple[str, dict[str, str], bool]:
        """(URL to connect to, extra headers, whether it is the registry itself)."""
        parts = urlsplit(url)
        own = parts.netloc in (self.endpoint.public_host, urlsplit(self.endpoint.url).netloc)
        if own and self.endpoint.host:
            real = urlsplit(self.endpoint.url)
            url = urlunsplit((real.scheme, real.netloc, parts.path, parts.query, ""))
            return url, {"Host": self.endpoint.host}, True
        return url, {}, own

    # authentication ----------------------------------------------------------------------------

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credentials = self.endpoint.credentials()
            return basic_header(credentials) if credentials else None
        if challenge.scheme == "bearer":
            with self._lock:
                cached = self._tokens.get(scopes)
            if cached is not None and cached.fresh():
                return cached.header
            return self._fetch_token(challenge, scopes)
        return None

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.params.get("realm", "")
        query: list[tuple[str, str]] = []
        if "service" in challenge.params:
            query.append(("service", challenge.params["service"]))
        query += [("scope", s) for s in scopes]
        url, headers, _ = self._address(realm + ("?" + urlencode(query) if query else ""))
        credentials = self.endpoint.credentials()
        if credentials:
            headers["Authorization"] = basic_header(credentials)
        self.requests += 1
        response = pool().request("GET", url, headers=headers, redirect=True, retries=False)
        if response.status != 200:
            raise RegistryHTTPError.from_body(response.status, response.data, realm)
        document = json.loads(response.data)
        token = document.get("token") or document.get("access_token")
        if not token:
            raise RegistryHTTPError(response.status, "UNAUTHORIZED", "no token in answer", realm)
        cached = CachedToken(f"Bearer {token}", token_lifetime(document))
        with self._lock:
            self._tokens[scopes] = cached
        return cached.header

    def _learn(self, response: urllib3.BaseHTTPResponse) -> None:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        with self._lock:
            self._challenge = challenge
            self._pinged = True
            self._tokens.clear()

    def ping(self) -> None:
        """`GET /v2/`: learn the registry's challenge; RegistryHTTPError when nothing there
        speaks the distribution API (connection errors propagate as they are)."""
        response = self._send("GET", self.url("/v2/"), {}, None, stream=False)
        if response.status == 401:
            self._learn(response)
            return
        if response.status != 200:
            raise RegistryHTTPError.from_body(response.status, response.data, self.url("/v2/"))
        with self._lock:
            self._pinged = True

    def authorize(self, scopes: tuple[str, ...]) -> None:
        """Learn the registry's challenge before a request whose body streams and so cannot be
        sent twice, and fetch a token for its scopes."""
        if not self._pinged:
            self.ping()
        self._authorization(scopes)

    # requests ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | Iterable[bytes] | None,
        *,
        stream: bool,
        authorization: str | None = None,
        redirect: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        for _ in range(MAX_REDIRECTS + 1):
            target, extra, own = self._address(url)
            sent = {**headers, **extra}
            if own and authorization:
                sent["Authorization"] = authorization
            self.requests += 1
            response = pool().request(
                method,
                target,
                body=body,
                headers=sent,
                preload_content=not stream,
                redirect=False,
                retries=False,
            )
            location = response.headers.get("Location")
            if not (redirect and response.status in REDIRECTS and location and body is None):
                return response
            response.drain_conn()
            response.release_conn()
            url = urljoin(url, location)
        raise RegistryHTTPError(310, "TOO_MANY_REDIRECTS", "redirect loop", url)

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        stream: bool = False,
        redirect: bool = True,
        expect: Iterable[int] = (200,),
        operation: str | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request with the scopes' authorization; answer a challenge once, back off on
        429 and 5xx (only a body that can be sent again is retried). A status outside `expect`
        raises RegistryHTTPError."""
        replayable = body is None or isinstance(body, bytes)
        expected = set(expect)
        challenged = False
        for attempt in range(self.attempts):
            if self._pace is not None and operation:
                self._pace(operation)
            response = self._send(
                method,
                url,
                dict(headers or {}),
                body,
                stream=stream,
                authorization=self._authorization(scopes),
                redirect=redirect,
            )
            if response.status == 401 and not challenged and replayable:
                challenged = True
                _discard(response)
                self._learn(response)
                continue
            if response.status == 429 and self._throttled is not None and operation:
                self._throttled(operation)
            if response.status in RETRIED_STATUSES and replayable and attempt < self.attempts - 1:
                _discard(response)
                self._sleep(retry_after(response.headers.get("Retry-After"), attempt))
                continue
            if response.status == 401:
                self._learn(response)  # an expired token: the caller's retry asks for a new one
            if response.status not in expected:
                data = response.read() if stream else response.data
                _discard(response)
                raise RegistryHTTPError.from_body(response.status, data or b"", url)
            return response
        raise AssertionError("unreachable")

    def json(
        self, url: str, *, scopes: tuple[str, ...], headers: dict[str, str] | None = None
    ) -> Any:
        return json.loads(self.request("GET", url, scopes=scopes, headers=headers).data)


def retry_after(header: str | None, attempt: int) -> float:
    """Seconds to wait: the registry's `Retry-After` in seconds (capped), else exponential."""
    if header:
        try:
            return min(max(float(header), 0.0), MAX_RETRY_AFTER_SECONDS)
        except ValueError:  # an HTTP date: fall back to our own backoff
            pass
    return min(0.5 * 2**attempt, MAX_RETRY_AFTER_SECONDS)


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    try:
        response.drain_conn()
    finally:
        response.release_conn()


def stream_chunks(response: urllib3.BaseHTTPResponse, chunk: int) -> Iterator[bytes]:
    """The body in pieces of at most `chunk` bytes (never whole in memory), then released."""
    try:
        yield from response.stream(chunk, decode_content=False)
    finally:
        response.release_conn()
