"""The sweep's ledger in DynamoDB: one lease per registry (one sweep at a time) and the claims that
make a page or a repository job take effect once however often SQS delivers it.

- The lease (`lease#<account>#<region>`) names the current sweep, when it started and until when
  it holds; a start while an unexpired lease names another sweep is refused. It also holds the
  walk's cursor: `page` is the last page a page job claimed, and `page_message` the SQS message
  that claimed it, so a redelivery of that message (a retry after a crash) goes on, and any other
  copy of the page job (sent twice by a retried predecessor) is dropped.
- A claim (`run#<sweep>#<repository>`) is written before a repository's tasks run, conditional on
  being absent or held by the same message: a duplicate job (its page listed twice) is dropped; a
  retry of the job that failed runs again.

Every item carries `purge_at` (epoch seconds, the table's TTL attribute), so the table holds only
recent sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.aws import on_reset
from chalicelib.kernel.settings import get_settings

# A lease outlives a sweep only if the walk died: the next hourly start then takes over.
LEASE_SECONDS = 55 * 60
# Claims are needed while a sweep's jobs can still be delivered (SQS keeps them a day).
PURGE_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class Lease:
    sweep_id: str
    started_at: datetime
    expires_at: datetime
    page: int
    listed: bool


def _conditional_failed(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == "ConditionalCheckFailedException")


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


class SweepLedger:
    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("dynamodb")
        return self._client

    @staticmethod
    def lease_key(account: str, region: str) -> dict[str, Any]:
        return {"id": {"S": f"lease#{account}#{region}"}}

    def lease(self, account: str, region: str) -> Lease | None:
        item = self.client.get_item(
            TableName=self.table, Key=self.lease_key(account, region), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return Lease(
            sweep_id=item["sweep_id"]["S"],
            started_at=datetime.fromisoformat(item["started_at"]["S"]),
            expires_at=datetime.fromtimestamp(int(item["expires_at"]["N"]), tz=UTC),
            page=int(item["page"]["N"]),
            listed=item.get("listed", {}).get("BOOL", False),
        )

    def acquire(
        self, account: str, region: str, sweep_id: str, now: datetime
    ) -> tuple[bool, Lease | None]:
        """Take the lease for `sweep_id` unless another sweep holds an unexpired one. Returns
        (acquired, the lease as it is). Asking again for the same sweep (the schedule's event
        delivered twice) answers acquired without resetting its cursor."""
        expires = now + timedelta(seconds=LEASE_SECONDS)
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self.lease_key(account, region),
                    "sweep_id": {"S": sweep_id},
                    "started_at": {"S": now.isoformat()},
                    "expires_at": {"N": _epoch(expires)},
                    "page": {"N": "-1"},
                    "listed": {"BOOL": False},
                    "purge_at": {"N": _epoch(now + PURGE_AFTER)},
                },
                ConditionExpression="attribute_not_exists(id) OR expires_at <= :now",
                ExpressionAttributeValues={":now": {"N": _epoch(now)}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            held = self.lease(account, region)
            return (held is not None and held.sweep_id == sweep_id), held
        return True, self.lease(account, region)

    def claim_page(
        self, account: str, region: str, sweep_id: str, page: int, message_id: str
    ) -> bool:
        """Claim page `page` of `sweep_id` for this SQS message: the previous page must be the
        last claimed, or this very message claimed this page (its retry)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.lease_key(account, region),
                UpdateExpression="SET page = :page, page_message = :message",
                ConditionExpression=(
                    "sweep_id = :sweep AND (page = :previous "
                    "OR (page = :page AND page_message = :message))"
                ),
                ExpressionAttributeValues={
                    ":sweep": {"S": sweep_id},
                    ":page": {"N": str(page)},
                    ":previous": {"N": str(page - 1)},
                    ":message": {"S": message_id},
                },
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def mark_listed(self, account: str, region: str, sweep_id: str) -> None:
        """The walk reached the last page (reported by `lease`; the lease still runs its term)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self.lease_key(account, region),
                UpdateExpression="SET listed = :true",
                ConditionExpression="sweep_id = :sweep",
                ExpressionAttributeValues={":true": {"BOOL": True}, ":sweep": {"S": sweep_id}},
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise

    def claim_repository(
        self, sweep_id: str, repository: str, message_id: str, now: datetime
    ) -> bool:
        """Claim `repository`'s job of `sweep_id` for this SQS message (or its retry)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": f"run#{sweep_id}#{repository}"},
                    "message": {"S": message_id},
                    "purge_at": {"N": _epoch(now + PURGE_AFTER)},
                },
                ConditionExpression="attribute_not_exists(id) OR message = :message",
                ExpressionAttributeValues={":message": {"S": message_id}},
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True


@lru_cache(maxsize=4)
def _ledger(table: str) -> SweepLedger:
    return SweepLedger(table)


on_reset(_ledger.cache_clear)


def ledger() -> SweepLedger:
    return _ledger(get_settings().sweep_table)
