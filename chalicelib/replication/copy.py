"""Carries a copy plan out: streams each missing blob from its download URL into upload-layer-part
calls (one part in memory per layer, a bounded number of layers at once) and puts the exact
manifest bytes, so the destination digest is the source's. A finished copy re-run copies no
byte; a copy that failed in the middle of a layer restarts that layer with a new upload."""

from __future__ import annotations

import ctypes
import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import IO, Literal
from urllib.parse import urlsplit

import urllib3

from chalicelib.ecr.distribution import registry_client
from chalicelib.ecr.errors import (
    InvalidLayer,
    RegistryError,
    RepositoryAlreadyExists,
    RepositoryNotFound,
)
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.observability import logger
from chalicelib.registry_client.auth import anonymous
from chalicelib.registry_client.credentials import from_docker_config, from_secret
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.registry_client.transport import Endpoint, RegistryClient
from chalicelib.replication.jobs import CopyJob, Upstream
from chalicelib.replication.ledger import UploadSessionTable, record_copies
from chalicelib.replication.plan import BlobStep, CopyPlan, copy_result, plan_copy
from chalicelib.replication.result import CopyResult, DigestMismatch
from chalicelib.replication.source import SourceImage, read_destination, read_source
from chalicelib.replication.v2copy import BLOB_CONCURRENCY, copy_over_v2

# Layers of one image copied at once. Each holds about one upload part (10 MiB) plus its
# base64 request body in memory, so this bounds a copy's memory whatever the layer sizes.
LAYER_CONCURRENCY = 3


# A layer whose stream or upload breaks is restarted from byte 0 with a new upload, this often.
LAYER_ATTEMPTS = 3


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


class _VerifyingReader:
    """Passes a blob stream through, hashing it; a wrong size or digest raises before the end."""

    def __init__(
        self, stream: IO[bytes], digest: str, size: int, on_bytes: Callable[[int], None]
    ) -> None:
        self._stream = stream
        self._digest = digest
        self._size = size
        self._hash = hashlib.sha256()
        self._on_bytes = on_bytes
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.count += len(data)
        self._on_bytes(len(data))
        if self.count > self._size or (self.count == self._size and data) or not data:
            self._check()
        return data

    def _check(self) -> None:
        actual = "sha256:" + self._hash.hexdigest()
        if self.count != self._size or actual != self._digest:
            raise DigestMismatch(
                "DigestMismatch",
                f"source blob {self._digest} ({self._size} bytes) streamed {self.count} bytes "
                f"hashing to {actual}",
            )


def _copy_blob(
    source: Registry,
    source_repository: str,
    destination: Registry,
    destination_repository: str,
    blob: BlobStep,
    on_bytes: Callable[[int], None],
) -> tuple[int, int]:
    """Stream one blob across; returns (bytes moved, restarts). A broken layer restarts cleanly."""
    moved = 0
    for attempt in range(LAYER_ATTEMPTS):
        try:
            with source.open_blob(source_repository, blob.digest) as stream:
                reader = _VerifyingReader(stream, blob.digest, blob.size, on_bytes)
                try:
                    destination.upload_blob(destination_repository, reader, blob.digest)  # type: ignore[arg-type]
                finally:
                    moved += reader.count
            return moved, attempt
        except DigestMismatch:
            raise
        except InvalidLayer as error:
            raise DigestMismatch(error.code, error.message, error.operation) from error
        except (OSError, RegistryError) as error:
            retryable = (
                isinstance(error, OSError)
                or error.transient
                or error.code
                in (
                    "UploadNotFoundException",
                    "InvalidLayerPartException",
                )
            )
            if not retryable or attempt == LAYER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@cache
def _release_large_buffers() -> None:
    """Pin glibc's mmap threshold at 1 MiB, so upload parts are mapped and unmapped on free.

    glibc raises the threshold after the first large free, after which 10 MiB part buffers come
    from per-thread arenas that keep the memory: RSS then grows with every copying thread instead
    of staying at the parts in flight (measured in benchmarks/bench_replication.py).
    """

    try:
        libc = ctypes.CDLL(None)  # the process itself: its libc symbols, no ctypes.util lookup
        libc.mallopt(M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def apply_copy_plan(
    source: Registry,
    destination: Registry,
    plan: CopyPlan,
    source_image: SourceImage,
    *,
    concurrency: int = LAYER_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
    record: Callable[[dict[str, list[str]]], None] | None = None,
) -> CopyResult:
    """Carry a plan out: create the repository, copy missing blobs, put manifests in order.

    `record` is told which destination images (and tags) this copy is about to put, before it
    puts them, so delete sync knows what the rule made.
    """
    job = plan.job
    target = job.destination
    result = copy_result(plan, "api")
    if plan.create_repository:
        try:
            destination.create_repository(
                target.repository,
                tag_mutability=target.create.tag_mutability,
                scan_on_push=target.create.scan_on_push,
                tags=target.create.tags,
            )
            result.repository_created = True
        except RepositoryAlreadyExists:
            pass

    copies = [b for b in plan.blobs if b.action == "copy"]
    if copies:
        _release_large_buffers()
        failed = threading.Event()

        def copy_one(blob: BlobStep) -> tuple[int, int] | None:
            if failed.is_set():  # one layer failed: the copy stops, queued layers do not start
                return None
            try:
                return _copy_blob(
                    source, job.source_repository, destination, target.repository, blob, on_bytes
                )
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(copies)))) as pool:
            futures = [pool.submit(copy_one, blob) for blob in copies]
        errors = [error for f in futures if (error := f.exception()) is not None]
        for future in futures:
            copied = None if future.exception() is not None else future.result()
            if copied is not None:
                result.bytes_moved += copied[0]
                result.layer_restarts += copied[1]
                result.blobs_copied += 1
        if errors:
            raise errors[0]

    puts = plan.puts
    if puts and record is not None:
        record(plan.made())
    manifests = {m.digest: m for m in source_image.manifests}
    for step in puts:
        outcome = destination.put_manifest(target.repository, manifests[step.digest], step.tag)
        if outcome.digest != step.digest:
            raise DigestMismatch(
                "ImageDigestDoesNotMatchException",
                f"destination digest {outcome.digest} is not the source's {step.digest}",
            )
        result.manifests_put += 1
    return result


Protocol = Literal["auto", "v2", "api"]


def _v2_clients(
    source: Registry, destination: Registry
) -> tuple[RegistryClient, RegistryClient] | None:
    """Both ends' `/v2` clients, pinged; None when either cannot be reached that way."""
    try:
        clients = registry_client(source), registry_client(destination)
        for client in clients:
            client.ping()
    except (OSError, urllib3.exceptions.HTTPError, RegistryHTTPError) as error:
        logger().warning(
            "registry protocol unreachable: copying through the control API",
            extra={"error": str(error)},
        )
        return None
    return clients


def _repository_exists(registry: Registry, repository: str) -> bool:
    try:
        registry.describe_repository(repository)
    except RepositoryNotFound:
        return False
    return True


def creator(registry: Registry, job: CopyJob) -> Callable[[], bool]:
    """Create the job's destination repository with its declared settings (False: it existed)."""
    target = job.destination

    def create() -> bool:
        try:
            registry.create_repository(
                target.repository,
                tag_mutability=target.create.tag_mutability,
                scan_on_push=target.create.scan_on_push,
                tags=target.create.tags,
            )
        except RepositoryAlreadyExists:
            return False
        return True

    return create


def ledger_recorder(
    job: CopyJob, ledger_table: str | None
) -> Callable[[dict[str, list[str]]], None] | None:
    if not ledger_table:
        return None
    table = ledger_table

    def record(made: dict[str, list[str]]) -> None:
        record_copies(table, {job.ledger_key(d): tags for d, tags in made.items()})

    return record


def upload_sessions(
    destination: RegistryClient, ledger_table: str | None
) -> UploadSessionTable | None:
    return UploadSessionTable(ledger_table, destination.endpoint.identity) if ledger_table else None


def copy_image(
    job: CopyJob,
    *,
    source: Registry,
    destination: Registry,
    dry_run: bool = False,
    ledger_table: str | None = None,
    concurrency: int = LAYER_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
    protocol: Protocol = "auto",
) -> CopyResult:
    """Read, plan and (unless dry run) apply one copy job: over the registry protocol (`/v2`)
    when both ends answer it, else (`auto`) through ECR's control API."""
    clients = _v2_clients(source, destination) if protocol != "api" else None
    if clients is None and protocol == "v2":
        raise RegistryError("RegistryUnreachable", "the registry protocol cannot be reached")
    if clients is not None:
        _release_large_buffers()
        return copy_over_v2(
            job,
            source=clients[0],
            destination=clients[1],
            repository_exists=_repository_exists(destination, job.destination.repository),
            create=creator(destination, job),
            dry_run=dry_run,
            concurrency=max(concurrency, BLOB_CONCURRENCY),
            on_bytes=on_bytes,
            record=ledger_recorder(job, ledger_table),
            sessions=upload_sessions(clients[1], ledger_table),
        )
    image = read_source(source, job.source_repository, job.digest)
    state = read_destination(destination, job.destination.repository, image, job.tags)
    plan = plan_copy(job, image, state)
    if dry_run:
        return copy_result(plan, "api", dry_run=True)
    return apply_copy_plan(
        source,
        destination,
        plan,
        image,
        concurrency=concurrency,
        on_bytes=on_bytes,
        record=ledger_recorder(job, ledger_table),
    )


def upstream_client(upstream: Upstream) -> RegistryClient:
    """The `/v2` client of a mirror rule's upstream registry, with its credentials."""
    if upstream.secret:
        credentials = from_secret(upstream.secret)
    elif upstream.docker_config:
        credentials = from_docker_config(urlsplit(upstream.url).netloc)
    else:
        credentials = anonymous
    return RegistryClient(Endpoint(url=upstream.url, credentials=credentials))


def copy_from_upstream(
    job: CopyJob,
    *,
    source: RegistryClient,
    destination: Registry,
    dry_run: bool = False,
    ledger_table: str | None = None,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> CopyResult:
    """Copy one image from an upstream registry into ECR, over the registry protocol."""
    _release_large_buffers()
    client = registry_client(destination)
    exists = _repository_exists(destination, job.destination.repository)
    if not exists and not job.destination.create_repository:
        raise RepositoryNotFound(
            "RepositoryNotFoundException",
            f"{job.destination.repository} does not exist and the rule does not create it",
            "mirror",
        )
    return copy_over_v2(
        job,
        source=source,
        destination=client,
        repository_exists=exists,
        create=creator(destination, job),
        dry_run=dry_run,
        on_bytes=on_bytes,
        record=ledger_recorder(job, ledger_table),
        sessions=upload_sessions(client, ledger_table),
    )
