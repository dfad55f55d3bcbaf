"""The gate sweep reads only what is due: the due index queried by time, never a scan of the
decisions table; only a change to the gate section makes decisions due again; a re-decision puts no
tag that is already where it should be; a record whose image is gone is closed and expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from chalicelib.ecr.gateway import Registry
from chalicelib.gate.records import GateDecision, GateRecord, records
from chalicelib.gate.sweep import sweep
from chalicelib.policy.document import current_policy
from steward_tools.samples import build_image
from tests.aws_helpers import CallCounter
from tests.conftest import ACCOUNT, REGION
from tests.imagefactory import push_built
from tests.integration.test_gate_flow import GATE_POLICY, deliver, tags_of

RETENTION = """
retention:
  rules:
    - kind: expire_untagged
      repositories: ["team/*"]
      older_than_days: 30
"""


def promoted(aws: Any, registry: Registry, seed: int) -> str:
    """Push a clean image to team/app (scanned on push): the gate promotes it."""
    image = build_image(seed=seed)
    push_built(registry, image, "team/app", tag=f"1.0.{seed}")
    deliver(aws)
    assert "approved" in tags_of(registry, "team/app", image.digest)
    return image.digest


def decided_record(n: int, now: datetime) -> GateRecord:
    return GateRecord(
        policy_version=current_policy().section_fingerprint("gate"),
        repository="team/many",
        digest=f"sha256:{n:064x}",
        account=ACCOUNT,
        region=REGION,
        kind="image",
        pending_since=now,
        status="pass",
        decision=GateDecision(verdict="pass", reasons=["clean"]),
        decided_at=now,
        applied=True,
    )


def test_editing_retention_makes_no_gate_record_due(
    aws: Any, registry: Registry, policy_file: Any, counted: CallCounter
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    promoted(aws, registry, 1)
    sweep(datetime.now(UTC))  # records the gate version every record was checked against

    policy_file(GATE_POLICY + RETENTION)  # a new file: every section but the gate's changed
    counted.take()
    swept = sweep(datetime.now(UTC))

    assert swept["examined"] == 0
    calls = counted.take()
    assert calls["PutImage"] == 0 and calls["Scan"] == 0 and calls["Query"] == 1, calls


def test_gate_change_redecides_but_puts_no_tag_and_moves_none_back(
    aws: Any, registry: Registry, policy_file: Any, counted: CallCounter
) -> None:
    policy_file(GATE_POLICY)
    registry.create_repository("team/app", scan_on_push=True)
    older = promoted(aws, registry, 1)
    newer = promoted(aws, registry, 2)  # `approved` moved to the newer image
    assert "approved" not in tags_of(registry, "team/app", older)

    policy_file(GATE_POLICY.replace("HIGH: 0", "HIGH: 1"))
    counted.take()
    swept = sweep(datetime.now(UTC))

    assert (swept["examined"], swept["pass"]) == (2, 2)
    assert counted.take()["PutImage"] == 0
    assert "approved" not in tags_of(registry, "team/app", older)
    assert "approved" in tags_of(registry, "team/app", newer)
    assert records().get("team/app", older).policy_version.startswith("gate:")  # type: ignore[union-attr]
    assert sweep(datetime.now(UTC))["examined"] == 0  # decided under this version now


def test_the_sweep_queries_only_due_records_closes_vanished_ones_and_drops_ungated_ones(
    aws: Any, policy_file: Any, counted: CallCounter
) -> None:
    policy_file(GATE_POLICY)
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    store = records()
    for n in range(300):  # decided, nothing to wait for: not in the due index
        store.put(decided_record(n, now))
    # Pushed, never scanned, and deleted since: due at its timeout, and gone.
    vanished = GateRecord(
        repository="team/gone",
        digest=f"sha256:{'e' * 64}",
        account=ACCOUNT,
        region=REGION,
        policy_version=current_policy().section_fingerprint("gate"),
    )
    vanished.pending_since = now
    vanished.decision = GateDecision(
        verdict="pending", reasons=["no scan result yet"], revisit_at=now + timedelta(minutes=30)
    )
    store.put(vanished)
    # Due too, in a repository no gate rule selects any more: skipped, and out of the index.
    ungated = vanished.model_copy(update={"repository": "other/app"})
    store.put(ungated)
    assert sweep(now)["examined"] == 0  # the first run checks each record's gate version

    counted.take()
    swept = sweep(now + timedelta(minutes=31))

    assert (swept["examined"], swept["closed"], swept["skipped"]) == (2, 1, 1)
    calls = counted.take()
    assert calls["Scan"] == 0 and calls["Query"] == 1, calls
    assert sweep(now + timedelta(minutes=40))["examined"] == 0  # neither is due again
    item = boto3.client("dynamodb").get_item(
        TableName="steward-gate-decisions",
        Key={"repository": {"S": "team/gone"}, "digest": {"S": vanished.digest}},
    )["Item"]
    expires = datetime.fromtimestamp(int(item["expires_at"]["N"]), tz=UTC)
    assert expires == now + timedelta(minutes=31) + timedelta(days=30)
    assert "due_at" not in item
