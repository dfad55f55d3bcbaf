"""The backfill runner draws jobs as it copies them: never more than twice its concurrency ahead,
so a backfill of millions of images holds a handful of jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from chalicelib.ecr.gateway import Registry
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication import backfill
from chalicelib.replication.jobs import CopyJob, jobs_for
from chalicelib.replication.result import CopyResult
from tests.conftest import ACCOUNT, REGION

RULE = ReplicationRule.model_validate(
    {"name": "r", "repositories": ["*"], "destinations": [{"region": "eu-west-1"}]}
)


def job(n: int) -> CopyJob:
    [made] = jobs_for(
        RULE,
        trigger="backfill",
        account=ACCOUNT,
        region=REGION,
        repository="team/app",
        digest=f"sha256:{n:064x}",
        tags=["1.0.0"],
    )
    return made


def source(*_: object) -> Registry:
    return Registry(region=REGION)  # never called: copy_image is replaced


def many_jobs(count: int, drawn: list[int]) -> Iterator[CopyJob]:
    for n in range(1, count + 1):
        drawn[0] = n
        yield job(n)


def test_jobs_are_drawn_no_further_ahead_than_twice_the_concurrency(monkeypatch) -> None:
    drawn = [0]
    ahead: list[int] = []
    lock = threading.Lock()

    def copy_image(job, **kwargs):
        with lock:
            ahead.append(drawn[0] - len(ahead) - 1)  # drawn, less those started
        return CopyResult(
            rule="r", source="s", destination="d", digest=job.digest, status="unchanged"
        )

    monkeypatch.setattr(backfill, "copy_image", copy_image)

    summary = backfill.backfill(RULE, many_jobs(2000, drawn), registry=source, concurrency=4)

    assert summary.unchanged == summary.images == 2000 and summary.results == []
    assert max(ahead) <= 2 * 4


def test_failures_are_counted_all_and_listed_up_to_a_bound(monkeypatch) -> None:
    def copy_image(job, **kwargs):
        raise OSError(f"no route to {job.digest}")

    monkeypatch.setattr(backfill, "copy_image", copy_image)
    jobs = (job(n) for n in range(backfill.ERRORS_KEPT + 50))
    reported: list[str] = []

    summary = backfill.backfill(
        RULE, jobs, registry=source, concurrency=3, on_failure=reported.append
    )

    assert summary.failed == len(reported) == backfill.ERRORS_KEPT + 50
    assert len(summary.errors) == backfill.ERRORS_KEPT and summary.images == 0
