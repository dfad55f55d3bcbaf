"""`steward replicate [--rule NAME] [--dry-run]` and `steward replicate native`."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import click

from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import current_policy
from chalicelib.replication.backfill import (
    BACKFILL_CONCURRENCY,
    BackfillSummary,
    enqueue_backfill,
    listed_jobs,
    run_backfill,
)
from chalicelib.replication.native import native_report, run_native
from steward_tools.cli.common import echo_json, json_option, local_option, use_local_backend
from steward_tools.cli.progress import Progress


@click.group(invoke_without_command=True)
@click.option("--rule", "rule_name", help="The replication rule (its `name` in the policy).")
@click.option("--dry-run", is_flag=True, help="Show what would be copied; copy nothing.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=BACKFILL_CONCURRENCY,
    show_default=True,
    help="Images copied at once (each also copies a few layers at once).",
)
@click.option(
    "--queue",
    "to_queue",
    is_flag=True,
    help="Send the copy jobs to the service's copy queue as they are listed (on_copy_job "
    "copies them), keeping at most an hour of PutImage's quota waiting there; copy nothing here.",
)
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Source region.")
@local_option
@json_option
@click.pass_context
def replicate(
    ctx: click.Context,
    rule_name: str | None,
    dry_run: bool,
    concurrency: int,
    to_queue: bool,
    region: str | None,
    local: bool,
    as_json: bool,
) -> None:
    """Backfill: copy the existing images a replication rule selects, only what is missing.
    Images are copied as the registry is listed, a few at once, so the first copies start at
    once and memory does not grow with the registry."""
    if ctx.invoked_subcommand is not None:
        return
    if not rule_name:
        raise click.UsageError("--rule NAME is required")
    if to_queue and dry_run:
        raise click.UsageError("--queue sends jobs to be copied; a --dry-run runs here")
    if local:
        use_local_backend()

    progress = Progress("replicate")
    counts = {"images": 0, "listed": 0, "listing": 1}
    lock = threading.Lock()

    def describe() -> None:
        more = "+" if counts["listing"] else ""
        verb = "queued" if to_queue else "images"
        progress.describe(f"replicate, {verb} {counts['images']}/{counts['listed']}{more}")

    def on_listed(listed: int, finished: bool) -> None:
        counts["listed"], counts["listing"] = listed, int(not finished)
        describe()

    def on_bytes(n: int) -> None:
        with lock:
            progress.update(n)

    def on_image(result: Any) -> None:
        counts["images"] += 1
        describe()
        if dry_run:
            for line in [f"{result.source} → {result.destination}", *result.plan]:
                progress.note(f"  {line}")

    def on_failure(error: str) -> None:
        progress.note(f"failed: {error}")

    try:
        if to_queue:
            rule, jobs = listed_jobs(rule_name, region=region, on_listed=on_listed)

            def on_sent(sent: int) -> None:
                counts["images"] = sent
                describe()

            sent = enqueue_backfill(jobs, on_sent=on_sent)
            message = (
                f"rule {rule.name}: {sent} copy jobs queued to {get_settings().replication_queue}"
            )
            if as_json:
                echo_json({"rule": rule.name, "queued": sent})
            else:
                click.echo(message)
            return
        summary = run_backfill(
            rule_name,
            region=region,
            dry_run=dry_run,
            concurrency=concurrency,
            keep_results=as_json,
            on_listed=on_listed,
            on_bytes=on_bytes,
            on_image=on_image,
            on_failure=on_failure,
        )
    except LookupError as error:
        raise click.ClickException(str(error).strip("'\"")) from error
    finally:
        progress.close()
    if summary.failed > len(summary.errors):
        click.echo(f"({summary.failed - len(summary.errors)} more failures)", err=True)
    if as_json:
        echo_json(summary.model_dump(mode="json"))
    else:
        click.echo(summary_line(summary))
    if summary.failed:
        sys.exit(1)


def summary_line(summary: BackfillSummary) -> str:
    if summary.dry_run:
        return (
            f"rule {summary.rule} (dry run): {summary.images} images ({summary.planned} to copy, "
            f"{summary.unchanged} already there, {summary.failed} failed), "
            f"{summary.bytes_planned} bytes to move, {summary.bytes_skipped} bytes skipped "
            "(already at the destination)"
        )
    return (
        f"rule {summary.rule}: {summary.images} images ({summary.copied} copied, "
        f"{summary.unchanged} already there, {summary.failed} failed), {summary.bytes_moved} "
        f"bytes moved, {summary.bytes_skipped} bytes skipped (already at the destination)"
    )


@replicate.command("native")
@click.option("--rule", "rule_name", help="The replication rule to express.")
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Say, for every rule, whether ECR's replication could serve it instead; write nothing.",
)
@click.option("--dry-run", is_flag=True, help="Show the configuration; do not write it.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Source region.")
@local_option
def replicate_native(
    rule_name: str | None, every: bool, dry_run: bool, region: str | None, local: bool
) -> None:
    """Write ECR's own replication configuration for a rule ECR can express, or say why not."""
    if local:
        use_local_backend()
    if every:
        rules = current_policy().policy.replication
        plans = native_report(rules, caller_account(), region or get_settings().region)
        for plan in plans:
            verdict = (
                "native ECR replication could serve it"
                if plan.expressible
                else ("needs ecr-steward's copy engine")
            )
            click.echo(f"{plan.rule}: {verdict}")
            for reason in plan.reasons:
                click.echo(f"  - {reason}")
        return
    if not rule_name:
        raise click.UsageError("--rule NAME or --all is required")

    try:
        plan = run_native(rule_name, region=region, apply=not dry_run)
    except LookupError as error:
        raise click.ClickException(str(error).strip("'\"")) from error
    if not plan.expressible:
        click.echo(f"rule {rule_name}: ECR's replication cannot express it:", err=True)
        for reason in plan.reasons:
            click.echo(f"  - {reason}", err=True)
        click.echo("ecr-steward's own replication (on push, or `steward replicate`) can.", err=True)
        sys.exit(2)
    click.echo(json.dumps({"rules": plan.configuration}, indent=2))
    for note in plan.reasons:
        click.echo(f"note: {note}", err=True)
    verb = "would write" if dry_run else "wrote"
    click.echo(f"rule {rule_name}: {verb} put-replication-configuration", err=True)
