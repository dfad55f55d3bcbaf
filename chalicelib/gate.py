"""The scan gate: scan results → promote or quarantine, failing closed.

- `decide` is pure: from a rule, a scan result, its findings (when a rule needs more than the
  counts), the verdicts of an index's children and `now`, it returns a verdict with a reason for
  every part of it.
- `plan_tags` is pure: from a verdict and the image's current tags, the tags to put and remove.
- `evaluate` reads what `decide` needs through the registry gateway and the decision records,
  applies the plan, records the decision and announces it (`steward.gate` on EventBridge).

Order and repetition do not matter: a decision is a function of the latest scan result recorded
for the digest and of the registry as it is now, so a scan event before its push event, or the
same event twice, ends in the same state. A pending image is failed closed by the scheduled sweep
once the rule's timeout passes ("no scan").
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.events import SEVERITIES, Envelope
from chalicelib.gate_records import (
    ChildRef,
    ChildVerdict,
    Finding,
    GateDecision,
    GateRecord,
    GateRecords,
    ScanResult,
    TagAction,
    Verdict,
)
from chalicelib.images import INDEX_MEDIA_TYPES, Manifest
from chalicelib.registry import Registry, RegistryError
from chalicelib.selection import matches_any

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]
# Basic scanning says COMPLETE; Inspector says INITIAL_SCAN_COMPLETE, then SCAN_COMPLETE on
# rescans. Any other status (FAILED, UNSUPPORTED_IMAGE, ...) is a result that never promotes.
COMPLETE_STATUSES = frozenset({"COMPLETE", "INITIAL_SCAN_COMPLETE", "SCAN_COMPLETE", "ACTIVE"})
# cosign's tag conventions: signatures, attestations and SBOMs are not images to gate.
_COSIGN_TAG = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|att|sbom)$")


# --- the policy section ---------------------------------------------------------------------


class AllowlistEntry(BaseModel):
    """A finding accepted until `expires`; afterwards it counts again, and decisions say so."""

    model_config = ConfigDict(extra="forbid")

    cve: str = Field(description="Vulnerability id, e.g. CVE-2024-3094 or GHSA-…")
    package: str | None = Field(default=None, description="Only this package's finding.")
    reason: str = Field(min_length=1, description="Why it is accepted (recorded in decisions).")
    expires: date = Field(description="Last day the entry counts (UTC).")

    def covers(self, finding: Finding) -> bool:
        return finding.id == self.cve and (self.package is None or self.package == finding.package)

    def active(self, now: datetime) -> bool:
        return now.astimezone(UTC).date() <= self.expires

    def expiry(self) -> datetime:
        return datetime.combine(self.expires + timedelta(days=1), datetime.min.time(), UTC)


class GateRule(BaseModel):
    """One `gate.rules` entry: which repositories it covers and what passes."""

    model_config = ConfigDict(extra="forbid")

    repositories: list[str] = Field(min_length=1, description="Repository name globs (fnmatch).")
    max_counts: dict[Severity, int] = Field(
        default_factory=lambda: {"CRITICAL": 0},  # type: ignore[arg-type,dict-item]
        description="Most findings allowed per severity; a severity not listed is unlimited.",
    )
    max_cvss: float | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Fail on any counted finding whose CVSS score is at least this.",
    )
    ignore_unfixed: bool = Field(
        default=False,
        description="Do not count findings the scanner says have no fix (enhanced scanning).",
    )
    allowlist: list[AllowlistEntry] = Field(default_factory=list)
    scan_timeout_minutes: int = Field(
        default=60, ge=1, description="Fail closed when no scan result arrives within this."
    )
    promotion_tags: list[str] = Field(
        default_factory=lambda: ["approved"], description="Tags put on a passing digest."
    )
    quarantine_removes: list[str] = Field(
        default_factory=lambda: ["latest"],
        description="Tag globs taken off a failing digest (promotion tags always are).",
    )
    quarantine_tag: str = Field(
        default="quarantined-{digest:12}",
        description="Tag put on a failing digest; {digest:12} keeps it per image, because one "
        "tag can name only one image in a repository.",
    )

    @field_validator("quarantine_tag")
    @classmethod
    def _renders(cls, value: str) -> str:
        rendered = render_quarantine_tag(value, "sha256:" + "0" * 64)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", rendered):
            raise ValueError(f"renders {rendered!r}, which is not a valid tag")
        return value

    def needs_findings(self) -> bool:
        return bool(self.allowlist) or self.max_cvss is not None or self.ignore_unfixed

    def matches(self, repository: str) -> bool:
        return matches_any(repository, self.repositories)


class GatePolicy(BaseModel):
    """The `gate:` section: the first rule whose globs match a repository gates it."""

    model_config = ConfigDict(extra="forbid")

    rules: list[GateRule] = Field(default_factory=list)
    exempt: list[str] = Field(
        default_factory=list, description="Repository globs the gate never acts on."
    )

    def rule_for(self, repository: str) -> GateRule | None:
        if matches_any(repository, self.exempt):
            return None
        return next((rule for rule in self.rules if rule.matches(repository)), None)


def render_quarantine_tag(template: str, digest: str) -> str:
    hexpart = digest.split(":", 1)[-1]
    return template.replace("{digest:12}", hexpart[:12]).replace("{digest}", hexpart)


# --- deciding (pure) ---------------------------------------------------------------------------


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
        f"child {_short(c.digest)}{f' ({c.platform})' if c.platform else ''}: {c.verdict}"
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


def _short(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


# --- reading findings ------------------------------------------------------------------------


def findings_from(raw: dict[str, Any]) -> list[Finding]:
    """Normalise describe-image-scan-findings' basic `findings` and enhanced `enhancedFindings`."""
    out: list[Finding] = []
    for item in raw.get("findings", []):
        attributes = {a.get("key"): a.get("value") for a in item.get("attributes", [])}
        score = attributes.get("CVSS3_SCORE") or attributes.get("CVSS2_SCORE")
        out.append(
            Finding(
                id=item.get("name", "?"),
                severity=item.get("severity", "UNDEFINED"),
                package=attributes.get("package_name"),
                package_version=attributes.get("package_version"),
                score=float(score) if score else None,
                uri=item.get("uri"),
            )
        )
    for item in raw.get("enhancedFindings", []):
        details = item.get("packageVulnerabilityDetails", {})
        packages = details.get("vulnerablePackages") or [{}]
        fix = item.get("fixAvailable")
        out.append(
            Finding(
                id=details.get("vulnerabilityId") or item.get("title", "?"),
                severity=_enhanced_severity(item.get("severity", "UNDEFINED")),
                package=packages[0].get("name"),
                package_version=packages[0].get("version"),
                score=item.get("score"),
                fix_available=None if fix is None else fix != "NO",
                uri=details.get("sourceUrl"),
            )
        )
    return out


def _enhanced_severity(value: str) -> str:
    # Inspector says UNTRIAGED where ECR's counts say UNDEFINED.
    return "UNDEFINED" if value == "UNTRIAGED" else value


# --- evaluating and applying -------------------------------------------------------------------


class Gate:
    """One evaluation context: a registry, the records, the policy and `now`."""

    def __init__(
        self,
        registry: Registry,
        store: GateRecords,
        policy: GatePolicy,
        *,
        policy_version: str,
        now: datetime,
        dry_run: bool = False,
        publish: bool = True,
    ) -> None:
        self.registry = registry
        self.store = store
        self.policy = policy
        self.policy_version = policy_version
        self.now = now
        self.dry_run = dry_run
        self.publish = publish

    def record(self, repository: str, digest: str, account: str, region: str) -> GateRecord:
        found = self.store.get(repository, digest)
        record = found or GateRecord(repository=repository, digest=digest)
        record.account = record.account or account
        record.region = record.region or region
        if record.pending_since is None:
            record.pending_since = self.now
        return record

    def evaluate(self, record: GateRecord, rule: GateRule, *, cascade: bool = True) -> GateRecord:
        """Decide the digest now, apply the decision's tags, record and announce it."""
        previous = (record.status, record.decision.reasons if record.decision else None)
        was_applied = record.applied
        image = self.registry.describe_image(record.repository, digest=record.digest)
        if record.kind is None:
            record.kind = "index" if image.media_type in INDEX_MEDIA_TYPES else "image"
        if record.kind == "index" and not record.children:
            self._link_children(record)
        children = self._children_verdicts(record) if record.kind == "index" else None
        findings = None
        if children is None and self._needs_findings(record, rule, always=False):
            findings = self._findings(record)
        decision = decide(
            rule,
            scan=record.scan,
            findings=findings,
            pending_since=record.pending_since,
            now=self.now,
            children=children,
        )
        if (
            decision.verdict == "fail"
            and findings is None
            and self._needs_findings(record, rule, always=True)
        ):
            # Counts sufficed to fail it; the findings say which ones, for the announcement.
            # They never change the verdict: the counts are those of the scan being decided.
            failing = {
                s for s, limit in rule.max_counts.items() if decision.counts.get(s, 0) > limit
            }
            decision.failing_findings = [
                f for f in self._findings(record) or [] if f.severity in failing
            ]
        record.decision = decision
        record.status = decision.verdict
        record.policy_version = self.policy_version
        if decision.verdict != "pending":
            record.decided_at = self.now
            # Untagged manifests (index children, pushes by digest) cannot be pulled by name:
            # their verdict is recorded and feeds their indexes, and their tags wait for a tag.
            if image.tags:
                record.tags = self._apply(record, rule, image.tags)
                record.applied = not self.dry_run
            else:
                record.tags = []
                record.applied = False
        if not self.dry_run:
            # Announced once per decision on something pullable: an untagged child's verdict
            # is announced through its index. Announced before it is recorded, so a failed
            # put_events is retried with the event rather than lost.
            changed = previous != (record.status, decision.reasons) or not was_applied
            if record.applied and changed and self.publish:
                from chalicelib.gate_records import publish_decision

                publish_decision(record)
            self.store.put(record)
        if cascade and decision.verdict != "pending":
            for parent in record.parents:
                self._reevaluate_parent(record.repository, parent, rule)
        return record

    def _reevaluate_parent(self, repository: str, parent: str, rule: GateRule) -> None:
        parent_record = self.store.get(repository, parent)
        if parent_record is None or parent_record.kind != "index":
            return  # the index's own push event links and decides it
        try:
            self.evaluate(parent_record, rule, cascade=False)
        except RegistryError as error:
            if error.transient:
                raise

    def _needs_findings(self, record: GateRecord, rule: GateRule, *, always: bool) -> bool:
        scan = record.scan
        return (
            scan is not None
            and scan.status in COMPLETE_STATUSES
            and (always or rule.needs_findings())
            and any(scan.counts.get(s, 0) for s in SEVERITIES)
        )

    def _findings(self, record: GateRecord) -> list[Finding] | None:
        try:
            return findings_from(self.registry.scan_findings(record.repository, record.digest))
        except RegistryError as error:
            if error.transient:
                raise
            return None  # decide() then counts every finding: fail closed

    def _link_children(self, record: GateRecord) -> None:
        manifest: Manifest = self.registry.get_manifest(record.repository, digest=record.digest)
        refs = []
        for child in manifest.children():
            platform = child.platform or {}
            label = "/".join(
                p
                for p in (platform.get("os"), platform.get("architecture"), platform.get("variant"))
                if p
            )
            attestation = platform.get("os") == "unknown" or bool(
                (child.annotations or {}).get("vnd.docker.reference.type")
            )
            refs.append(
                ChildRef(digest=child.digest, platform=label or None, scannable=not attestation)
            )
        record.children = refs
        if not self.dry_run:
            for ref in refs:
                if ref.scannable:
                    self.store.add_parent(record.repository, ref.digest, record.digest)

    def _children_verdicts(self, record: GateRecord) -> list[ChildVerdict]:
        verdicts = []
        for ref in record.children:
            if not ref.scannable:
                continue
            child = self.store.get(record.repository, ref.digest)
            decision = child.decision if child else None
            if decision is None or child is None or child.status == "pending":
                verdicts.append(
                    ChildVerdict(
                        digest=ref.digest,
                        platform=ref.platform,
                        verdict="pending",
                        summary="no scan result yet",
                    )
                )
                continue
            verdicts.append(
                ChildVerdict(
                    digest=ref.digest,
                    platform=ref.platform,
                    verdict=child.status,
                    summary="; ".join(decision.reasons[:3]),
                )
            )
        return verdicts

    def _apply(self, record: GateRecord, rule: GateRule, tags: list[str]) -> list[TagAction]:
        actions = plan_tags(rule, record.status, record.digest, tags)
        if self.dry_run:
            return actions
        manifest: Manifest | None = None
        put_failed = False
        for action in actions:
            if action.action == "keep":
                action.outcome = "unchanged"
            elif action.action == "put":
                if manifest is None:
                    manifest = self.registry.get_manifest(record.repository, digest=record.digest)
                try:
                    outcome = self.registry.put_manifest(record.repository, manifest, action.tag)
                except RegistryError as error:
                    if error.transient:
                        raise
                    action.outcome = "failed"
                    action.reason += f" ({error.code})"
                    put_failed = True
                    continue
                action.outcome = "applied" if outcome.status == "created" else "unchanged"
        removes = [a for a in actions if a.action == "remove"]
        if removes and put_failed and len(removes) >= len(tags):
            # The quarantine tag did not land: removing every tag would delete the image.
            removes[0].outcome = "failed"
            removes[0].reason += " (kept: the image's last tag)"
            removes = removes[1:]
        if removes:
            removed = self.registry.delete_images(
                record.repository,
                [{"imageDigest": record.digest, "imageTag": a.tag} for a in removes],
            )
            gone = {entry.get("imageTag") for entry in removed.deleted}
            for action in removes:
                action.outcome = "applied" if action.tag in gone else "failed"
        return actions


# --- reactions (on_ecr_event) ----------------------------------------------------------------


def _context(event: Envelope[Any], now: datetime) -> tuple[Gate, GateRule] | None:
    """The gate and the rule for the event's repository; None when no gate rule applies."""
    from chalicelib.gate_records import records
    from chalicelib.policy import current_policy, dry_run
    from chalicelib.registry import registry_for

    loaded = current_policy()
    gate_policy: GatePolicy = loaded.policy.gate
    if not gate_policy.rules:
        return None
    gate = Gate(
        registry_for(event.account, event.region),
        records(),
        gate_policy,
        policy_version=loaded.fingerprint,
        now=now,
        dry_run=dry_run(loaded.policy),
    )
    rule = gate_policy.rule_for(event.detail.repository_name)
    return None if rule is None else (gate, rule)


def react_to_scan(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
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


def react_to_push(event: Envelope[Any], now: datetime) -> dict[str, Any] | None:
    """A pushed image is pending until its scan result arrives; an index is linked to its
    children; an image the repository does not scan on push gets start-image-scan."""
    detail = event.detail
    tag = detail.image_tag
    if tag and _COSIGN_TAG.match(tag):
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


def _start_scan(registry: Registry, repository: str, digest: str, detail: Any) -> str | None:
    media_type = getattr(detail, "manifest_media_type", None)
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


# --- the sweep and status ----------------------------------------------------------------------


def sweep(now: datetime) -> dict[str, Any]:
    """Fail closed what has waited past its timeout; re-decide what a policy change or an
    expired allowlist entry may have changed. Called by the scheduled function."""
    from chalicelib.gate_records import records
    from chalicelib.policy import current_policy, dry_run
    from chalicelib.registry import ImageNotFound, RepositoryNotFound, registry_for

    loaded = current_policy()
    policy: GatePolicy = loaded.policy.gate
    outcome: dict[str, int] = {"examined": 0, "pass": 0, "fail": 0, "pending": 0, "skipped": 0}
    store = records()
    for due in list(store.due(now, loaded.fingerprint)):
        outcome["examined"] += 1
        rule = policy.rule_for(due.repository)
        # Read again: deciding a child earlier in this sweep may have decided its index.
        record = store.get(due.repository, due.digest) or due
        if rule is None or not record.account:
            outcome["skipped"] += 1
            continue
        gate = Gate(
            registry_for(record.account, record.region),
            store,
            policy,
            policy_version=loaded.fingerprint,
            now=now,
            dry_run=dry_run(loaded.policy),
        )
        try:
            decided = gate.evaluate(record, rule)
        except (ImageNotFound, RepositoryNotFound):
            outcome["skipped"] += 1
            continue
        outcome[decided.status] += 1
    return outcome


def gate_status(repository: str, digest: str) -> dict[str, Any] | None:
    from chalicelib.gate_records import records

    found = records().get(repository, digest)
    if found is None or found.pending_since is None:
        return None  # unknown, or only linked from an index so far
    return found.model_dump(mode="json")
