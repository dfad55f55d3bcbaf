"""Scan gate data access: decision records in DynamoDB, decision events to EventBridge.

Data access only: no decision is made here (that is `chalicelib.gate.decide`). One item per
(repository, digest). The full record is kept as one JSON document (`body`), so nested reasons,
counts and findings need no DynamoDB type mapping; the attributes the sweep reads (`status`,
`revisit_at`, `policy_version`) and the set of index digests listing an image (`parents`, grown
with an atomic ADD so an index and its children can be recorded in any order) sit beside it.

The sweep reads only what is due: a record that must be looked at again at some moment carries
`due_shard` and `due_at`, the keys of the sparse index `DUE_INDEX`, which the sweep queries by
time; a decided record with nothing to wait for is not in the index at all. A record whose image
is gone is closed: out of the index, and deleted by the table's TTL (`expires_at`) later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from chalicelib.ecr.models import Finding
from chalicelib.events.models import (
    GATE_EVENT_DETAIL_TYPE,
    GATE_EVENT_SOURCE,
    GateDecisionDetail,
)
from chalicelib.kernel.aws import client as aws_client
from chalicelib.kernel.aws import on_reset
from chalicelib.kernel.errors import aws_errors, translate
from chalicelib.kernel.settings import get_settings

Verdict = Literal["pass", "fail", "pending"]

# EventBridge refuses entries over 256 KB; the record stays complete in DynamoDB.
MAX_EVENT_FINDINGS = 50
# The sparse due-time index: hash key `due_shard` (one value: a due record is rare and the
# sweep wants them all, in time order), range key `due_at` (ISO 8601 UTC, sorts as time).
DUE_INDEX = "due"
DUE_SHARD = "due"
# How long a closed record (its image deleted) stays readable before TTL deletes it.
CLOSED_RETENTION = timedelta(days=30)
# The item recording which gate-section fingerprint every record has been checked against.
MARKER_KEY = {"repository": {"S": "#gate"}, "digest": {"S": "#policy-version"}}


class ScanResult(BaseModel):
    source: Literal["basic", "enhanced"]
    status: str
    counts: dict[str, int] = {}
    event_id: str | None = None
    received_at: datetime


class ChildRef(BaseModel):
    digest: str
    platform: str | None = None
    # Attestation manifests (platform unknown/unknown) are not images: no scanner scans them.
    scannable: bool = True


class ChildVerdict(BaseModel):
    digest: str
    platform: str | None = None
    verdict: Verdict
    summary: str


class GateDecision(BaseModel):
    verdict: Verdict
    reasons: list[str]
    counts: dict[str, int] = {}
    failing_findings: list[Finding] = []
    children: list[ChildVerdict] = []
    # The earliest moment the decision may change without a new scan (a timeout or an
    # allowlist entry expiring); the sweep looks again then.
    revisit_at: datetime | None = None


class TagAction(BaseModel):
    action: Literal["put", "remove", "keep"]
    tag: str
    reason: str
    outcome: Literal["applied", "unchanged", "planned", "failed"] = "planned"


class GateRecord(BaseModel):
    repository: str
    digest: str
    account: str = ""
    region: str = ""
    kind: Literal["image", "index"] | None = None
    children: list[ChildRef] = []
    parents: list[str] = []
    scan: ScanResult | None = None
    pending_since: datetime | None = None
    status: Verdict = "pending"
    decision: GateDecision | None = None
    decided_at: datetime | None = None
    policy_version: str | None = None
    tags: list[TagAction] = Field(default_factory=list)
    # Whether the decision's tags were applied (an untagged image gets them once it is tagged).
    applied: bool = False


class GateRecords:
    """The decisions table."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client
        self.calls = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("dynamodb")
        return self._client

    def get(self, repository: str, digest: str) -> GateRecord | None:
        self.calls += 1
        with aws_errors("dynamodb", "get_item"):
            item = self.client.get_item(
                TableName=self.table,
                Key={"repository": {"S": repository}, "digest": {"S": digest}},
                ConsistentRead=True,
            ).get("Item")
        return _record(item) if item else None

    def put(self, record: GateRecord) -> None:
        """Write the record; `parents` is left to add_parent so concurrent links are kept."""
        self.calls += 1
        names = {"#b": "body", "#s": "status"}
        values: dict[str, Any] = {
            ":b": {"S": record.model_dump_json(exclude={"parents"})},
            ":s": {"S": record.status},
            ":v": {"S": record.policy_version or ""},
        }
        expression = "SET #b = :b, #s = :s, policy_version = :v"
        due = due_at(record)
        if due is not None:
            values[":r"] = {"S": _iso(due)}
            values[":shard"] = {"S": DUE_SHARD}
            expression += ", revisit_at = :r, due_at = :r, due_shard = :shard"
        else:
            expression += " REMOVE revisit_at, due_at, due_shard"
        with aws_errors("dynamodb", "update_item"):
            self.client.update_item(
                TableName=self.table,
                Key={"repository": {"S": record.repository}, "digest": {"S": record.digest}},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def add_parent(self, repository: str, digest: str, parent: str) -> None:
        self.calls += 1
        with aws_errors("dynamodb", "update_item"):
            self.client.update_item(
                TableName=self.table,
                Key={"repository": {"S": repository}, "digest": {"S": digest}},
                UpdateExpression="ADD parents :p",
                ExpressionAttributeValues={":p": {"SS": [parent]}},
            )

    def for_repository(self, repository: str) -> Iterator[GateRecord]:
        """Every decided record of one repository (one paged query), for the reconciler."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="#r = :r",
            FilterExpression="attribute_exists(body)",
            ExpressionAttributeNames={"#r": "repository"},
            ExpressionAttributeValues={":r": {"S": repository}},
            ConsistentRead=True,
        )
        with aws_errors("dynamodb", "query"):
            for page in pages:
                self.calls += 1
                for item in page.get("Items", []):
                    yield _record(item)

    def due(self, now: datetime) -> Iterator[GateRecord]:
        """Records due by `now` (pending past a timeout, a revisit, a policy change marked by
        `mark_other_versions_due`), earliest first, from the due index: the sweep reads only
        these, whatever the table's size."""
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :shard AND due_at <= :now",
            ExpressionAttributeValues={":shard": {"S": DUE_SHARD}, ":now": {"S": _iso(now)}},
        )
        with aws_errors("dynamodb", "query"):
            for page in pages:
                self.calls += 1
                for item in page.get("Items", []):
                    if "body" in item:
                        yield _record(item)

    def close(self, repository: str, digest: str, now: datetime) -> None:
        """The image is gone: out of the due index; TTL deletes the record after a while."""
        self.calls += 1
        with aws_errors("dynamodb", "update_item"):
            self.client.update_item(
                TableName=self.table,
                Key={"repository": {"S": repository}, "digest": {"S": digest}},
                UpdateExpression=(
                    "SET closed_at = :now, expires_at = :expires "
                    "REMOVE revisit_at, due_at, due_shard"
                ),
                ExpressionAttributeValues={
                    ":now": {"S": _iso(now)},
                    ":expires": {"N": str(int((now + CLOSED_RETENTION).timestamp()))},
                },
            )

    def not_due(self, repository: str, digest: str) -> None:
        """Out of the due index (no gate rule applies to it now); a later change to the gate
        section puts it back, as a record decided under another version."""
        self.calls += 1
        with aws_errors("dynamodb", "update_item"):
            self.client.update_item(
                TableName=self.table,
                Key={"repository": {"S": repository}, "digest": {"S": digest}},
                UpdateExpression="REMOVE revisit_at, due_at, due_shard",
            )

    def marker(self) -> tuple[str | None, str | None, dict[str, Any] | None]:
        """(the gate version every record was checked against, the version a pass toward which
        is under way, that pass's scan cursor)."""
        self.calls += 1
        with aws_errors("dynamodb", "get_item"):
            item = self.client.get_item(TableName=self.table, Key=MARKER_KEY, ConsistentRead=True)
        found = item.get("Item") or {}
        cursor = json.loads(found["cursor"]["S"]) if "cursor" in found else None
        return (
            found.get("version", {}).get("S"),
            found.get("target", {}).get("S"),
            cursor,
        )

    def mark_other_versions_due(
        self, version: str, now: datetime, cursor: dict[str, Any] | None, *, pages: int
    ) -> dict[str, Any] | None:
        """After a change to the gate section: put every open record decided under another
        version into the due index, at most `pages` scan pages per call (the pass resumes from
        the returned cursor; None: done). Runs only when the gate section changes."""
        values = {":v": {"S": version}}
        for _ in range(pages):
            self.calls += 1
            with aws_errors("dynamodb", "scan"):
                page = self.client.scan(
                    TableName=self.table,
                    FilterExpression=(
                        "attribute_exists(body) AND policy_version <> :v "
                        "AND attribute_not_exists(closed_at)"
                    ),
                    ExpressionAttributeValues=values,
                    ProjectionExpression="repository, digest",
                    **({"ExclusiveStartKey": cursor} if cursor else {}),
                )
            for item in page.get("Items", []):
                self.calls += 1
                with aws_errors("dynamodb", "update_item"):
                    self.client.update_item(
                        TableName=self.table,
                        Key={"repository": item["repository"], "digest": item["digest"]},
                        UpdateExpression="SET due_at = :now, due_shard = :shard",
                        ConditionExpression="attribute_exists(body)",
                        ExpressionAttributeValues={
                            ":now": {"S": _iso(now)},
                            ":shard": {"S": DUE_SHARD},
                        },
                    )
            cursor = page.get("LastEvaluatedKey")
            if cursor is None:
                break
        self.calls += 1
        # The version is recorded only once the pass is complete; until then, the cursor.
        if cursor is None:
            update, values = "SET target = :v, version = :v REMOVE #c", {":v": {"S": version}}
        else:
            update = "SET target = :v, #c = :c REMOVE version"
            values = {":v": {"S": version}, ":c": {"S": json.dumps(cursor)}}
        with aws_errors("dynamodb", "update_item"):
            self.client.update_item(
                TableName=self.table,
                Key=MARKER_KEY,
                UpdateExpression=update,
                ExpressionAttributeNames={"#c": "cursor"},
                ExpressionAttributeValues=values,
            )
        return cursor


def due_at(record: GateRecord) -> datetime | None:
    """When the sweep must look at the record again: a pending record or a decision that may
    change without a new scan (a timeout, an allowlist entry expiring); None: only an event
    changes it."""
    revisit = record.decision.revisit_at if record.decision else None
    if revisit is None and record.status == "pending":
        return record.pending_since
    return revisit


def _iso(moment: datetime) -> str:
    # ISO 8601 in UTC sorts as text, so `revisit_at <= :now` compares moments.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(item: dict[str, Any]) -> GateRecord:
    repository, digest = item["repository"]["S"], item["digest"]["S"]
    parents = sorted(item.get("parents", {}).get("SS", []))
    if "body" not in item:
        # Only linked from an index so far: nothing else known about it yet.
        return GateRecord(repository=repository, digest=digest, parents=parents)
    data = json.loads(item["body"]["S"])
    data["parents"] = parents
    return GateRecord.model_validate(data)


@lru_cache(maxsize=4)
def gate_records(table: str) -> GateRecords:
    return GateRecords(table)


# Its client comes from `chalicelib.kernel.aws`: forgotten with it.
on_reset(gate_records.cache_clear)


def records() -> GateRecords:

    return gate_records(get_settings().gate_table)


# --- the decision event ------------------------------------------------------------------------


def publish_decision(record: GateRecord) -> str | None:
    """Put one `steward.gate` event on the default bus; returns its id.

    Operators route it with a rule on `source: steward.gate` (to SNS, chat, a ticket queue).
    """
    decision = record.decision
    if decision is None:
        return None
    detail = GateDecisionDetail(
        repository_name=record.repository,
        image_digest=record.digest,
        decision=record.status,
        reasons=decision.reasons,
        finding_severity_counts=decision.counts,
        failing_findings=[
            f.model_dump(mode="json", exclude_none=True)
            for f in decision.failing_findings[:MAX_EVENT_FINDINGS]
        ],
        children=[c.model_dump(mode="json") for c in decision.children],
        tags=[t.model_dump(mode="json") for t in record.tags],
        policy_version=record.policy_version,
        decided_at=_iso(record.decided_at) if record.decided_at else None,
    )
    arn = f"arn:aws:ecr:{record.region}:{record.account}:repository/{record.repository}"
    with aws_errors("events", "put_events"):
        response = _put_events(
            [
                {
                    "Source": GATE_EVENT_SOURCE,
                    "DetailType": GATE_EVENT_DETAIL_TYPE,
                    "Detail": detail.model_dump_json(by_alias=True),
                    "Resources": [arn] if record.account and record.region else [],
                }
            ]
        )
    entry = response.get("Entries", [{}])[0]
    if response.get("FailedEntryCount"):
        # A refused entry carries its own error code; throttling and internal failures are
        # worth a retry, anything else is permanent.
        raise translate(
            ClientError(
                {
                    "Error": {
                        "Code": entry.get("ErrorCode", "Unknown"),
                        "Message": entry.get("ErrorMessage", ""),
                    }
                },
                "PutEvents",
            ),
            "events",
            "put_events",
        )
    return entry.get("EventId")


def _put_events(entries: list[dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = aws_client("events").put_events(Entries=entries)
    return response
