"""The gate's reactions to push and scan events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.events.models import SEVERITIES, ImageActionDetail, ImageActionEvent, ScanEvent
from chalicelib.gate.evaluate import Gate
from chalicelib.gate.records import (
    GateRecord,
    ScanResult,
    records,
)
from chalicelib.oci.manifests import INDEX_MEDIA_TYPES
from chalicelib.oci.referrers import is_cosign_tag
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.policy.gate import GatePolicy, GateRule, render_quarantine_tag
from chalicelib.policy.selection import matches_any


def _context(event: ImageActionEvent | ScanEvent, now: datetime) -> tuple[Gate, GateRule] | None:
    """The gate and the rule for the event's repository; None when no gate rule applies."""

    loaded = current_policy()
    gate_policy: GatePolicy = loaded.policy.gate
    if not gate_policy.rules:
        return None
    gate = Gate(
        registries.registry(event.account, event.region),
        records(),
        gate_policy,
        policy_version=loaded.section_fingerprint("gate"),
        now=now,
        dry_run=dry_run(loaded.policy),
    )
    rule = gate_policy.rule_for(event.detail.repository_name)
    return None if rule is None else (gate, rule)


def react_to_scan(event: ScanEvent, now: datetime) -> dict[str, Any] | None:
    """`ECR Image Scan` and `Inspector2 Scan`: record the result, decide, apply."""
    detail = event.detail
    context = _context(event, now)
    if context is None:
        return None
    gate, rule = context
    record = gate.record(detail.repository_name, detail.image_digest, event.account, event.region)
    record.scan = ScanResult(
        source="enhanced" if event.source == "aws.inspector2" else "basic",
        status=detail.scan_status,
        counts={s: detail.count(s) for s in SEVERITIES if detail.count(s)},
        event_id=event.id,
        received_at=now,
    )
    return _summary(gate.evaluate(record, rule))


def react_to_push(event: ImageActionEvent, now: datetime) -> dict[str, Any] | None:
    """A pushed image is pending until its scan result arrives; an index is linked to its
    children; an image the repository does not scan on push gets start-image-scan."""
    detail = event.detail
    tag = detail.image_tag
    if tag and is_cosign_tag(tag):
        return None
    context = _context(event, now)
    if context is None:
        return None
    gate, rule = context
    digest = str(detail.image_digest)
    record = gate.record(detail.repository_name, digest, event.account, event.region)
    if record.decision is not None and record.status != "pending":
        if _push_changes_nothing(rule, record, tag):
            return {"status": record.status, "digest": digest, "why": "already decided"}
        # A tag arrived on a decided image: converge its tags to the decision.
        return _summary(gate.evaluate(record, rule, cascade=False))
    scan_started = None
    if record.scan is None and record.kind != "index" and not gate.dry_run:
        scan_started = _start_scan(gate.registry, detail.repository_name, digest, detail)
    result = gate.evaluate(record, rule)
    summary = _summary(result)
    if scan_started:
        summary["scan"] = scan_started
    return summary


def _push_changes_nothing(rule: GateRule, record: GateRecord, tag: str | None) -> bool:
    if tag is None:
        return True
    if record.status == "pass":
        return record.applied or tag in rule.promotion_tags
    quarantine_tag = render_quarantine_tag(rule.quarantine_tag, record.digest)
    if tag == quarantine_tag:
        return True
    return tag not in rule.promotion_tags and not matches_any(tag, rule.quarantine_removes)


def _start_scan(
    registry: Registry, repository: str, digest: str, detail: ImageActionDetail
) -> str | None:
    media_type = detail.manifest_media_type
    if media_type in INDEX_MEDIA_TYPES:
        return None  # ECR cannot scan an index
    # Asked even where the repository scans on push: the setting may have been turned on after
    # this image was pushed. An image already scanned today answers LimitExceededException
    # (one call, not retried), which is the answer we want.
    return registry.start_image_scan(repository, digest)


def _summary(record: GateRecord) -> dict[str, Any]:
    decision = record.decision
    return {
        "status": record.status,
        "digest": record.digest,
        "reasons": decision.reasons if decision else [],
        "tags": [t.model_dump(mode="json") for t in record.tags],
    }
