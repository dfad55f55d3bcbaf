"""`steward lifecycle validate|preview` on files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from steward_tools.cli import main

POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "Expire images older than 14 days",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["prod*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "Keep only one untagged image, expire all others",
            "selection": {
                "tagStatus": "untagged",
                "countType": "imageCountMoreThan",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
    ]
}


OLD_PROD = "sha256:" + "a" * 64


NEW_PROD = "sha256:" + "b" * 64


CHILD = "sha256:" + "c" * 64


LOOSE = "sha256:" + "d" * 64


NEWEST_UNTAGGED = "sha256:" + "e" * 64


# `aws ecr describe-images` output, as the AWS CLI v2 prints it.
IMAGES = {
    "imageDetails": [
        {
            "registryId": "123456789012",
            "repositoryName": "demo",
            "imageDigest": OLD_PROD,
            "imageTags": ["prod-1"],
            "imageSizeInBytes": 1024,
            "imagePushedAt": "2026-11-01T10:00:00.000000+00:00",
            "imageManifestMediaType": "application/vnd.oci.image.index.v1+json",
        },
        {
            "imageDigest": NEW_PROD,
            "imageTags": ["prod-2"],
            "imagePushedAt": "2026-11-20T10:00:00+00:00",
        },
        {"imageDigest": CHILD, "imagePushedAt": "2026-11-01T09:59:00+00:00"},
        {"imageDigest": LOOSE, "imagePushedAt": "2026-11-02T10:00:00+00:00"},
        {"imageDigest": NEWEST_UNTAGGED, "imagePushedAt": "2026-11-25T10:00:00+00:00"},
    ]
}


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def files(tmp_path: Path, policy: dict[str, Any] = POLICY) -> tuple[str, str]:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy, indent=2))
    images_file = tmp_path / "images.json"
    images_file.write_text(json.dumps(IMAGES))
    return str(policy_file), str(images_file)


def test_preview_prints_preview_results(tmp_path: Path) -> None:
    policy_file, images_file = files(tmp_path)
    result = run(
        "lifecycle", "preview", "--policy", policy_file, "--images", images_file,
        "--now", "2026-11-27T12:00:00Z",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["previewResults"] == [
        {
            "imageDigest": OLD_PROD,
            "imageTags": ["prod-1"],
            "imagePushedAt": "2026-11-01T10:00:00+00:00",
            "action": {"type": "EXPIRE"},
            "appliedRulePriority": 1,
            "storageClass": "STANDARD",
        },
        {
            "imageDigest": CHILD,
            "imageTags": [],
            "imagePushedAt": "2026-11-01T09:59:00+00:00",
            "action": {"type": "EXPIRE"},
            "appliedRulePriority": 2,
            "storageClass": "STANDARD",
        },
        {
            "imageDigest": LOOSE,
            "imageTags": [],
            "imagePushedAt": "2026-11-02T10:00:00+00:00",
            "action": {"type": "EXPIRE"},
            "appliedRulePriority": 2,
            "storageClass": "STANDARD",
        },
    ]
    assert shown["summary"]["expiringImageTotalCount"] == 3


def test_preview_keeps_children_of_a_kept_index(tmp_path: Path) -> None:
    policy_file, images_file = files(tmp_path)
    children = tmp_path / "children.json"
    # The new prod index (kept) lists CHILD: it must not be expired.
    children.write_text(json.dumps({NEW_PROD: [CHILD]}))
    result = run(
        "lifecycle", "preview", "--policy", policy_file, "--images", images_file,
        "--now", "2026-11-27T12:00:00", "--index-children", str(children), "--explain",
    )  # fmt: skip
    assert result.exit_code == 0
    assert f"manifest list {NEW_PROD} references it" in result.stderr
    shown = json.loads(result.stdout)
    assert [r["imageDigest"] for r in shown["previewResults"]] == [OLD_PROD, LOOSE]


def test_validate_accepts_and_refuses(tmp_path: Path) -> None:
    policy_file, _ = files(tmp_path)
    accepted = run("lifecycle", "validate", policy_file)
    assert accepted.exit_code == 0
    assert "valid (2 rules)" in accepted.output

    bad = json.loads(json.dumps(POLICY))
    bad["rules"][1]["selection"]["countUnit"] = "days"
    bad["rules"][0]["rulePriority"] = 2
    bad_file, _ = files(tmp_path, bad)
    refused = run("lifecycle", "validate", bad_file)
    assert refused.exit_code == 1
    assert "rules[1].rulePriority: 2 is also the priority of rules[0]" in refused.stderr
    assert "rules[1].selection.countUnit: may only be used with" in refused.stderr
