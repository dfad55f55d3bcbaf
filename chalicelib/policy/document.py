"""The operator's policy file: one typed document, validated at load.

YAML or JSON. An invalid file is refused with the exact path of every bad field
(`tagging[0].semver_aliasez: Extra inputs are not permitted`), and the service does not start on
it. Each capability owns the model of its own section; this module composes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.kernel.errors import field_path
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.gate import GatePolicy
from chalicelib.policy.governance import GovernancePolicy
from chalicelib.policy.mirror import MirrorRules
from chalicelib.policy.replication import ReplicationRules
from chalicelib.policy.retention import RetentionSettings
from chalicelib.policy.selection import matches_any, rules_for
from chalicelib.policy.tagging import TaggingRule
from chalicelib.policy.tokens import TokenSettings


class Policy(BaseModel):
    """The whole policy. Rules select repositories by glob pattern (`team-a/*`, `*`)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=1, ge=1, le=1, description="Policy file format version.")
    dry_run: bool = Field(
        default=False,
        description="Plan and log every action but change nothing in any registry.",
    )
    tagging: list[TaggingRule] = Field(
        default_factory=list, description="What a pushed image is tagged with."
    )
    tokens: TokenSettings = Field(
        default_factory=TokenSettings,
        description="Credential vending: trusted issuers and grants for GET /v1/token.",
    )
    gate: GatePolicy = Field(
        default_factory=GatePolicy,
        description="Scan gate: promote clean images, quarantine vulnerable ones, fail closed.",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="What the scheduled sweep prunes, and what it never deletes.",
    )
    governance: GovernancePolicy = Field(
        default_factory=GovernancePolicy,
        description="Repository settings, declared and ephemeral repositories, kept as declared.",
    )
    replication: ReplicationRules = Field(
        default_factory=list,
        description="Copies of images to other repositories, regions and accounts.",
    )
    mirror: MirrorRules = Field(
        default_factory=list,
        description="Copies of an upstream registry's images (Docker Hub, GHCR, Quay, ...) kept "
        "in ECR, refreshed on a schedule.",
    )

    def tagging_rules(self, repository: str) -> list[TaggingRule]:

        return rules_for(self.tagging, repository)


class PolicyError(ValueError):
    """The policy file cannot be used. `problems` are `(field path, message)` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"invalid policy {source}:\n{listing}")


class LoadedPolicy(BaseModel):
    """A validated policy and the fingerprint of the text it came from."""

    policy: Policy
    source: str
    fingerprint: str

    def section_fingerprint(self, section: str) -> str:
        """The fingerprint of one section's validated content (what its decisions depend on):
        editing another section, a comment or the layout leaves it unchanged. The gate records
        it in each decision and re-decides only when it changes."""
        content = self.policy.model_dump(mode="json", include={section})
        if section not in content:
            raise KeyError(f"the policy has no section {section!r}")
        text = json.dumps(content[section], sort_keys=True, separators=(",", ":"))
        return f"{section}:sha256:" + hashlib.sha256(text.encode()).hexdigest()


def parse_policy(text: str, source: str = "<policy>") -> LoadedPolicy:
    """Parse YAML or JSON text (JSON is YAML, but JSON's errors are clearer for .json files)."""
    data: Any
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise PolicyError(source, [("(file)", f"not valid {_format(source)}: {error}")]) from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(source, [("(top level)", "must be a mapping of sections")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        problems = [(field_path(p["loc"]), p["msg"]) for p in error.errors()]
        raise PolicyError(source, problems) from error
    fingerprint = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return LoadedPolicy(policy=policy, source=source, fingerprint=fingerprint)


def load_policy(path: Path) -> LoadedPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(str(path), [("(file)", error.strerror or str(error))]) from error
    return parse_policy(text, str(path))


def policy_warnings(policy: Policy) -> list[str]:
    """What is valid but unsafe, one line each with the field path: a promotion tag no
    governance rule protects (a tag immutability exclusion naming it, or a repository policy)
    on every repository the gate rule covers. Anyone who can push there can push the tag; the
    gate removes it when the push event arrives, but an immediate pull could take it first."""
    warnings = []
    for index, rule in enumerate(policy.gate.rules):
        for tag in rule.promotion_tags:
            for glob in rule.repositories:
                covering = [
                    g for g in policy.governance.repositories if matches_any(glob, g.repositories)
                ]
                if not any(
                    matches_any(tag, g.mutability_exclusions or [])
                    or isinstance(g.repository_policy, dict)
                    for g in covering
                ):
                    warnings.append(
                        f"gate.rules[{index}].promotion_tags: {tag!r} on {glob!r} is not "
                        "protected by a governance tag immutability exclusion or repository "
                        "policy; anyone with push rights can push it until the gate removes it"
                    )
    return warnings


def policy_schema() -> dict[str, Any]:
    """JSON Schema of the policy file, for editors (yaml-language-server, VS Code, IntelliJ)."""
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ecr-steward policy"
    return schema


def _format(source: str) -> str:
    return "JSON" if source.endswith(".json") else "YAML"


def dry_run(policy: Policy) -> bool:
    """Dry run is on when the policy or the environment (STEWARD_DRY_RUN) says so."""

    return policy.dry_run or get_settings().dry_run


_CACHE: dict[tuple[str, float], LoadedPolicy] = {}


def current_policy() -> LoadedPolicy:
    """The policy the settings name, re-read only when the file changes."""

    path = get_settings().policy_path
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError as error:
        raise PolicyError(str(path), [("(file)", error.strerror or str(error))]) from error
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_policy(path)
    return _CACHE[key]
