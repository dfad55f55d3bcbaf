"""`steward replicate [--rule NAME] [--dry-run]` and `steward replicate native`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.settings import get_settings
from chalicelib.policy import current_policy
from chalicelib.replication.backfill import BackfillSummary, run_backfill
from chalicelib.replication.native import native_report, run_native
from steward_tools.cli.common import echo_json, json_option, local_option, use_local_backend
from steward_tools.cli.progress import Progress


@click.group(invoke_without_command=True)
@click.option("--rule", "rule_name", help="The replication rule (its `name` in the policy).")
@click.option("--dry-run", is_flag=True, help="Show what would be copied; copy nothing.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="Source region.")
@local_option
@json_option
@click.pass_context
def replicate(
    ctx: click.Context,
    rule_name: str | None,
    dry_run: bool,
    region: str | None,
    local: bool,
    as_json: bool,
) -> None:
    """Backfill: copy the existing images a replication rule selects, only what is missing."""
    if ctx.invoked_subcommand is not None:
        return
    if not rule_name:
        raise click.UsageError("--rule NAME is required")
    if local:
        use_local_backend()

    progress = Progress("replicate")
    done = {"images": 0, "total": 0}

    def on_jobs(jobs: list[Any]) -> None:
        done["total"] = len(jobs)
        progress.describe(f"replicate, images 0/{len(jobs)}")

    def on_image(result: Any) -> None:
        done["images"] += 1
        progress.describe(f"replicate, images {done['images']}/{done['total']}")
        if dry_run:
            for line in [f"{result.source} → {result.destination}", *result.plan]:
                progress.note(f"  {line}")

    try:
        summary = run_backfill(
            rule_name,
            region=region,
            dry_run=dry_run,
            on_jobs=on_jobs,
            on_bytes=progress.update,
            on_image=on_image,
        )
    except LookupError as error:
        raise click.ClickException(str(error).strip("'\"")) from error
    finally:
        progress.close()
    for failure in summary.errors:
        click.echo(f"failed: {failure}", err=True)
    if as_json:
        echo_json(summary.model_dump(mode="json"))
    else:
        click.echo(summary_line(summary))
    if summary.failed:
        sys.exit(1)


def summary_line(summary: BackfillSummary) -> str:
    if summary.dry_run:
        to_copy = sum(1 for result in summary.results if result.status == "planned")
        return (
            f"rule {summary.rule} (dry run): {summary.images} images ({to_copy} to copy, "
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
