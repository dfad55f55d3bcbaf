"""The gate's pure parts: the verdict and its reasons, the tag plan, findings from both scanners,
and the policy section's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.ecr.models import Finding
from chalicelib.gate.decide import decide, plan_tags
from chalicelib.gate.findings import findings_from
from chalicelib.gate.records import ChildVerdict, ScanResult
from chalicelib.policy.document import PolicyError, parse_policy
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


# --- every reason, count and revisit time, exactly (what the records and events carry) -------


def test_counts_only_results_drop_zero_severities_and_say_when_findings_were_needed() -> None:
    gate = rule(max_counts={"CRITICAL": 0}, ignore_unfixed=True)
    decision = decide(
        gate, scan=scan({"CRITICAL": 0, "LOW": 3}), findings=None, pending_since=NOW, now=NOW
    )
    assert decision.model_dump(include={"verdict", "reasons", "counts", "revisit_at"}) == {
        "verdict": "pass",
        "reasons": [
            "basic scan COMPLETE: within limits (CRITICAL 0/0)",
            "findings unavailable: every finding counts",
        ],
        "counts": {"LOW": 3},
        "revisit_at": None,
    }
    # Without findings to look at, nothing is said about them when nothing was found.
    clean = decide(gate, scan=scan({"LOW": 0}), findings=None, pending_since=NOW, now=NOW)
    assert clean.reasons == ["basic scan COMPLETE: within limits (CRITICAL 0/0)"]
    assert clean.counts == {}
    # A rule that needs no findings says nothing either.
    plain = decide(rule(), scan=scan({"LOW": 3}), findings=None, pending_since=NOW, now=NOW)
    assert plain.reasons == ["basic scan COMPLETE: within limits (CRITICAL 0/0)"]
    none = decide(rule(max_counts={}), scan=scan({}), findings=None, pending_since=NOW, now=NOW)
    assert none.reasons == ["basic scan COMPLETE: within limits (none)"]


def test_allowlisted_findings_are_named_and_the_pass_revisits_at_expiry() -> None:
    gate = rule(
        max_counts={"CRITICAL": 0, "HIGH": 1},
        allowlist=[
            {"cve": "CVE-1", "reason": "not reachable", "expires": "2026-12-01"},
            {"cve": "CVE-2", "package": "zlib", "reason": "patched", "expires": "2026-12-24"},
        ],
    )
    found = [
        Finding(id="CVE-1", severity="CRITICAL"),
        Finding(id="CVE-2", severity="CRITICAL", package="zlib"),
        Finding(id="CVE-3", severity="HIGH"),
        Finding(id="CVE-4", severity="LOW"),
        Finding(id="CVE-5", severity="LOW"),
    ]
    decision = decide(gate, scan=scan({}), findings=found, pending_since=NOW, now=NOW)
    assert decision.verdict == "pass"
    assert decision.reasons == [
        "basic scan COMPLETE: within limits (CRITICAL 0/0, HIGH 1/1)",
        "CVE-1 (any package) allowlisted until 2026-12-01: not reachable",
        "CVE-2 (zlib) allowlisted until 2026-12-24: patched",
    ]
    assert decision.counts == {"HIGH": 1, "LOW": 2}
    # The earliest expiry: the decision may change then without a new scan.
    assert decision.revisit_at == datetime(2026, 12, 2, tzinfo=UTC)


def test_a_failing_decision_lists_what_failed_and_keeps_its_revisit_time() -> None:
    gate = rule(
        max_counts={"HIGH": 0},
        allowlist=[{"cve": "CVE-1", "reason": "r", "expires": "2026-12-01"}],
    )
    found = [Finding(id="CVE-1", severity="HIGH"), Finding(id="CVE-2", severity="HIGH")]
    decision = decide(gate, scan=scan({}), findings=found, pending_since=NOW, now=NOW)
    assert decision.verdict == "fail"
    assert decision.reasons == [
        "CVE-1 (any package) allowlisted until 2026-12-01: r",
        "HIGH: 1 findings, at most 0 allowed",
    ]
    assert decision.revisit_at == datetime(2026, 12, 2, tzinfo=UTC)
    assert [f.id for f in decision.failing_findings] == ["CVE-2"]


def test_cvss_limit_is_inclusive_and_a_missing_score_is_zero() -> None:
    gate = rule(max_counts={}, max_cvss=7.0)
    at = decide(
        gate,
        scan=scan({}),
        findings=[Finding(id="CVE-A", severity="HIGH", score=7.0)],
        pending_since=NOW,
        now=NOW,
    )
    assert (at.verdict, at.reasons) == ("fail", ["CVSS at or above 7.0: CVE-A (7.0)"])
    unscored = decide(
        rule(max_counts={}, max_cvss=0.5),
        scan=scan({}),
        findings=[Finding(id="CVE-B", severity="HIGH")],
        pending_since=NOW,
        now=NOW,
    )
    assert unscored.verdict == "pass"
    many = [Finding(id=f"CVE-{n}", severity="HIGH", score=9.0) for n in range(12)]
    listed = decide(gate, scan=scan({}), findings=many, pending_since=NOW, now=NOW)
    # Ten named, at most: a reason is read by people.
    assert listed.reasons == [
        "CVSS at or above 7.0: " + ", ".join(f"CVE-{n} (9.0)" for n in range(10))
    ]
    assert len(listed.failing_findings) == 12


def test_no_scan_times_out_at_exactly_the_timeout() -> None:
    pushed = NOW - timedelta(minutes=60)
    late = decide(rule(), scan=None, findings=None, pending_since=pushed, now=NOW)
    assert late.verdict == "fail"
    # With no pending time, the clock starts now.
    fresh = decide(rule(), scan=None, findings=None, pending_since=None, now=NOW)
    assert fresh.verdict == "pending"
    assert fresh.reasons == ["waiting for a scan result until 2026-11-27T13:00:00Z"]
    assert fresh.revisit_at == NOW + timedelta(minutes=60)
    failed = decide(
        rule(), scan=scan({}, "UNSUPPORTED_IMAGE"), findings=None, pending_since=NOW, now=NOW
    )
    assert failed.reasons == [
        "basic scan status UNSUPPORTED_IMAGE: a scan that did not complete never promotes"
    ]


@pytest.mark.parametrize("status", ["COMPLETE", "INITIAL_SCAN_COMPLETE", "SCAN_COMPLETE", "ACTIVE"])
def test_every_complete_status_is_decided_on_its_findings(status: str) -> None:
    decision = decide(rule(), scan=scan({}, status), findings=None, pending_since=NOW, now=NOW)
    assert decision.reasons == [f"basic scan {status}: within limits (CRITICAL 0/0)"]


def child(verdict: str, platform: str | None = "linux/amd64") -> ChildVerdict:
    return ChildVerdict(digest=DIGEST, platform=platform, verdict=verdict, summary="why")


def test_index_reasons_children_and_timeout_exactly() -> None:
    children = [child("pass"), child("pending", None)]
    lines = [
        "child sha256:abababababab (linux/amd64): pass — why",
        "child sha256:abababababab: pending — why",
    ]
    pushed = NOW - timedelta(minutes=59)
    waiting = decide(
        rule(), scan=None, findings=None, pending_since=pushed, now=NOW, children=children
    )
    assert waiting.model_dump(include={"verdict", "reasons", "revisit_at"}) == {
        "verdict": "pending",
        "reasons": ["index: waiting for 1 of 2 children", *lines],
        "revisit_at": pushed + timedelta(minutes=60),
    }
    assert waiting.children == children
    late = decide(
        rule(),
        scan=None,
        findings=None,
        pending_since=pushed,
        now=NOW + timedelta(minutes=1),
        children=children,
    )
    assert late.verdict == "fail"
    assert late.reasons == ["no scan: 1 of 2 children have no result within 60 minutes", *lines]
    assert late.children == children
    assert late.revisit_at is None
    # Without a pending time the index waits from now.
    fresh = decide(rule(), scan=None, findings=None, pending_since=None, now=NOW, children=children)
    assert fresh.verdict == "pending" and fresh.revisit_at == NOW + timedelta(minutes=60)

    failed = decide(
        rule(),
        scan=None,
        findings=None,
        pending_since=NOW,
        now=NOW,
        children=[child("fail"), child("pending")],
    )
    assert failed.reasons[0] == "index: 1 of 2 children failed"
    assert failed.children is not None and len(failed.children) == 2
    passed = decide(
        rule(), scan=None, findings=None, pending_since=NOW, now=NOW, children=[child("pass")]
    )
    assert passed.reasons == [
        "index: all 1 children passed",
        "child sha256:abababababab (linux/amd64): pass — why",
    ]
    assert passed.children == [child("pass")]
    empty = decide(rule(), scan=None, findings=None, pending_since=NOW, now=NOW, children=[])
    assert empty.reasons == ["index lists no scannable image: nothing vouches for it"]


def test_tag_plans_carry_their_reasons() -> None:
    gate = rule(promotion_tags=["approved"], quarantine_removes=["latest"])
    quarantined = "quarantined-abababababab"
    passed = plan_tags(gate, "pass", DIGEST, ["approved", quarantined])
    assert [a.model_dump(exclude={"outcome"}) for a in passed] == [
        {"action": "keep", "tag": "approved", "reason": "already promoted"},
        {"action": "remove", "tag": quarantined, "reason": "quarantine lifted"},
    ]
    promoted = plan_tags(gate, "pass", DIGEST, [])
    assert [a.model_dump(exclude={"outcome"}) for a in promoted] == [
        {"action": "put", "tag": "approved", "reason": "promotion: gate passed"},
    ]
    again = plan_tags(gate, "fail", DIGEST, [quarantined, "approved", "latest", "1.0"])
    assert [a.model_dump(exclude={"outcome"}) for a in again] == [
        {"action": "keep", "tag": quarantined, "reason": "already quarantined"},
        {"action": "remove", "tag": "approved", "reason": "promotion tag: gate failed"},
        {"action": "remove", "tag": "latest", "reason": "release tag: gate failed"},
    ]
    first = plan_tags(gate, "fail", DIGEST, ["1.0"])
    assert [a.model_dump(exclude={"outcome"}) for a in first] == [
        {"action": "put", "tag": quarantined, "reason": "quarantine: gate failed"},
    ]
