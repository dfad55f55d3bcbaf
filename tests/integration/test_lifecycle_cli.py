"""`steward lifecycle preview --repository`: ECR's own preview through the embedded ECR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.test_lifecycle_cli import files, run


def test_preview_through_the_embedded_ecr(aws: Any, tmp_path: Path) -> None:
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="demo")
    policy_file, _ = files(tmp_path)
    # No images: nothing to act on, and the call still goes through ECR's preview API.
    result = run("lifecycle", "preview", "--repository", "demo", "--policy", policy_file)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "previewResults": [],
        "summary": {
            "expiringImageTotalCount": 0,
            "transitioningImageTotalCounts": [
                {"targetStorageClass": "ARCHIVE", "imageTotalCount": 0}
            ],
        },
    }
