"""When each image was first marked deletable: the grace period's memory, in DynamoDB.

One item per (repository, unit digest): `repository` (hash key), `digest` (range key),
`marked_at` (ISO-8601). Written only by real runs (a dry run writes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.tables import repository_items

BATCH_WRITE = 25  # DynamoDB's batch-write-item limit


class MarkStore:
    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws_client("dynamodb")

    def load(self, repository: str) -> dict[str, datetime]:
        return {
            item["digest"]["S"]: datetime.fromisoformat(item["marked_at"]["S"])
            for item in repository_items(self.client, self.table, repository)
        }

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
