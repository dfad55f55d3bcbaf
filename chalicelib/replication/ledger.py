"""The ledger: which destination images each replication rule made (a DynamoDB table), so that
delete sync only ever removes what the rule copied.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.kernel.aws import client as aws_client


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


class UploadSessionTable:
    """Unfinished blob uploads of one destination registry, in the same table: a job that timed
    out or crashed in the middle of a blob leaves its upload's location, and the next attempt
    (SQS's redelivery, on any container) resumes it where the registry says it stopped."""

    def __init__(self, table: str, registry: str) -> None:
        self._table = table
        self._registry = registry

    def _key(self, repository: str, digest: str) -> dict[str, Any]:
        return {"id": {"S": f"upload|{self._registry}|{repository}|{digest}"}}

    def get(self, repository: str, digest: str) -> str | None:
        item = aws_client("dynamodb").get_item(
            TableName=self._table, Key=self._key(repository, digest), ConsistentRead=True
        )
        location = item.get("Item", {}).get("location", {}).get("S")
        return str(location) if location else None

    def put(self, repository: str, digest: str, location: str) -> None:
        aws_client("dynamodb").update_item(
            TableName=self._table,
            Key=self._key(repository, digest),
            UpdateExpression="SET #l = :l, updated_at = :now",
            ExpressionAttributeNames={"#l": "location"},
            ExpressionAttributeValues={
                ":l": {"S": location},
                ":now": {"N": str(int(time.time()))},
            },
        )

    def forget(self, repository: str, digest: str) -> None:
        aws_client("dynamodb").delete_item(TableName=self._table, Key=self._key(repository, digest))
