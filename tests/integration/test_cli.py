"""The operator's command line against the embedded ECR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chalicelib.ecr.gateway import Registry
from steward_tools.cli import main
from tests.paths import ROOT


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_policy_validate_accepts_the_example() -> None:
    result = run("policy", "validate", str(ROOT / "policy.example.yaml"))
    assert result.exit_code == 0
    assert "valid (1 tagging rules" in result.output


def test_policy_validate_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("tagging:\n  - repositories: ['*']\n    templates: ['sha-{digst}']\n")
    result = run("policy", "validate", str(bad))
    assert result.exit_code == 1
    assert "tagging[0].templates" in result.output
    assert "digst" in result.output


def test_policy_schema_is_json_schema() -> None:
    schema = json.loads(run("policy", "schema").output)
    assert schema["title"] == "ecr-steward policy"
    assert "tagging" in schema["properties"]


@pytest.mark.parametrize("source_format", ["oci-layout", "oci-archive", "docker-archive"])
def test_sample_image_then_push_and_list(
    aws, registry: Registry, tmp_path: Path, monkeypatch, source_format: str
) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    source = tmp_path / "image"
    assert run("sample-image", str(source), "--format", source_format, "--seed", "7").exit_code == 0

    pushed = run("push", "--local", "--create", str(source), "demo/app:1.0.0")
    assert pushed.exit_code == 0, pushed.output
    digest = pushed.output.strip().splitlines()[-2].split("@")[1]

    [image] = list(registry.iter_images("demo/app"))
    assert image.digest == digest and image.tags == ["1.0.0"]
    listing = run("images", "--local", "demo/app").output
    assert digest in listing and "1.0.0" in listing


def test_push_to_missing_repository_says_so(aws, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    run("sample-image", str(tmp_path / "image"))
    result = CliRunner().invoke(main, ["push", "--local", str(tmp_path / "image"), "nope:1"])
    assert result.exit_code == 1
    assert "RepositoryNotFoundException" in result.output


def test_multi_arch_sample(aws, registry: Registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STEWARD_AWS_PORT", str(aws.port))
    source = tmp_path / "index"
    run("sample-image", str(source), "--platform", "linux/amd64", "--platform", "linux/arm64/v8")
    assert run("push", "--local", "--create", str(source), "demo/multi:2.0.0").exit_code == 0
    found = {image.media_type: image for image in registry.iter_images("demo/multi")}
    assert found["application/vnd.oci.image.index.v1+json"].tags == ["2.0.0"]
    assert len(found) == 2  # the index and its children (both children share a media type)
