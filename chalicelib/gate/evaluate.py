"""The gate's applier: reads what `decide` needs through the ECR gateway and the decision records,
applies the plan, records the decision and announces it (`steward.gate` on EventBridge).

Order and repetition do not matter: a decision is a function of the latest scan result recorded
for the digest and of the registry as it is now."""

from __future__ import annotations

from datetime import datetime

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.models import Finding
from chalicelib.events.models import SEVERITIES
from chalicelib.gate.decide import COMPLETE_STATUSES, decide, plan_tags, unowned_tags
from chalicelib.gate.findings import findings_from
from chalicelib.gate.records import (
    ChildRef,
    ChildVerdict,
    GateRecord,
    GateRecords,
    TagAction,
    publish_decision,
)
from chalicelib.kernel.observability import count, logger
from chalicelib.oci.manifests import INDEX_MEDIA_TYPES, Manifest
from chalicelib.policy.gate import GatePolicy, GateRule


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

    def evaluate(
        self,
        record: GateRecord,
        rule: GateRule,
        *,
        cascade: bool = True,
        retag_unchanged: bool = True,
    ) -> GateRecord:
        """Decide the digest now, apply the decision's tags, record and announce it. With
        `retag_unchanged=False` (the sweep's re-decisions) a verdict equal to the applied one
        leaves the tags alone."""
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
        count(f"GateDecisions{decision.verdict.capitalize()}")
        logger().info(
            "gate decided",
            extra={
                "repository": record.repository,
                "digest": record.digest,
                "verdict": decision.verdict,
                "reasons": decision.reasons,
            },
        )
        revoked = False
        if decision.verdict == "pending" and record.decided_at is None and image.tags:
            record.tags = self._revoke(record, rule, image.tags)
            revoked = any(a.outcome == "applied" for a in record.tags)
        if decision.verdict != "pending":
            record.decided_at = self.now
            # Untagged manifests (index children, pushes by digest) cannot be pulled by name:
            # their verdict is recorded and feeds their indexes, and their tags wait for a tag.
            unchanged = previous[0] == decision.verdict and was_applied
            if unchanged and not retag_unchanged:
                pass  # the tags are where this verdict put them: nothing to put or remove
            elif image.tags:
                record.tags = self._apply(record, rule, image.tags)
                # Applied only when every write of it landed: a put or a removal that failed
                # for good leaves the decision due, so the sweep tries it again.
                failed = [t.tag for t in record.tags if t.outcome == "failed"]
                record.applied = not self.dry_run and not failed
                if failed and not self.dry_run:
                    decision.revisit_at = min(decision.revisit_at or self.now, self.now)
                    count("GateWritesFailed", len(failed))
            else:
                record.tags = []
                record.applied = False
        if not self.dry_run:
            # Announced once per decision on something pullable: an untagged child's verdict
            # is announced through its index. Announced before it is recorded, so a failed
            # put_events is retried with the event rather than lost.
            changed = previous != (record.status, decision.reasons) or not was_applied
            if (revoked or (record.applied and changed)) and self.publish:
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

    def _revoke(self, record: GateRecord, rule: GateRule, tags: list[str]) -> list[TagAction]:
        """Take the gate's tags off an undecided image. ECR deletes an image whose last tag
        goes: an image pushed only as `:approved` is gone, which is what it asked for."""
        actions = unowned_tags(rule, record.digest, tags)
        if not actions or self.dry_run:
            return actions
        removed = self.registry.delete_images(
            record.repository,
            [{"imageDigest": record.digest, "imageTag": a.tag} for a in actions],
        )
        gone = {entry.get("imageTag") for entry in removed.deleted}
        for action in actions:
            action.outcome = "applied" if action.tag in gone else "failed"
        count("GateTagsRevoked", len(gone))
        logger().warning(
            "gate tags not put by the gate removed",
            extra={
                "repository": record.repository,
                "digest": record.digest,
                "tags": sorted(t for t in gone if t),
            },
        )
        return actions

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
