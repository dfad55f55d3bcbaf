"""The policy file: valid files load, invalid ones are refused naming the exact field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.kernel.settings import RESOURCE_VARIABLES, Settings, SettingsError
from chalicelib.policy.document import PolicyError, load_policy, parse_policy, policy_schema
from tests.paths import ROOT


def test_example_policy_is_valid() -> None:
    loaded = load_policy(ROOT / "policy.example.yaml")
    rules = loaded.policy.tagging_rules("any/repository")
    assert rules and rules[0].semver_aliases and rules[0].latest
    assert loaded.fingerprint.startswith("sha256:")


def test_full_example_policy_is_valid() -> None:
    policy = load_policy(ROOT / "examples" / "policy.full.yaml").policy
    assert policy.gate.rule_for("demo/app") is not None
    assert [rule.name for rule in policy.replication] == ["mirror"]


def test_unknown_field_is_named_with_its_path() -> None:
    text = "tagging:\n  - repositories: ['*']\n    semver_aliasez: true\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert ("tagging[0].semver_aliasez", "Extra inputs are not permitted") in caught.value.problems
    assert "tagging[0].semver_aliasez" in str(caught.value)


def test_wrong_type_is_named() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(json.dumps({"dry_run": "sometimes"}), "p.json")
    assert caught.value.problems[0][0] == "dry_run"


def test_unparseable_file_is_refused() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("tagging: [\n", "p.yaml")
    with pytest.raises(PolicyError, match="not valid JSON"):
        parse_policy("{", "p.json")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="No such file"):
        load_policy(tmp_path / "absent.yaml")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(PolicyError, match="mapping"):
        parse_policy("- 1\n- 2\n", "p.yaml")


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "policy.schema.json").read_text())
    assert committed == policy_schema(), "run: .venv/bin/steward policy schema > policy.schema.json"


def test_deployed_function_without_its_resource_names_is_refused() -> None:
    """On Lambda a missing table or queue name fails loudly instead of using a local name."""
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "ecr-steward-prod-on_ecr_event"}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**lambda_env, "STEWARD_GATE_TABLE": "prod-gate"})
    assert "STEWARD_IDEMPOTENCY_TABLE" in str(refused.value)
    assert "STEWARD_GATE_TABLE" not in str(refused.value)
    named = {name: f"prod-{n}" for n, name in enumerate(RESOURCE_VARIABLES)}
    settings = Settings.from_env({**lambda_env, **named})
    assert settings.deployed and settings.gate_table == named["STEWARD_GATE_TABLE"]
    local = Settings.from_env({})
    assert not local.deployed and local.gate_table == RESOURCE_VARIABLES["STEWARD_GATE_TABLE"]


def test_a_section_fingerprint_changes_only_with_that_section() -> None:
    gate = "gate:\n  rules:\n    - repositories: ['team/*']\n      max_counts: {CRITICAL: 0}\n"
    retention = (
        "retention:\n  rules:\n"
        "    - {kind: expire_untagged, repositories: ['*'], older_than_days: 7}\n"
    )
    base = parse_policy(gate)
    edited = parse_policy("# a comment\n" + gate + retention)
    stricter = parse_policy(gate.replace("CRITICAL: 0", "CRITICAL: 0, HIGH: 0"))

    assert edited.fingerprint != base.fingerprint  # the file changed
    assert edited.section_fingerprint("gate") == base.section_fingerprint("gate")
    assert edited.section_fingerprint("retention") != base.section_fingerprint("retention")
    assert stricter.section_fingerprint("gate") != base.section_fingerprint("gate")
