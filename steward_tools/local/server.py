"""One local endpoint for every AWS service the steward uses, with the embedded ECR installed.

`EmbeddedAWS` runs moto's WSGI app in a werkzeug thread (like moto's `ThreadedMotoServer`) behind
a small middleware that serves the layer download URLs ECR's GetDownloadUrlForLayer hands out, and
the OCI distribution API (`/v2`, steward_tools/local/registry), on the same port. `bootstrap()`
creates what the deployed stack would: the EventBridge rule, the queue standing in for the Lambda
target, its dead-letter queue and the idempotency table.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

import boto3
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from chalicelib.gate.records import DUE_INDEX
from chalicelib.kernel.settings import (
    DEFAULT_EVENTS_DLQ,
    DEFAULT_GATE_TABLE,
    DEFAULT_IDEMPOTENCY_TABLE,
    DEFAULT_PACING_TABLE,
)

from . import ecr_layers, ecr_responses
from .blobs import BlobStore, iter_file
from .jobs import bootstrap_replication
from .registry import RegistryMiddleware
from .sweep import bootstrap_sweep
from .tables import ensure_table

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BlobDownloadMiddleware:
    """Serves ``/_steward/blobs/...`` (signed, streamed, Range-aware); passes the rest on."""

    def __init__(self, app: WSGIApp, on_reset: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_reset = on_reset

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ecr_layers.BLOB_URL_PREFIX):
            return self._serve_blob(environ, start_response)
        result = self.app(environ, start_response)
        if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST" and self.on_reset:
            # moto's reset API forgets repositories; forget their layer bytes too.
            self.on_reset()
        return result

    @staticmethod
    def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
        body = text.encode()
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def _serve_blob(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._plain(start_response, "405 Method Not Allowed", "Method Not Allowed")
        # PATH_INFO is already percent-decoded by the server.
        parts = environ.get("PATH_INFO", "")[len(ecr_layers.BLOB_URL_PREFIX) :].split("/")
        if len(parts) < 4:
            return self._plain(start_response, "404 Not Found", "Not Found")
        account, region, digest = parts[0], parts[1], unquote(parts[-1])
        repository = unquote("/".join(parts[2:-1]))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            expires = int(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, IndexError, ValueError):
            return self._plain(start_response, "403 Forbidden", "Missing or malformed signature")
        if not ecr_layers.url_signer().verify(
            account, region, repository, digest, expires, signature
        ):
            return self._plain(start_response, "403 Forbidden", "Signature does not match")
        if expires < time.time():
            return self._plain(start_response, "403 Forbidden", "Request has expired")
        if not ecr_layers.serves_layer(account, region, repository, digest):
            # The repository was deleted since the URL was issued.
            return self._plain(start_response, "404 Not Found", "The specified key does not exist.")

        store = ecr_layers.blob_store()
        try:
            handle = store.open_blob(account, region, digest)
        except (OSError, ValueError):
            return self._plain(start_response, "404 Not Found", "The specified key does not exist.")
        size = store.blob_size(account, region, digest)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("Docker-Content-Digest", digest),
            ("ETag", f'"{digest}"'),
        ]
        start, length, status = 0, size, "200 OK"
        byte_range = _parse_range(environ.get("HTTP_RANGE"), size)
        if byte_range == "unsatisfiable":
            handle.close()
            start_response(
                "416 Range Not Satisfiable",
                [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")],
            )
            return [b""]
        if isinstance(byte_range, tuple):
            start, end = byte_range
            length = end - start + 1
            status = "206 Partial Content"
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        headers.append(("Content-Length", str(length)))
        start_response(status, headers)
        if method == "HEAD":
            handle.close()
            return [b""]
        return iter_file(handle, start, length)


# The access key of the backend's own set-up calls (bootstrap of a region): they must not wait for
# the region they are setting up.
SETUP_ACCESS_KEY = "steward-local-setup"
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/")


def signed_region(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    """(access key, region) from a SigV4-signed request's credential scope, or None."""
    found = _CREDENTIAL_SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if found is None:
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
        return (credential[0], credential[2]) if len(credential) >= 3 else None
    return found.group(1), found.group(2)


class RegionMiddleware:
    """Calls `on_region(region)` before the first request a client signs for each region, so that
    the embedded stack exists in every region a client uses, as it would if deployed there."""

    def __init__(self, app: WSGIApp, on_region: Callable[[str], None]) -> None:
        self.app = app
        self.on_region = on_region

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        signed = signed_region(environ)
        if signed is not None and signed[0] != SETUP_ACCESS_KEY:
            self.on_region(signed[1])
        return self.app(environ, start_response)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` range; None means "send it all"."""
    if not header or not header.startswith("bytes=") or "," in header:
        # No range, another unit, or several ranges: a full 200 response is always allowed.
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(size - suffix, 0), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _request_handler(verbose: bool) -> type:
    """moto's request handler, without werkzeug's per-request stderr line unless verbose."""

    class Handler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            if verbose:
                super().log_request(*args, **kwargs)

        def parse_request(self) -> bool:
            # Go clients (docker, skopeo) try TLS first and fall back to plain HTTP only when the
            # answer to their ClientHello is a readable HTTP response; http.server would answer
            # a "HTTP/0.9" error without a status line.
            if self.raw_requestline[:1] == b"\x16":
                body = b"Client sent an HTTPS request to an HTTP server.\n"
                self.wfile.write(
                    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                    b"Connection: close\r\n\r\n" + body
                )
                self.close_connection = True
                return False
            return bool(super().parse_request())

    return Handler


class EmbeddedAWS:
    """moto (with the embedded ECR) served on one port in a background thread.

    Only one may run per process: moto's state is process-wide, so two servers would share it.
    """

    _running: EmbeddedAWS | None = None
    _class_lock = threading.Lock()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        data_dir: Path | None = None,
        *,
        verbose: bool = False,
        region: str = DEFAULT_REGION,
        on_region: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        # Called (once per region is the callee's business) before a region's first request.
        self.on_region = on_region
        # The registry at 127.0.0.1/localhost is this account and region's.
        self.region = region
        self.requested_port = port
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.verbose = verbose
        # Free slot for callers (tests keep their bootstrap() result here).
        self.resources: Any = None
        self._owns_data_dir = False
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._blobs: BlobStore | None = None

    @classmethod
    def running(cls) -> EmbeddedAWS | None:
        """The server currently running in this process, if any."""
        return cls._running

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> EmbeddedAWS:
        if self._server is not None:
            return self
        with EmbeddedAWS._class_lock:
            if EmbeddedAWS._running is not None:
                raise RuntimeError(
                    f"an EmbeddedAWS is already running at {EmbeddedAWS._running.endpoint_url}; "
                    "moto state is process-wide, share that one"
                )
            EmbeddedAWS._running = self
        try:
            self._start()
        except BaseException:
            if self._server is not None:
                self._server.server_close()
                self._server = None
            with EmbeddedAWS._class_lock:
                EmbeddedAWS._running = None
            self._cleanup_data_dir()
            raise
        return self

    def _start(self) -> None:

        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="steward-aws-"))
            self._owns_data_dir = True
        self._blobs = BlobStore(self.data_dir / "blobs")
        ecr_responses.install()
        registry = RegistryMiddleware(
            DomainDispatcherApplication(create_backend_app),
            account=DEFAULT_ACCOUNT,
            region=lambda: self.region,
        )
        app: WSGIApp = BlobDownloadMiddleware(registry, on_reset=self._after_reset)
        if self.on_region is not None:
            app = RegionMiddleware(app, self.on_region)
        self._server = make_server(
            self.host,
            self.requested_port,
            app,
            threaded=True,
            request_handler=_request_handler(self.verbose),
        )
        # The download URLs must name the address we actually listen on (port 0 picks one).
        ecr_layers.configure(
            blobs=self._blobs, base_url=self.endpoint_url, on_region=self.on_region
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-aws", daemon=True
        )
        self._thread.start()
        logger.info("embedded AWS listening on %s", self.endpoint_url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with EmbeddedAWS._class_lock:
            if EmbeddedAWS._running is self:
                EmbeddedAWS._running = None
                ecr_layers.unconfigure()
        self._cleanup_data_dir()

    def _cleanup_data_dir(self) -> None:
        if self._owns_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._owns_data_dir = False

    def reset(self) -> None:
        """Forget every resource in every service, and every stored layer."""

        moto_api_backend.reset()
        self._after_reset()

    def _after_reset(self) -> None:
        if self._blobs is not None:
            self._blobs.clear()
        # Reset drops the backends; the next ones must still be ours.
        ecr_responses.install()

    def __enter__(self) -> EmbeddedAWS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and clients -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("EmbeddedAWS is not running")
        return int(self._server.server_port)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("EmbeddedAWS is not running")
        host = self.host
        if host in ("0.0.0.0", ""):
            # Bound to every interface: loopback reaches it.
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def registry_host(self) -> str:
        """The OCI registry's address (`host:port`, no scheme): what docker and skopeo take."""
        return self.endpoint_url.removeprefix("http://")

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            raise RuntimeError("EmbeddedAWS is not running")
        return self._blobs

    def client(self, service_name: str, region_name: str = "us-east-1", **kwargs: Any) -> Any:
        """A boto3 client for this endpoint with throwaway credentials."""

        kwargs.setdefault("aws_access_key_id", "testing")
        kwargs.setdefault("aws_secret_access_key", "testing")
        return boto3.client(
            service_name, region_name=region_name, endpoint_url=self.endpoint_url, **kwargs
        )


# -- bootstrap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrapped:
    events_queue_url: str
    events_queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    rule_name: str
    rule_arn: str
    idempotency_table: str
    replication_queue_url: str = ""
    repository_jobs_queue_url: str = ""


EVENTS_QUEUE = "steward-ecr-events"
DEAD_LETTER_QUEUE = DEFAULT_EVENTS_DLQ
EVENT_RULE_NAME = "steward-ecr-events"
EVENT_PATTERN = {"source": ["aws.ecr", "aws.inspector2", "steward.gate"]}
# Lambda retries an async (EventBridge) invocation twice, then gives up to its DLQ: 3 attempts.
MAX_RECEIVE_COUNT = 3


def _clients(
    session_or_clients: Any, region: str, endpoint_url: str | None
) -> tuple[Any, Any, Any]:
    if isinstance(session_or_clients, Mapping):
        return (
            session_or_clients["sqs"],
            session_or_clients["events"],
            session_or_clients["dynamodb"],
        )
    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    session = session_or_clients
    return (
        session.client("sqs", **kwargs),
        session.client("events", **kwargs),
        session.client("dynamodb", **kwargs),
    )


def bootstrap(
    session_or_clients: Any,
    *,
    account: str,
    region: str,
    events_queue_name: str = EVENTS_QUEUE,
    dead_letter_queue_name: str = DEAD_LETTER_QUEUE,
    idempotency_table: str = DEFAULT_IDEMPOTENCY_TABLE,
    endpoint_url: str | None = None,
) -> Bootstrapped:
    """Create the event plumbing and idempotency table; safe to call again.

    `session_or_clients` is a boto3 Session (clients follow `endpoint_url`, else the
    AWS_ENDPOINT_URL environment variable) or a mapping with "sqs", "events" and "dynamodb"
    clients.
    """
    sqs, events, dynamodb = _clients(session_or_clients, region, endpoint_url)

    dlq_url = sqs.create_queue(QueueName=dead_letter_queue_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(QueueName=events_queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    rule_arn = events.put_rule(
        Name=EVENT_RULE_NAME,
        EventBusName="default",
        EventPattern=json.dumps(EVENT_PATTERN),
        State="ENABLED",
        Description="ECR and Inspector events for ecr-steward",
    )["RuleArn"]
    # Attributes are set separately so a second call with create_queue stays idempotent. The
    # policy is what real EventBridge needs to deliver; the redrive mimics Lambda's retries.
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AllowStewardRule",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": queue_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                        }
                    ],
                }
            ),
        },
    )
    events.put_targets(
        Rule=EVENT_RULE_NAME,
        EventBusName="default",
        Targets=[
            {
                "Id": "steward-events-queue",
                "Arn": queue_arn,
                # The whole event, as a Lambda target receives it. moto's default SQS payload
                # drops "account"; `<aws.events.event.json>` (valid on AWS too) keeps it.
                "InputTransformer": {"InputTemplate": "<aws.events.event.json>"},
            }
        ],
    )

    ensure_table(dynamodb, idempotency_table, ttl_attribute="expiration")
    # Scan gate decisions (`chalicelib.gate.records`): one item per (repository, digest).

    # The sweep queries the sparse due index by time; closed records expire by TTL.
    ensure_table(
        dynamodb,
        DEFAULT_GATE_TABLE,
        hash_key="repository",
        range_key="digest",
        ttl_attribute="expires_at",
        indexes={DUE_INDEX: ("due_shard", "due_at")},
    )
    # ECR's rate quotas, one bucket per (account, region, operation) for every function
    # (`chalicelib.kernel.pacing`); buckets of registries no longer called expire by TTL.
    ensure_table(dynamodb, DEFAULT_PACING_TABLE, ttl_attribute="expires_at")
    # Replication (steward_tools/local/jobs.py): the copy-job queue and the copies table.

    replication_queue_url = bootstrap_replication(sqs, dynamodb)
    # The sweep (steward_tools/local/sweep.py): repository-job queue, retention marks table.

    repository_jobs_queue_url = bootstrap_sweep(sqs, dynamodb)
    return Bootstrapped(
        repository_jobs_queue_url=repository_jobs_queue_url,
        replication_queue_url=replication_queue_url,
        events_queue_url=queue_url,
        events_queue_arn=queue_arn,
        dead_letter_queue_url=dlq_url,
        dead_letter_queue_arn=dlq_arn,
        rule_name=EVENT_RULE_NAME,
        rule_arn=rule_arn,
        idempotency_table=idempotency_table,
    )
