"""When each image was first marked deletable: the grace period's memory, in DynamoDB.

One item per (repository, unit digest): `repository` (hash key), `digest` (range key),
`marked_at` (ISO-8601). Written only by real runs (a dry run writes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

BATCH_WRITE = 25  # DynamoDB's batch-write-item limit


@lru_cache(maxsize=1)
def _dynamodb() -> Any:
    import boto3

    return boto3.client("dynamodb")


class MarkStore:
    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or _dynamodb()

    def load(self, repository: str) -> dict[str, datetime]:
        marks: dict[str, datetime] = {}
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="repository = :r",
            ExpressionAttributeValues={":r": {"S": repository}},
        ):
            for item in page.get("Items", []):
                marks[item["digest"]["S"]] = datetime.fromisoformat(item["marked_at"]["S"])
        return marks

    def save(self, repository: str, marks: Mapping[str, datetime]) -> None:
        self._write(
            {
                "PutRequest": {
                    "Item": {
                        "repository": {"S": repository},
                        "digest": {"S": digest},
                        "marked_at": {"S": when.isoformat()},
                    }
                }
            }
            for digest, when in marks.items()
        )

    def clear(self, repository: str, digests: Iterable[str]) -> None:
        self._write(
            {"DeleteRequest": {"Key": {"repository": {"S": repository}, "digest": {"S": d}}}}
            for d in digests
        )

    def _write(self, requests: Iterable[dict[str, Any]]) -> None:
        pending = list(requests)
        for start in range(0, len(pending), BATCH_WRITE):
            batch = pending[start : start + BATCH_WRITE]
            for _ in range(5):
                response = self.client.batch_write_item(RequestItems={self.table: batch})
                batch = response.get("UnprocessedItems", {}).get(self.table, [])
                if not batch:
                    break
            if batch:
                raise RuntimeError(f"DynamoDB left {len(batch)} grace-period marks unwritten")


def ensure_table(dynamodb: Any, name: str) -> None:
    """Create the marks table if missing (the embedded backend's bootstrap; infra on AWS)."""
    try:
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "repository", "AttributeType": "S"},
                {"AttributeName": "digest", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "repository", "KeyType": "HASH"},
                {"AttributeName": "digest", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return
