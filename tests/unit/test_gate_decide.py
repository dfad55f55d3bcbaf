"""The gate's pure parts: the verdict and its reasons, the tag plan, findings from both scanners,
and the policy section's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.ecr.models import Finding
from chalicelib.gate.decide import decide, plan_tags
from chalicelib.gate.findings import findings_from
from chalicelib.gate.records import ChildVerdict, ScanResult
from chalicelib.policy import PolicyError, parse_policy
from chalicelib.policy.gate import GateRule

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def scan(counts: dict[str, int], status: str = "COMPLETE") -> ScanResult:
    return ScanResult(source="basic", status=status, counts=counts, received_at=NOW)


def rule(**fields) -> GateRule:
    return GateRule(repositories=["*"], **fields)


def test_a_failed_scan_never_promotes() -> None:
    decision = decide(rule(), scan=scan({}, "FAILED"), findings=None, pending_since=NOW, now=NOW)
    assert decision.verdict == "fail"
    assert "FAILED" in decision.reasons[0]


def test_pending_until_the_timeout_then_no_scan() -> None:
    pushed = NOW - timedelta(minutes=59)
    waiting = decide(rule(), scan=None, findings=None, pending_since=pushed, now=NOW)
    assert waiting.verdict == "pending"
    assert waiting.revisit_at == pushed + timedelta(minutes=60)
    late = decide(
        rule(), scan=None, findings=None, pending_since=pushed, now=NOW + timedelta(minutes=1)
    )
    assert (late.verdict, late.reasons) == ("fail", ["no scan: no scan result within 60 minutes"])


def test_counts_against_limits_missing_severity_is_zero() -> None:
    strict = rule(max_counts={"CRITICAL": 0, "HIGH": 2})
    ok = decide(
        strict, scan=scan({"HIGH": 2, "LOW": 40}), findings=None, pending_since=NOW, now=NOW
    )
    assert ok.verdict == "pass"
    assert ok.reasons[0] == "basic scan COMPLETE: within limits (CRITICAL 0/0, HIGH 2/2)"
    bad = decide(strict, scan=scan({"HIGH": 3}), findings=None, pending_since=NOW, now=NOW)
    assert bad.verdict == "fail"
    assert bad.reasons == ["HIGH: 3 findings, at most 2 allowed"]


def test_allowlist_package_scope_expiry_and_revisit() -> None:
    entry = {"cve": "CVE-1", "package": "openssl", "reason": "mitigated", "expires": "2026-12-01"}
    gate = rule(allowlist=[entry])
    found = [
        Finding(id="CVE-1", severity="CRITICAL", package="openssl"),
        Finding(id="CVE-1", severity="CRITICAL", package="curl"),
    ]
    decision = decide(gate, scan=scan({"CRITICAL": 2}), findings=found, pending_since=NOW, now=NOW)
    # The entry covers openssl's finding only; curl's still fails the image.
    assert decision.verdict == "fail"
    assert decision.counts == {"CRITICAL": 1}
    assert [f.package for f in decision.failing_findings] == ["curl"]
    assert decision.revisit_at == datetime(2026, 12, 2, tzinfo=UTC)

    later = decide(
        gate,
        scan=scan({"CRITICAL": 1}),
        findings=found[:1],
        pending_since=NOW,
        now=datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert later.verdict == "fail"
    assert "CVE-1: allowlist entry expired on 2026-12-01, counted" in later.reasons


def test_cvss_threshold_and_unfixed_findings() -> None:
    gate = rule(max_counts={}, max_cvss=9.0, ignore_unfixed=True)
    found = [
        Finding(id="CVE-A", severity="HIGH", score=9.8, fix_available=False),
        Finding(id="CVE-B", severity="HIGH", score=9.1, fix_available=True),
        Finding(id="CVE-C", severity="MEDIUM", score=5.0, fix_available=True),
    ]
    decision = decide(
        gate, scan=scan({"HIGH": 2, "MEDIUM": 1}), findings=found, pending_since=NOW, now=NOW
    )
    assert decision.verdict == "fail"
    assert "CVE-A: no fix available, ignored" in decision.reasons
    assert [f.id for f in decision.failing_findings] == ["CVE-B"]


def test_index_needs_every_child_and_lists_their_verdicts() -> None:
    def child(verdict: str, arch: str) -> ChildVerdict:
        return ChildVerdict(digest=DIGEST, platform=f"linux/{arch}", verdict=verdict, summary="x")

    waiting = decide(
        rule(),
        scan=None,
        findings=None,
        pending_since=NOW,
        now=NOW,
        children=[child("pass", "amd64"), child("pending", "arm64")],
    )
    assert waiting.verdict == "pending"
    failed = decide(
        rule(),
        scan=None,
        findings=None,
        pending_since=NOW,
        now=NOW,
        children=[child("pass", "amd64"), child("fail", "arm64")],
    )
    assert failed.verdict == "fail"
    assert any("(linux/arm64): fail" in r for r in failed.reasons)
    passed = decide(
        rule(),
        scan=None,
        findings=None,
        pending_since=NOW,
        now=NOW,
        children=[child("pass", "amd64"), child("pass", "arm64")],
    )
    assert passed.verdict == "pass"
    assert (
        decide(rule(), scan=None, findings=None, pending_since=NOW, now=NOW, children=[]).verdict
        == "fail"
    )


def test_tag_plan_quarantine_puts_first_and_lift_removes_it() -> None:
    gate = rule(promotion_tags=["approved", "prod"], quarantine_removes=["latest", "v*"])
    quarantine = plan_tags(gate, "fail", DIGEST, ["approved", "latest", "v1.2", "build-7"])
    assert [(a.action, a.tag) for a in quarantine] == [
        ("put", "quarantined-abababababab"),
        ("remove", "approved"),
        ("remove", "latest"),
        ("remove", "v1.2"),
    ]
    lift = plan_tags(gate, "pass", DIGEST, ["build-7", "quarantined-abababababab", "prod"])
    assert [(a.action, a.tag) for a in lift] == [
        ("put", "approved"),
        ("keep", "prod"),
        ("remove", "quarantined-abababababab"),
    ]
    assert plan_tags(gate, "pending", DIGEST, ["latest"]) == []


def test_findings_from_basic_and_enhanced_results() -> None:
    raw = {
        "findings": [
            {
                "name": "CVE-1",
                "severity": "HIGH",
                "attributes": [
                    {"key": "package_name", "value": "zlib"},
                    {"key": "CVSS2_SCORE", "value": "7.5"},
                ],
            }
        ],
        "enhancedFindings": [
            {
                "severity": "UNTRIAGED",
                "score": 8.1,
                "fixAvailable": "NO",
                "packageVulnerabilityDetails": {
                    "vulnerabilityId": "CVE-2",
                    "vulnerablePackages": [{"name": "glibc", "version": "2.31"}],
                },
            }
        ],
    }
    basic, enhanced = findings_from(raw)
    assert (basic.id, basic.package, basic.score, basic.fix_available) == (
        "CVE-1",
        "zlib",
        7.5,
        None,
    )
    assert (enhanced.id, enhanced.severity, enhanced.fix_available) == ("CVE-2", "UNDEFINED", False)


def test_policy_section_is_validated_by_field() -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(
            "gate:\n  rules:\n    - repositories: ['*']\n      max_counts: {SEVERE: 1}\n"
            "      quarantine_tag: 'bad tag'\n"
        )
    paths = [path for path, _ in error.value.problems]
    assert paths == ["gate.rules[0].max_counts.SEVERE.[key]", "gate.rules[0].quarantine_tag"]
    loaded = parse_policy("gate:\n  exempt: ['tools/*']\n  rules:\n    - repositories: ['*']\n")
    assert loaded.policy.gate.rule_for("tools/x") is None
    assert loaded.policy.gate.rule_for("team/app") is not None
