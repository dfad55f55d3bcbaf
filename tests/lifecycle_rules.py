"""ECR lifecycle policy rules several tests evaluate (the planner) and preview (embedded ECR)."""

from __future__ import annotations

from typing import Any

# Archive what nobody pulled in 90 days; delete what stayed archived for a year.
ARCHIVE_THEN_DELETE_RULES: list[dict[str, Any]] = [
    {
        "rulePriority": 1,
        "description": "Archive images not pulled in 90 days",
        "selection": {
            "tagStatus": "any",
            "countType": "sinceImagePulled",
            "countUnit": "days",
            "countNumber": 90,
        },
        "action": {"type": "transition", "targetStorageClass": "archive"},
    },
    {
        "rulePriority": 2,
        "description": "Delete images archived for more than 365 days",
        "selection": {
            "tagStatus": "any",
            "storageClass": "archive",
            "countType": "sinceImageTransitioned",
            "countUnit": "days",
            "countNumber": 365,
        },
        "action": {"type": "expire"},
    },
]
