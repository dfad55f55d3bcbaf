"""Scan gate data access: decision records in DynamoDB, decision events to EventBridge.

Data access only: no decision is made here (that is `chalicelib.gate.decide`). One item per
(repository, digest). The full record is kept as one JSON document (`body`), so nested reasons,
counts and findings need no DynamoDB type mapping; the attributes the sweep filters on (`status`,
`revisit_at`, `policy_version`) and the set of index digests listing an image (`parents`, grown
with an atomic ADD so an index and its children can be recorded in any order) sit beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
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
        revisit = record.decision.revisit_at if record.decision else None
        if revisit is not None:
            values[":r"] = {"S": _iso(revisit)}
            expression += ", revisit_at = :r"
        else:
            expression += " REMOVE revisit_at"
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

    def due(self, now: datetime, policy_version: str) -> Iterator[GateRecord]:
        """Records the sweep must look at: pending, due for a revisit, or decided under another
        policy version (an allowlist change may lift or impose a quarantine)."""
        paginator = self.client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table,
            FilterExpression=(
                "attribute_exists(body) AND (#s = :pending OR revisit_at <= :now "
                "OR policy_version <> :version)"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":pending": {"S": "pending"},
                ":now": {"S": _iso(now)},
                ":version": {"S": policy_version},
            },
        )
        with aws_errors("dynamodb", "scan"):
            for page in pages:
                self.calls += 1
                for item in page.get("Items", []):
                    yield _record(item)

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


# The store holds a DynamoDB client: it is rebuilt with every other client.
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
