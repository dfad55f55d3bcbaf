"""The copy engine over the registry protocol (`/v2`), between any two registries: ECR to ECR
(mounting blobs within one registry), an upstream registry into ECR, ECR back out.

The same pure plan as the control-API path (`plan.py`); blobs stream in one pass from the
source's GET into the destination's upload parts with the digest verified on the way and the
upload resumed where the registry says it stopped (`chalicelib.registry_client.copyblob`);
manifests go byte for byte, children and subjects first. A registry that does not index
`subject` itself gets the OCI 1.1 fallback tag index of each referrer put.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.registry_client.copyblob import UploadSessions, copy_blob
from chalicelib.registry_client.errors import BlobDigestMismatch
from chalicelib.registry_client.manifests import put_manifest
from chalicelib.registry_client.referrers import add_to_fallback_index
from chalicelib.registry_client.transport import RegistryClient
from chalicelib.replication.jobs import CopyJob
from chalicelib.replication.plan import BlobStep, CopyPlan, copy_result, plan_copy
from chalicelib.replication.result import CopyResult, DigestMismatch
from chalicelib.replication.source import SourceImage
from chalicelib.replication.v2source import read_destination_v2, read_source_v2

# Blobs of one image copied at once: each holds one 1 MiB read piece in flight.
BLOB_CONCURRENCY = 4


def _descriptor(manifest: Any) -> dict[str, Any]:
    document = manifest.document
    found: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.body.encode()),
    }
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    artifact = document.get("artifactType") or config.get("mediaType")
    if artifact:
        found["artifactType"] = artifact
    if document.get("annotations"):
        found["annotations"] = document["annotations"]
    return found


def apply_plan_v2(
    source: RegistryClient,
    destination: RegistryClient,
    plan: CopyPlan,
    image: SourceImage,
    *,
    create: Callable[[], bool] | None = None,
    concurrency: int = BLOB_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
    record: Callable[[dict[str, list[str]]], None] | None = None,
    sessions: UploadSessions | None = None,
) -> CopyResult:
    job = plan.job
    target = job.destination
    result = copy_result(plan, "v2")
    if plan.create_repository and create is not None:
        result.repository_created = create()
    copies = [b for b in plan.blobs if b.action == "copy"]
    if copies:
        n = len(copies)
        source.expect({"get_download_url_for_layer": n})
        destination.expect(
            {"initiate_layer_upload": n, "upload_layer_part": n, "complete_layer_upload": n}
        )
        failed = threading.Event()
        lock = threading.Lock()

        def copy_one(blob: BlobStep) -> None:
            if failed.is_set():  # one blob failed: the copy stops, queued blobs do not start
                return
            try:
                done = copy_blob(
                    source,
                    job.source_repository,
                    destination,
                    target.repository,
                    blob.digest,
                    blob.size,
                    on_bytes=on_bytes,
                    sessions=sessions,
                )
            except BlobDigestMismatch as error:
                failed.set()
                raise DigestMismatch("DigestMismatch", str(error)) from error
            except BaseException:
                failed.set()
                raise
            with lock:
                result.bytes_moved += done.moved
                result.layer_restarts += done.resumes
                result.blobs_copied += 1
                result.blobs_mounted += done.mounted

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(copies)))) as pool:
            futures = [pool.submit(copy_one, blob) for blob in copies]
        errors = [error for f in futures if (error := f.exception()) is not None]
        if errors:
            raise errors[0]

    puts = plan.puts
    if puts and record is not None:
        record(plan.made())
    manifests = {m.digest: m for m in image.manifests}
    for step in puts:
        manifest = manifests[step.digest]
        body = manifest.body.encode()
        put = put_manifest(
            destination, target.repository, step.tag or step.digest, body, manifest.media_type
        )
        if put.digest != step.digest:
            raise DigestMismatch(
                "ImageDigestDoesNotMatchException",
                f"destination digest {put.digest} is not the source's {step.digest}",
            )
        subject = manifest.subject()
        if subject and not put.subject_indexed:
            add_to_fallback_index(destination, target.repository, subject, _descriptor(manifest))
        result.manifests_put += 1
    return result


def copy_over_v2(
    job: CopyJob,
    *,
    source: RegistryClient,
    destination: RegistryClient,
    repository_exists: bool = True,
    create: Callable[[], bool] | None = None,
    dry_run: bool = False,
    concurrency: int = BLOB_CONCURRENCY,
    on_bytes: Callable[[int], None] = lambda n: None,
    record: Callable[[dict[str, list[str]]], None] | None = None,
    sessions: UploadSessions | None = None,
) -> CopyResult:
    """Read, plan and (unless dry run) apply one copy job over the registry protocol."""
    image = read_source_v2(source, job.source_repository, job.digest)
    state = read_destination_v2(
        destination,
        job.destination.repository,
        image,
        job.tags,
        repository_exists=repository_exists,
    )
    plan = plan_copy(job, image, state)
    if dry_run:
        return copy_result(plan, "v2", dry_run=True)
    return apply_plan_v2(
        source,
        destination,
        plan,
        image,
        create=create,
        concurrency=concurrency,
        on_bytes=on_bytes,
        record=record,
        sessions=sessions,
    )
