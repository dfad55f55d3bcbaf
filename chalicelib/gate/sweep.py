"""The gate's scheduled sweep (fail closed past the timeout; re-decide what a policy change or an
expired allowlist entry changed) and the status route."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.ecr import registries
from chalicelib.ecr.errors import ImageNotFound, RepositoryNotFound
from chalicelib.gate.evaluate import Gate
from chalicelib.gate.records import records
from chalicelib.kernel.observability import flushes_metrics
from chalicelib.policy import current_policy, dry_run
from chalicelib.policy.gate import GatePolicy


@flushes_metrics
def sweep(now: datetime) -> dict[str, Any]:
    """Fail closed what has waited past its timeout; re-decide what a policy change or an
    expired allowlist entry may have changed. Called by the scheduled function."""

    loaded = current_policy()
    policy: GatePolicy = loaded.policy.gate
    outcome: dict[str, int] = {"examined": 0, "pass": 0, "fail": 0, "pending": 0, "skipped": 0}
    store = records()
    for due in list(store.due(now, loaded.fingerprint)):
        outcome["examined"] += 1
        rule = policy.rule_for(due.repository)
        # Read again: deciding a child earlier in this sweep may have decided its index.
        record = store.get(due.repository, due.digest) or due
        if rule is None or not record.account:
            outcome["skipped"] += 1
            continue
        gate = Gate(
            registries.registry(record.account, record.region),
            store,
            policy,
            policy_version=loaded.fingerprint,
            now=now,
            dry_run=dry_run(loaded.policy),
        )
        try:
            decided = gate.evaluate(record, rule)
        except (ImageNotFound, RepositoryNotFound):
            outcome["skipped"] += 1
            continue
        outcome[decided.status] += 1
    return outcome


def gate_status(repository: str, digest: str) -> dict[str, Any] | None:

    found = records().get(repository, digest)
    if found is None or found.pending_since is None:
        return None  # unknown, or only linked from an index so far
    return found.model_dump(mode="json")
