"""Reading the DynamoDB tables keyed by (repository, digest): the gate's decisions
(`chalicelib.gate.records`) and retention's grace-period marks (`chalicelib.retention.marks`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def repository_items(client: Any, table: str, repository: str) -> Iterator[dict[str, Any]]:
    """Every item of one repository (the hash key), all pages."""
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="repository = :r",
        ExpressionAttributeValues={":r": {"S": repository}},
    ):
        yield from page.get("Items", [])
