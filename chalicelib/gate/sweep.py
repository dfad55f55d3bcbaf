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
from chalicelib.policy.document import current_policy, dry_run
from chalicelib.policy.gate import GatePolicy

# Scan pages (1 MB each) a run may read to mark records of another gate version due; the rest
# of the pass resumes on the next run, so one run's work stays bounded whatever the table's size.
VERSION_PASS_PAGES = 20


@flushes_metrics
def sweep(now: datetime) -> dict[str, Any]:
    """Fail closed what has waited past its timeout; re-decide what a change to the gate section
    or an expired allowlist entry may have changed. Called by the scheduled function. Reads only
    the due index (and, after a gate-section change, a bounded slice of the table per run)."""

    loaded = current_policy()
    policy: GatePolicy = loaded.policy.gate
    version = loaded.section_fingerprint("gate")
    outcome: dict[str, int] = {
        "examined": 0,
        "pass": 0,
        "fail": 0,
        "pending": 0,
        "skipped": 0,
        "closed": 0,
    }
    store = records()
    swept_version, target, cursor = store.marker()
    if swept_version != version:
        # Decisions depend on the gate section only: a change to it makes every open record due.
        store.mark_other_versions_due(
            version, now, cursor if target == version else None, pages=VERSION_PASS_PAGES
        )
    for due in store.due(now):
        outcome["examined"] += 1
        rule = policy.rule_for(due.repository)
        # Read again: deciding a child earlier in this sweep may have decided its index.
        record = store.get(due.repository, due.digest) or due
        if rule is None or not record.account:
            # Otherwise it would be examined on every run until the gate section changes.
            store.not_due(record.repository, record.digest)
            outcome["skipped"] += 1
            continue
        gate = Gate(
            registries.registry(record.account, record.region),
            store,
            policy,
            policy_version=version,
            now=now,
            dry_run=dry_run(loaded.policy),
        )
        try:
            # An unchanged verdict leaves the tags where they are: a re-decision must not move a
            # promotion tag back to an older image, nor cost a PutImage (and a PUSH event).
            decided = gate.evaluate(record, rule, retag_unchanged=False)
        except (ImageNotFound, RepositoryNotFound):
            # Gone: close it, or it would be due (and examined) on every run forever.
            store.close(record.repository, record.digest, now)
            outcome["closed"] += 1
            continue
        outcome[decided.status] += 1
    return outcome


def gate_status(repository: str, digest: str) -> dict[str, Any] | None:

    found = records().get(repository, digest)
    if found is None or found.pending_since is None:
        return None  # unknown, or only linked from an index so far
    return found.model_dump(mode="json")
