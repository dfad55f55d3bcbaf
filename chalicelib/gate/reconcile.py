"""The gate's reconciler: promotion and quarantine tags as the recorded decisions say.

A decided image whose tags drifted (the promotion tag removed, a quarantined image tagged
`latest` again) or whose decision was never fully applied is evaluated again, which puts and
removes what the decision needs. Pending images are the gate sweep's (`gate/sweep.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import RepositoryInfo
from chalicelib.gate.decide import plan_tags
from chalicelib.gate.evaluate import Gate
from chalicelib.gate.records import GateRecords
from chalicelib.policy.gate import GatePolicy


def reconcile_gate_tags(
    registry: Registry,
    store: GateRecords,
    policy: GatePolicy,
    repository: RepositoryInfo,
    now: datetime,
    *,
    policy_version: str,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Repair the drift of every decided image of one repository; returns what was (or, in a
    dry run, would be) repaired, and the digests the gate failed."""
    rule = policy.rule_for(repository.name)
    if rule is None:
        return {"repairs": [], "failed": []}
    tagged = {i.digest: i for i in registry.iter_images(repository.name, tag_status="TAGGED")}
    repairs: list[dict[str, Any]] = []
    failed: list[str] = []
    gate = Gate(registry, store, policy, policy_version=policy_version, now=now, dry_run=dry_run)
    for record in store.for_repository(repository.name):
        if record.status == "fail":
            failed.append(record.digest)
        image = tagged.get(record.digest)
        if record.decision is None or record.status == "pending" or image is None:
            continue  # pending: the gate sweep's; untagged: its tags wait for a tag
        drift = [
            f"{a.action} {a.tag}"
            for a in plan_tags(rule, record.status, record.digest, image.tags)
            if a.action != "keep"
        ]
        if not drift and record.applied:
            continue
        repairs.append(
            {"digest": record.digest, "status": record.status, "drift": drift or ["not applied"]}
        )
        if not dry_run:
            gate.evaluate(record, rule, cascade=False)
    return {"repairs": repairs, "failed": failed}
