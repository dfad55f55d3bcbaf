"""Scan findings as the gate reads them, from basic and enhanced (Inspector) scan results."""

from __future__ import annotations

from typing import Any

from chalicelib.ecr.models import Finding


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
