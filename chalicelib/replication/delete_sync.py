"""Delete sync: when a source image is deleted, remove the copies its rule made, and only those."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from chalicelib.ecr.errors import (
    RegistryError,
    RepositoryNotFound,
)
from chalicelib.ecr.gateway import Registry
from chalicelib.replication.jobs import CopyJob
from chalicelib.replication.ledger import copy_record, forget_copy


class DeleteResult(BaseModel):
    rule: str
    destination: str
    digest: str
    tag: str | None
    status: Literal["deleted", "untagged", "not-ours", "kept", "gone", "planned"]
    reason: str


def sync_delete(
    job: CopyJob,
    *,
    source: Registry,
    destination: Registry,
    ledger_table: str,
    dry_run: bool = False,
) -> DeleteResult:
    """Mirror a source delete at the destination, only for what this rule copied there."""

    tag = job.tags[0] if job.tags else None
    key = job.ledger_key()
    target = job.destination

    def result(status: Any, reason: str) -> DeleteResult:
        return DeleteResult(
            rule=job.rule,
            destination=target.label(),
            digest=job.digest,
            tag=tag,
            status=status,
            reason=reason,
        )

    made_tags = copy_record(ledger_table, key)
    if made_tags is None:
        return result("not-ours", "this rule did not copy that image there: left alone")
    found, _ = source.get_manifests(job.source_repository, [{"imageDigest": job.digest}])
    if found:
        # The image is still at the source: only a tag went.
        if tag is None or tag not in made_tags:
            return result("kept", "still at the source, and the deleted tag is not one we put")
        ids = [{"imageDigest": job.digest, "imageTag": tag}]
        if dry_run:
            return result("planned", f"untag {tag}")
        there, failures = destination.get_manifests(target.repository, ids)
        if not there or failures:
            forget_copy(ledger_table, key, tag)
            return result("gone", f"{tag} is no longer on that image at the destination")
        destination.delete_images(target.repository, [{"imageTag": tag}])
        forget_copy(ledger_table, key, tag)
        return result("untagged", f"{tag} was deleted at the source")
    if dry_run:
        return result("planned", "delete: gone from the source")
    try:
        outcome = destination.delete_images(target.repository, [{"imageDigest": job.digest}])
    except RepositoryNotFound:
        outcome = None
    if outcome is not None and outcome.failures:
        code = outcome.failures[0].get("failureCode")
        if code != "ImageNotFound":
            raise RegistryError(str(code), str(outcome.failures[0].get("failureReason", "")))
    forget_copy(ledger_table, key)
    return result("deleted", "gone from the source, and this rule made the copy")
