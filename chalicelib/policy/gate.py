"""The `gate:` section of the policy: thresholds, allowlist, promotion and quarantine tags."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chalicelib.ecr.models import Finding
from chalicelib.policy.selection import matches_any

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"]


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
        default_factory=lambda: dict[Severity, int]({"CRITICAL": 0}),
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
