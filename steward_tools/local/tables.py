"""DynamoDB tables the embedded stack creates, as the deployed stack's template would."""

from __future__ import annotations

import contextlib
from typing import Any


def ensure_table(
    dynamodb: Any,
    name: str,
    *,
    hash_key: str = "id",
    range_key: str | None = None,
    ttl_attribute: str | None = None,
    indexes: dict[str, tuple[str, str]] | None = None,
) -> None:
    """Create a table of string keys, billed per request, unless it is already there; with
    `ttl_attribute`, items expire at the epoch seconds that attribute holds; `indexes` are global
    secondary indexes, name -> (hash key, range key), projecting every attribute."""
    keys = [(hash_key, "HASH")] + ([(range_key, "RANGE")] if range_key else [])
    attributes = {k for k, _ in keys} | {k for pair in (indexes or {}).values() for k in pair}
    extra: dict[str, Any] = {}
    if indexes:
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": index_hash, "KeyType": "HASH"},
                    {"AttributeName": index_range, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (index_hash, index_range) in indexes.items()
        ]
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        # Already there (second bootstrap): keep it and its items.
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": k, "AttributeType": "S"} for k in sorted(attributes)
            ],
            KeySchema=[{"AttributeName": k, "KeyType": kind} for k, kind in keys],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
    if ttl_attribute is None:
        return
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
        )
