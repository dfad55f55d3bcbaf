"""Backfill: copy jobs for every image a rule selects that is already in the registry
(`steward replicate --rule NAME`), produced as the registry is listed, page by page, and copied
here a few at a time or sent to the copy queue as they come. Nothing holds every job: memory
does not grow with the registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from pydantic import BaseModel, Field

from chalicelib.ecr import registries
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.jobqueue import chunks, waiting_messages
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import current_policy
from chalicelib.policy.replication import ReplicationRule
from chalicelib.replication.copy import CopyResult, copy_image
from chalicelib.replication.jobs import CopyJob, enqueue, jobs_for

# Copies run at once by `steward replicate`; each also copies a few of its layers at once.
BACKFILL_CONCURRENCY = 8
# Failures listed in the summary; every failure is counted, and told to `on_failure` as it
# happens, whatever their number.
ERRORS_KEPT = 100
# Jobs a queued backfill lets wait in the copy queue before it sends more: an hour of PutImage
# at its quota of 10/s, far inside the queue's 4-day retention, so no job waits long enough to
# expire however long the backfill runs.
QUEUE_HIGH_WATER = 36_000
# Jobs sent between two looks at the queue's depth (a get-queue-attributes call).
QUEUE_CHUNK = 1_000
QUEUE_POLL_SECONDS = 60.0


class BackfillSummary(BaseModel):
    """Counts of a backfill; `results` holds each image's result only when asked for (`--json`),
    `errors` the first ERRORS_KEPT failures."""

    rule: str
    dry_run: bool
    images: int = 0
    copied: int = 0
    unchanged: int = 0
    planned: int = 0
    failed: int = 0
    bytes_moved: int = 0
    bytes_skipped: int = 0
    bytes_planned: int = 0
    errors: list[str] = Field(default_factory=list)
    results: list[CopyResult] = Field(default_factory=list)

    def count(self, result: CopyResult, *, keep: bool) -> None:
        self.images += 1
        self.bytes_moved += result.bytes_moved
        self.bytes_skipped += result.bytes_skipped
        self.bytes_planned += result.bytes_planned
        if result.status == "copied":
            self.copied += 1
        elif result.status == "unchanged":
            self.unchanged += 1
        else:
            self.planned += 1
        if keep:
            self.results.append(result)

    def fail(self, error: str) -> None:
        self.failed += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(error)


def backfill_jobs(
    rule: ReplicationRule, source: Registry, account: str, region: str
) -> Iterator[CopyJob]:
    """Every existing image the rule selects, as jobs (one per image and destination), yielded
    as each page of repositories and of images is read."""
    for repository in source.iter_repositories():
        if not rule.selects_repository(repository.name):
            continue
        for image in source.iter_images(repository.name, tag_status="TAGGED"):
            selected = [t for t in image.tags if rule.selects_tag(t)]
            if selected:
                yield from jobs_for(
                    rule,
                    trigger="backfill",
                    account=account,
                    region=region,
                    repository=repository.name,
                    digest=image.digest,
                    tags=selected,
                )


def backfill(
    rule: ReplicationRule,
    jobs: Iterable[CopyJob],
    *,
    registry: Callable[[str, str, str | None], Registry],
    dry_run: bool = False,
    ledger_table: str | None = None,
    concurrency: int = BACKFILL_CONCURRENCY,
    keep_results: bool = False,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
    on_failure: Callable[[str], None] = lambda error: None,
) -> BackfillSummary:
    """Copy (or plan) the jobs as they come, `concurrency` at a time, each with its layers in
    parallel. At most twice `concurrency` jobs are drawn ahead of the copies; a job that fails
    is counted and reported, and the others go on. `on_image` and `on_failure` are called on
    this thread, `on_bytes` on the copying threads."""
    summary = BackfillSummary(rule=rule.name, dry_run=dry_run)

    def copy(job: CopyJob) -> CopyResult:
        target = job.destination
        return copy_image(
            job,
            source=registry(job.source_account, job.source_region, None),
            destination=registry(target.account, target.region, target.role_arn),
            dry_run=dry_run,
            ledger_table=ledger_table,
            on_bytes=on_bytes,
        )

    def finish(
        done: Iterable[Future[CopyResult]], running: dict[Future[CopyResult], CopyJob]
    ) -> None:
        for future in done:
            job = running.pop(future)
            error = future.exception()
            if error is None:
                result = future.result()
                summary.count(result, keep=keep_results)
                on_image(result)
                continue
            if not isinstance(error, Exception):
                raise error  # an interrupt stops the backfill
            failure = f"{job.source_repository}@{job.digest} → {job.destination.label()}: {error}"
            summary.fail(failure)
            on_failure(failure)

    running: dict[Future[CopyResult], CopyJob] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for job in jobs:
            running[pool.submit(copy, job)] = job
            if len(running) >= 2 * max(1, concurrency):
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                finish(done, running)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            finish(done, running)
    return summary


def enqueue_backfill(
    jobs: Iterable[CopyJob],
    *,
    queue: str | None = None,
    high_water: int = QUEUE_HIGH_WATER,
    depth: Callable[[str], int] = waiting_messages,
    sleep: Callable[[float], None] = time.sleep,
    on_sent: Callable[[int], None] = lambda n: None,
) -> int:
    """Send the jobs to the copy queue as they are listed (`on_copy_job` copies them), a chunk
    at a time; while the queue holds `high_water` jobs waiting, wait for it to drain. Returns
    the jobs sent."""
    queue = queue or get_settings().replication_queue
    sent = 0
    for chunk in chunks(jobs, QUEUE_CHUNK):
        while depth(queue) + len(chunk) > max(high_water, len(chunk)):
            sleep(QUEUE_POLL_SECONDS)
        sent += enqueue(chunk, queue)
        on_sent(sent)
    return sent


def find_rule(name: str) -> ReplicationRule:

    loaded = current_policy()
    for rule in getattr(loaded.policy, "replication", []):
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in getattr(loaded.policy, "replication", [])) or "none"
    raise LookupError(f"no replication rule {name!r} in {loaded.source} (rules: {known})")


def listed_jobs(
    name: str, *, region: str | None, on_listed: Callable[[int, bool], None] = lambda n, end: None
) -> tuple[ReplicationRule, Iterator[CopyJob]]:
    """The backfill rule named `name` and its jobs as they are listed. `on_listed` is told how
    many have been listed so far, and whether the listing has finished."""
    rule = find_rule(name)
    if "backfill" not in rule.triggers:
        raise LookupError(f"rule {name!r} does not allow backfill (triggers: {rule.triggers})")
    account = caller_account()
    source_region = region or Registry().region
    source = registries.registry(account, source_region)

    def counted() -> Iterator[CopyJob]:
        listed = 0
        for job in backfill_jobs(rule, source, account, source_region):
            listed += 1
            on_listed(listed, False)
            yield job
        on_listed(listed, True)

    return rule, counted()


def run_backfill(
    name: str,
    *,
    region: str | None,
    dry_run: bool,
    concurrency: int = BACKFILL_CONCURRENCY,
    keep_results: bool = False,
    on_listed: Callable[[int, bool], None] = lambda n, end: None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_image: Callable[[CopyResult], None] = lambda r: None,
    on_failure: Callable[[str], None] = lambda error: None,
) -> BackfillSummary:
    """`steward replicate --rule NAME`: copy (or plan) what the rule selects, here and now."""
    rule, jobs = listed_jobs(name, region=region, on_listed=on_listed)
    return backfill(
        rule,
        jobs,
        registry=registries.registry,
        dry_run=dry_run,
        ledger_table=get_settings().replication_table,
        concurrency=concurrency,
        keep_results=keep_results,
        on_bytes=on_bytes,
        on_image=on_image,
        on_failure=on_failure,
    )
