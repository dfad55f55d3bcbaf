"""Governance benchmark: ECR calls and seconds to plan and apply a registry of repositories.

    .venv/bin/python benchmarks/bench_governance.py [REPOSITORIES]

Against the embedded AWS backend on loopback; figures are printed, not asserted. Every repository
is governed by one rule that manages all six settings, so each needs three reads (lifecycle
policy, repository policy, tags) beside its share of the describe-repositories pages.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chalicelib.ecr.gateway import Registry
from chalicelib.governance.plan import plan_governance
from chalicelib.governance.read import read_registry
from chalicelib.governance.task import reconcile
from chalicelib.policy.document import parse_policy
from steward_tools.local.server import EmbeddedAWS

POLICY = """
governance:
  repositories:
    - repositories: ["bench/*"]
      scan_on_push: true
      tag_mutability: IMMUTABLE
      mutability_exclusions: ["latest"]
      encryption: {type: AES256}
      lifecycle_policy:
        rules:
          - rulePriority: 1
            selection: {tagStatus: untagged, countType: sinceImagePushed, countUnit: days,
                        countNumber: 14}
            action: {type: expire}
      repository_policy:
        Version: "2012-10-17"
        Statement:
          - Sid: pull
            Effect: Allow
            Principal: {AWS: "arn:aws:iam::111122223333:root"}
            Action: ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      tags: {team: bench}
"""


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
    )

    section = parse_policy(POLICY).policy.governance
    now = datetime.now(UTC)
    with EmbeddedAWS(port=0) as aws:
        os.environ["AWS_ENDPOINT_URL"] = aws.endpoint_url
        client = aws.client("ecr")
        for n in range(count):
            client.create_repository(repositoryName=f"bench/r{n:05d}")

        def run(label: str, action: str) -> None:
            registry = Registry(region="us-east-1")
            started = time.perf_counter()
            if action == "plan":
                plan = plan_governance(section, read_registry(registry, section, now), now)
                changes = len(plan.actions)
            else:
                plan, _ = reconcile(registry, section, now)
                changes = len(plan.actions)
            seconds = time.perf_counter() - started
            calls = sum(registry.calls.values())
            print(
                f"{label:<34} {seconds:7.2f} s  {calls:6d} ECR calls "
                f"({calls / count:.2f} per repository), {changes} changes"
            )

        print(f"{count} repositories, every setting managed")
        run("plan, all drifted", "plan")
        run("apply, all drifted", "apply")
        run("plan again, converged", "plan")
        run("apply again, converged (0 writes)", "apply")


if __name__ == "__main__":
    main()
