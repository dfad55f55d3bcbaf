"""A seeded fuzz of every documented event: no exception escapes `on_ecr_event` except a
transient AWS error, and every event it cannot process is dead-lettered exactly once, with a
reason, and costs no ECR call."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import boto3
import pytest

import app
from chalicelib.ecr import registries
from chalicelib.events import intake
from chalicelib.kernel.errors import AwsCallError
from steward_tools.local.runner import LocalLambdaContext
from tests.conftest import ACCOUNT, REGION
from tests.paths import EVENTS

SEED = 14
MUTATIONS_PER_SAMPLE = 40  # x 13 documented events = 520 mutated events
SAMPLES = sorted(EVENTS.glob("*.json"))

POLICY = """
tagging:
  - repositories: ["*"]
    semver_aliases: true
    latest: true
gate:
  rules:
    - repositories: ["*"]
      max_counts: {CRITICAL: 0}
      promotion_tags: [approved]
"""

VALUES: list[Any] = [
    None,
    "",
    0,
    -1,
    2**63,
    1.5,
    True,
    [],
    {},
    ["aws.ecr"],
    {"nested": {"x": [1, 2]}},
    "x" * 400,
    "\u0000\u2603\ud7ff",
    "sha256:" + "g" * 64,
    "sha256:" + "a" * 64,
    "UPPER/Case",
    "a" * 257,
    "123456789012",
    "mars-north-1",
    "us-east-1",
    "2026-02-30T25:61:61Z",
    "../../etc/passwd",
    "arn:aws:ecr:us-east-1:123456789012:repository/",
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def mutate(event: dict[str, Any], rng: random.Random) -> Any:
    """One to three random edits: drop a field, replace a value with another type or an
    impossible value, rename a key, or replace the whole payload."""
    if rng.random() < 0.03:
        return rng.choice([[], "event", 42, None, [event]])
    mutated = copy.deepcopy(event)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(mutated)
        if not paths:
            break
        path = rng.choice(paths)
        parent: Any = mutated
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        op = rng.random()
        if op < 0.2 and isinstance(parent, dict):
            del parent[last]
        elif op < 0.3 and isinstance(parent, dict):
            parent[f"{last}-renamed"] = parent.pop(last)
        elif op < 0.4 and isinstance(parent[last], str):
            text = parent[last]
            cut = rng.randrange(len(text) + 1)
            parent[last] = text[:cut] + rng.choice(["", " ", "/", "%", "\n", "Z"]) + text[cut:]
        else:
            parent[last] = copy.deepcopy(rng.choice(VALUES))
    if isinstance(mutated, dict) and rng.random() < 0.5:
        mutated["id"] = f"fuzz-{rng.getrandbits(48):x}"  # otherwise a duplicate of the sample
    return mutated


def test_fuzzed_events_never_crash_and_are_dead_lettered_once(
    aws, policy_file, monkeypatch
) -> None:
    policy_file(POLICY)
    letters: list[str] = []
    original = intake.dead_letter

    def counted(raw: Any, reason: str) -> None:
        letters.append(reason)
        original(raw, reason)

    monkeypatch.setattr(intake, "dead_letter", counted)
    gateway = registries.registry(ACCOUNT, REGION)
    rng = random.Random(SEED)
    statuses: dict[str, int] = {}
    for sample in SAMPLES:
        base = json.loads(sample.read_text())
        for _ in range(MUTATIONS_PER_SAMPLE):
            event = mutate(base, rng)
            before_letters, before_calls = len(letters), sum(gateway.calls.values())
            try:
                result = app.on_ecr_event(event, LocalLambdaContext())
            except AwsCallError as error:
                assert error.transient, f"{sample.name}: permanent error escaped: {error}"
                continue
            # Anything else escaping fails the test with its traceback.
            status = result["status"]
            statuses[status] = statuses.get(status, 0) + 1
            new_letters = letters[before_letters:]
            if status in ("rejected", "failed"):
                assert len(new_letters) == 1, (sample.name, event, new_letters)
                assert new_letters[0] == result["reason"] and result["reason"]
            else:
                assert status in ("handled", "ignored"), result
                assert new_letters == []
            if status == "rejected":
                assert sum(gateway.calls.values()) == before_calls  # no ECR call
    total = len(SAMPLES) * MUTATIONS_PER_SAMPLE
    assert total >= 500
    assert sum(statuses.values()) == total
    # The fuzz reaches both sides of the door.
    assert (
        statuses.get("rejected", 0) > 100
        and statuses.get("handled", 0) + statuses.get("ignored", 0) > 100
    ), statuses
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws.resources.dead_letter_queue_url,
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == len(letters)
    print(f"fuzz: {total} mutated events, {statuses}")


@pytest.mark.parametrize(
    ("field", "value"),
    [("source", ["aws.ecr"]), ("source", {"a": 1}), ("detail-type", ["ECR Image Action"])],
)
def test_unhashable_source_or_detail_type_is_rejected(aws, policy_file, field, value) -> None:
    event = json.loads((EVENTS / "ecr_image_action_push_success.json").read_text())
    event[field] = value
    result = app.on_ecr_event(event, LocalLambdaContext())
    assert result["status"] == "rejected"
    assert result["reason"].startswith(f"{field}: a ")
