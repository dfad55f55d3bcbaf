"""Replication's calls to AWS services other than ECR: STS, SQS and DynamoDB.

- `registry_in(account, region, role_arn)` is the ECR gateway for a registry, paced by the
  registry's token buckets; another account is reached with credentials from STS assume-role.
- `enqueue_jobs` sends copy jobs to the replication queue, ten a call.
- The ledger (a DynamoDB table) remembers which destination images each rule made, so that delete
  sync only ever removes what the rule copied.

Clients are built lazily; no credential is ever logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from chalicelib.clients import client as aws_client
from chalicelib.ratelimit import limiter_for
from chalicelib.registry import Registry

# Assumed-role credentials last an hour; a gateway is rebuilt well before they expire.
SESSION_SECONDS = 3600
SESSION_REUSE_SECONDS = 2700

_registries: dict[tuple[str, str, str | None], tuple[float, Registry]] = {}
_registries_lock = threading.Lock()


@lru_cache(maxsize=1)
def _boto3() -> Any:
    import boto3

    return boto3


def assumed_session(role_arn: str, session_name: str = "ecr-steward-replication") -> Any:
    """A boto3 session acting as `role_arn` (the destination account's replication role)."""
    credentials = (
        _boto3()
        .client("sts")
        .assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=SESSION_SECONDS
        )["Credentials"]
    )
    return _boto3().session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def registry_in(account: str, region: str, role_arn: str | None = None) -> Registry:
    """The ECR gateway for (account, region), as `role_arn` when given; reused while fresh."""
    key = (account, region, role_arn)
    now = time.monotonic()
    with _registries_lock:
        cached = _registries.get(key)
        if cached is not None and (role_arn is None or now - cached[0] < SESSION_REUSE_SECONDS):
            return cached[1]
    session = assumed_session(role_arn) if role_arn else None
    registry = Registry(
        region=region, registry_id=account, session=session, limiter=limiter_for(account, region)
    )
    with _registries_lock:
        _registries[key] = (now, registry)
    return registry


def caller_account() -> str:
    return str(_boto3().client("sts").get_caller_identity()["Account"])


# --- the job queue -----------------------------------------------------------------------------


def enqueue_jobs(queue: str, bodies: Iterable[str]) -> int:
    """Send message bodies, ten a call; a message SQS refuses raises (nothing silently lost)."""
    from chalicelib.jobqueue import send_jobs

    pending = list(bodies)
    # No resend here: the failed invocation is retried whole, and copy jobs are idempotent.
    send_jobs(queue, pending, attempts=1)
    return len(pending)


# --- the ledger: what each rule copied -----------------------------------------------------------


def ledger_key(rule: str, account: str, region: str, repository: str, digest: str) -> str:
    return f"{rule}|{account}|{region}|{repository}|{digest}"


def record_copies(table: str, keys: dict[str, list[str]]) -> None:
    """Remember that the rule made these destination images (key → tags it put)."""
    for key, tags in keys.items():
        update = "SET copied_at = :now"
        values: dict[str, Any] = {":now": {"N": str(int(time.time()))}}
        if tags:
            update += " ADD tags :tags"
            values[":tags"] = {"SS": sorted(set(tags))}
        aws_client("dynamodb").update_item(
            TableName=table,
            Key={"id": {"S": key}},
            UpdateExpression=update,
            ExpressionAttributeValues=values,
        )


def copy_record(table: str, key: str) -> list[str] | None:
    """The tags the rule put on this destination image, or None if the rule did not make it."""
    item = aws_client("dynamodb").get_item(
        TableName=table, Key={"id": {"S": key}}, ConsistentRead=True
    )
    if "Item" not in item:
        return None
    return sorted(item["Item"].get("tags", {}).get("SS", []))


def forget_copy(table: str, key: str, tag: str | None = None) -> None:
    """Drop the record (the image is gone), or only one tag from it."""
    if tag is None:
        aws_client("dynamodb").delete_item(TableName=table, Key={"id": {"S": key}})
        return
    aws_client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": key}},
        UpdateExpression="DELETE tags :tag",
        ExpressionAttributeValues={":tag": {"SS": [tag]}},
    )


def reset_caches() -> None:
    """Forget clients and gateways (tests switch endpoints and state between cases)."""
    from chalicelib.jobqueue import queue_url

    for cached in (_boto3, aws_client, queue_url):
        cached.cache_clear()
    with _registries_lock:
        _registries.clear()
