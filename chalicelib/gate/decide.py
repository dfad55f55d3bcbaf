"""The scan gate's pure decisions: a verdict from a scan result, and the tags that follow from it.

- `decide`: from a rule, a scan result, its findings (when a rule needs more than the counts), the
  verdicts of an index's children and `now`, a verdict with a reason for every part of it.
- `plan_tags`: from a verdict and the image's current tags, the tags to put and remove.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.ecr.models import Finding
from chalicelib.events.models import SEVERITIES
from chalicelib.gate.records import (
    ChildVerdict,
    GateDecision,
    ScanResult,
    TagAction,
    Verdict,
)
from chalicelib.oci.manifests import short_digest
from chalicelib.policy.gate import AllowlistEntry, GateRule, render_quarantine_tag
from chalicelib.policy.selection import matches_any

# Basic scanning says COMPLETE; Inspector says INITIAL_SCAN_COMPLETE, then SCAN_COMPLETE on
# rescans. Any other status (FAILED, UNSUPPORTED_IMAGE, ...) is a result that never promotes.
COMPLETE_STATUSES = frozenset({"COMPLETE", "INITIAL_SCAN_COMPLETE", "SCAN_COMPLETE", "ACTIVE"})


def decide(
    rule: GateRule,
    *,
    scan: ScanResult | None,
    findings: list[Finding] | None,
    pending_since: datetime | None,
    now: datetime,
    children: list[ChildVerdict] | None = None,
) -> GateDecision:
    """The verdict for one digest. `children` is given for an index (ECR cannot scan one)."""
    if children is not None:
        return _decide_index(rule, children, pending_since, now)
    timeout_at = (pending_since or now) + timedelta(minutes=rule.scan_timeout_minutes)
    if scan is None:
        if now >= timeout_at:
            return GateDecision(
                verdict="fail",
                reasons=[f"no scan: no scan result within {rule.scan_timeout_minutes} minutes"],
            )
        return GateDecision(
            verdict="pending",
            reasons=[f"waiting for a scan result until {timeout_at:%Y-%m-%dT%H:%M:%SZ}"],
            revisit_at=timeout_at,
        )
    if scan.status not in COMPLETE_STATUSES:
        return GateDecision(
            verdict="fail",
            reasons=[
                f"{scan.source} scan status {scan.status}: a scan that did not complete "
                "never promotes"
            ],
        )
    return _decide_findings(rule, scan, findings, now)


def _decide_findings(
    rule: GateRule, scan: ScanResult, findings: list[Finding] | None, now: datetime
) -> GateDecision:
    reasons: list[str] = []
    counted: list[Finding] = []
    revisit: datetime | None = None
    if findings is None:
        counts = {s: scan.counts.get(s, 0) for s in SEVERITIES if scan.counts.get(s, 0)}
        if rule.needs_findings() and counts:
            reasons.append("findings unavailable: every finding counts")
    else:
        by_cve: dict[str, list[AllowlistEntry]] = {}
        for listed in rule.allowlist:
            by_cve.setdefault(listed.cve, []).append(listed)
        for finding in findings:
            entry = next((e for e in by_cve.get(finding.id, ()) if e.covers(finding)), None)
            if entry is not None and entry.active(now):
                reasons.append(
                    f"{finding.id} ({finding.package or 'any package'}) allowlisted until "
                    f"{entry.expires}: {entry.reason}"
                )
                revisit = min(revisit or entry.expiry(), entry.expiry())
                continue
            if entry is not None:
                reasons.append(f"{finding.id}: allowlist entry expired on {entry.expires}, counted")
            if rule.ignore_unfixed and finding.fix_available is False:
                reasons.append(f"{finding.id}: no fix available, ignored")
                continue
            counted.append(finding)
        counts = {}
        for finding in counted:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1

    failing_severities = []
    for severity, limit in rule.max_counts.items():
        found = counts.get(severity, 0)
        if found > limit:
            failing_severities.append(severity)
            reasons.append(f"{severity}: {found} findings, at most {limit} allowed")
    over_cvss = [
        f for f in counted if rule.max_cvss is not None and (f.score or 0) >= rule.max_cvss
    ]
    if over_cvss:
        ids = ", ".join(f"{f.id} ({f.score})" for f in over_cvss[:10])
        reasons.append(f"CVSS at or above {rule.max_cvss}: {ids}")
    over_ids = {id(f) for f in over_cvss}
    failing = [f for f in counted if f.severity in failing_severities or id(f) in over_ids]
    if failing_severities or over_cvss:
        return GateDecision(
            verdict="fail",
            reasons=reasons,
            counts=counts,
            failing_findings=failing,
            revisit_at=revisit,
        )
    limits = ", ".join(f"{s} {counts.get(s, 0)}/{n}" for s, n in rule.max_counts.items())
    reasons.insert(0, f"{scan.source} scan {scan.status}: within limits ({limits or 'none'})")
    return GateDecision(verdict="pass", reasons=reasons, counts=counts, revisit_at=revisit)


def _decide_index(
    rule: GateRule, children: list[ChildVerdict], pending_since: datetime | None, now: datetime
) -> GateDecision:
    lines = [
        f"child {short_digest(c.digest)}{f' ({c.platform})' if c.platform else ''}: {c.verdict}"
        f" — {c.summary}"
        for c in children
    ]
    waiting = [c for c in children if c.verdict == "pending"]
    failed = [c for c in children if c.verdict == "fail"]
    if failed:
        return GateDecision(
            verdict="fail",
            reasons=[f"index: {len(failed)} of {len(children)} children failed", *lines],
            children=children,
        )
    if waiting:
        timeout_at = (pending_since or now) + timedelta(minutes=rule.scan_timeout_minutes)
        if now >= timeout_at:
            return GateDecision(
                verdict="fail",
                reasons=[
                    f"no scan: {len(waiting)} of {len(children)} children have no result "
                    f"within {rule.scan_timeout_minutes} minutes",
                    *lines,
                ],
                children=children,
            )
        return GateDecision(
            verdict="pending",
            reasons=[f"index: waiting for {len(waiting)} of {len(children)} children", *lines],
            children=children,
            revisit_at=timeout_at,
        )
    if not children:
        return GateDecision(
            verdict="fail", reasons=["index lists no scannable image: nothing vouches for it"]
        )
    return GateDecision(
        verdict="pass",
        reasons=[f"index: all {len(children)} children passed", *lines],
        children=children,
    )


def unowned_tags(rule: GateRule, digest: str, current_tags: list[str]) -> list[TagAction]:
    """The promotion and quarantine tags on an image the gate has never decided: whoever put
    them there did not go through the gate (a push of `:approved`), so they come off at once,
    before anything deploys the unscanned image by them."""
    quarantine_tag = render_quarantine_tag(rule.quarantine_tag, digest)
    return [
        TagAction(
            action="remove",
            tag=tag,
            reason=f"{'promotion' if tag in rule.promotion_tags else 'quarantine'} tag not put "
            "by the gate: the image is not decided",
        )
        for tag in sorted(set(current_tags))
        if tag in rule.promotion_tags or tag == quarantine_tag
    ]


def plan_tags(
    rule: GateRule, verdict: Verdict, digest: str, current_tags: list[str]
) -> list[TagAction]:
    """Tags to put and remove for a decided digest; the image itself always stays.

    Quarantine puts its tag before removing any: ECR deletes an image whose last tag goes.
    """
    quarantine_tag = render_quarantine_tag(rule.quarantine_tag, digest)
    have = set(current_tags)
    actions: list[TagAction] = []
    if verdict == "pass":
        for tag in rule.promotion_tags:
            if tag in have:
                actions.append(TagAction(action="keep", tag=tag, reason="already promoted"))
            else:
                actions.append(TagAction(action="put", tag=tag, reason="promotion: gate passed"))
        if quarantine_tag in have:
            actions.append(
                TagAction(action="remove", tag=quarantine_tag, reason="quarantine lifted")
            )
        return actions
    if verdict != "fail":
        return actions
    if quarantine_tag in have:
        actions.append(TagAction(action="keep", tag=quarantine_tag, reason="already quarantined"))
    else:
        actions.append(
            TagAction(action="put", tag=quarantine_tag, reason="quarantine: gate failed")
        )
    for tag in sorted(have - {quarantine_tag}):
        if tag in rule.promotion_tags:
            actions.append(TagAction(action="remove", tag=tag, reason="promotion tag: gate failed"))
        elif matches_any(tag, rule.quarantine_removes):
            actions.append(TagAction(action="remove", tag=tag, reason="release tag: gate failed"))
    return actions
