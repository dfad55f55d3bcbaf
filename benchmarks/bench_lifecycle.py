"""Lifecycle evaluator throughput: one repository of 100,000 images, a five-rule policy.

    .venv/bin/python benchmarks/bench_lifecycle.py

Pure CPU (no AWS): parsing describe-images details, evaluating, building previewResults.
Figures are printed, not asserted.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.ecr.lifecycle_policy import parse_policy
from chalicelib.lifecycle.evaluate import LifecycleImage, evaluate

IMAGES = 100_000
RUNS = 5
NOW = datetime(2026, 11, 27, tzinfo=UTC)
POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["release-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 1_000_000,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": ["main-"],
                "countType": "imageCountMoreThan",
                "countNumber": 50,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["pr-*-build*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 4,
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 7,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 5,
            "selection": {
                "tagStatus": "any",
                "countType": "sinceImagePulled",
                "countUnit": "days",
                "countNumber": 90,
            },
            "action": {"type": "transition", "targetStorageClass": "archive"},
        },
    ]
}


def repository(rng: random.Random) -> tuple[list[dict[str, object]], dict[str, list[str]]]:
    """describe-images details: releases, main, PR and feature builds; indexes of two children."""
    details: list[dict[str, object]] = []
    children: dict[str, list[str]] = {}
    n = 0
    while len(details) < IMAGES:
        n += 1
        pushed = NOW - timedelta(days=rng.uniform(0, 400))
        kind = rng.random()
        tags = (
            [f"release-{n}"]
            if kind < 0.05
            else [f"main-{n}"]
            if kind < 0.35
            else [f"pr-{n}-build{n % 7}"]
            if kind < 0.55
            else [f"feature-{n}"]  # only the last, `any` rule selects these
            if kind < 0.7
            else []
        )
        top = f"sha256:{n:064x}"
        detail: dict[str, object] = {
            "imageDigest": top,
            "imageTags": tags,
            "imagePushedAt": pushed.isoformat(),
        }
        if rng.random() < 0.5:
            detail["lastRecordedPullTime"] = (
                pushed + timedelta(days=rng.uniform(0, 30))
            ).isoformat()
        details.append(detail)
        if tags and kind < 0.35:  # releases and main builds are multi-arch indexes
            kids = [f"sha256:{n:032x}{k:032x}" for k in (1, 2)]
            children[top] = kids
            for kid in kids:
                details.append({"imageDigest": kid, "imagePushedAt": pushed.isoformat()})
    return details[:IMAGES], children


def main() -> None:
    rng = random.Random(7)
    details, children = repository(rng)
    policy = parse_policy(json.dumps(POLICY, indent=2))
    parse_times, evaluate_times, preview_times = [], [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        images = [LifecycleImage.from_detail(d) for d in details]
        parsed = time.perf_counter()
        plan = evaluate(policy, images, NOW, index_children=children)
        evaluated = time.perf_counter()
        results = plan.preview_results()
        done = time.perf_counter()
        parse_times.append(parsed - started)
        evaluate_times.append(evaluated - parsed)
        preview_times.append(done - evaluated)
    summary = plan.summary()
    parse_s = statistics.median(parse_times)
    evaluate_s = statistics.median(evaluate_times)
    preview_s = statistics.median(preview_times)
    total = parse_s + evaluate_s + preview_s
    print(f"images: {len(details):,} ({len(children):,} indexes), rules: {len(POLICY['rules'])}")
    print(
        f"acted on: {len(results):,} (expire {summary['expiringImageTotalCount']:,}, "
        f"transition {summary['transitioningImageTotalCounts'][0]['imageTotalCount']:,})"
    )
    print(f"parse describe-images details: {parse_s:.3f} s (median of {RUNS})")
    print(f"evaluate:                      {evaluate_s:.3f} s")
    print(f"previewResults:                {preview_s:.3f} s")
    print(f"total: {total:.3f} s, {len(details) / total:,.0f} images/s")


if __name__ == "__main__":
    main()
