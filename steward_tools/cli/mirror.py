"""`steward mirror plan|run --rule NAME [--dry-run] [--json]`: an upstream registry's images into
ECR, as the scheduled `mirror_sync` function does, run from here (credentials: the rule's secret,
else docker's config.json and credential helpers, else anonymous)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from tqdm import tqdm

from chalicelib.ecr import registries
from chalicelib.ecr.errors import RegistryError
from chalicelib.kernel.aws import caller_account
from chalicelib.kernel.jobqueue import send_jobs
from chalicelib.kernel.settings import get_settings
from chalicelib.mirror.fanout import find_mirror_rule, job_documents, plan_rule
from chalicelib.mirror.plan import describe_mirror_plan
from chalicelib.policy.document import PolicyError
from chalicelib.registry_client.errors import RegistryHTTPError
from chalicelib.replication.copy import copy_from_upstream, upstream_client
from chalicelib.replication.jobs import CopyJob
from steward_tools.cli.common import local_option, use_local_backend

FAILURES = (LookupError, PolicyError, RegistryError, RegistryHTTPError, OSError)


def _plan(rule_name: str, region: str | None) -> tuple[Any, Any, list[CopyJob]]:
    rule = find_mirror_rule(rule_name)
    plan = plan_rule(rule, docker_config=True)
    documents = job_documents(
        rule,
        plan,
        account=caller_account(),
        region=region or get_settings().region,
        docker_config=True,
    )
    return rule, plan, [CopyJob.model_validate(d) for d in documents]


@click.group()
def mirror() -> None:
    """Mirror rules: keep an upstream registry's images in ECR."""


@mirror.command("plan")
@click.option("--rule", "rule_name", required=True, help="The mirror rule (its `name`).")
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="ECR region.")
@local_option
def mirror_plan(rule_name: str, as_json: bool, region: str | None, local: bool) -> None:
    """What the rule selects upstream and where each image goes (reads the upstream only)."""
    if local:
        use_local_backend()
    try:
        _, plan, _ = _plan(rule_name, region)
    except FAILURES as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(plan.model_dump(mode="json"), indent=2))
        return
    for line in describe_mirror_plan(plan):
        click.echo(line)
    click.echo(
        f"rule {plan.rule}: {len(plan.to_copy)} images to mirror from {plan.upstream}, "
        f"{plan.unselected} tags not selected",
        err=True,
    )


@mirror.command("run")
@click.option("--rule", "rule_name", required=True, help="The mirror rule (its `name`).")
@click.option("--dry-run", is_flag=True, help="Read both sides and say what would move.")
@click.option("--json", "as_json", is_flag=True, help="One JSON result per image on stdout.")
@click.option("--queue", is_flag=True, help="Send the copy jobs to the queue instead.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None, help="ECR region.")
@local_option
def mirror_run(
    rule_name: str, dry_run: bool, as_json: bool, queue: bool, region: str | None, local: bool
) -> None:
    """Copy what the rule selects into ECR now (only what is missing), with a progress bar of
    bytes and blobs (plain lines when stderr is not a terminal)."""
    if local:
        use_local_backend()
    try:
        jobs = _plan(rule_name, region)[2]
    except FAILURES as error:
        raise click.ClickException(str(error)) from error
    if queue:
        if not dry_run:
            send_jobs(get_settings().replication_queue, [j.model_dump_json() for j in jobs])
        click.echo(f"rule {rule_name}: {len(jobs)} copy jobs {'to send' if dry_run else 'sent'}")
        return
    terminal = sys.stderr.isatty()
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=not terminal)
    totals = {"images": 0, "blobs": 0, "moved": 0, "skipped": 0, "failed": 0}
    try:
        for n, job in enumerate(jobs, 1):
            bar.set_description(f"image {n}/{len(jobs)} blobs {totals['blobs']}")
            assert job.upstream is not None
            destination = registries.registry(
                job.destination.account, job.destination.region, job.destination.role_arn
            )
            try:
                result = copy_from_upstream(
                    job,
                    source=upstream_client(job.upstream),
                    destination=destination,
                    dry_run=dry_run,
                    ledger_table=None if dry_run else get_settings().replication_table,
                    on_bytes=bar.update,
                )
            except FAILURES as error:
                totals["failed"] += 1
                click.echo(f"failed: {job.source_repository}@{job.digest}: {error}", err=True)
                continue
            totals["images"] += 1
            totals["blobs"] += result.blobs_copied
            totals["moved"] += result.bytes_moved or result.bytes_planned
            totals["skipped"] += result.bytes_skipped
            if as_json:
                click.echo(json.dumps(result.model_dump(mode="json")))
            line = (
                f"{job.source_repository}@{job.digest[:19]} → {job.destination.repository} "
                f"({', '.join(job.tags)}): {result.status}, {result.blobs_copied} blobs, "
                f"{result.bytes_moved or result.bytes_planned} bytes"
            )
            if terminal:
                tqdm.write(line, file=sys.stderr)
            else:
                click.echo(line, err=True)
    finally:
        bar.close()
    verb = "to move" if dry_run else "moved"
    click.echo(
        f"rule {rule_name}{' (dry run)' if dry_run else ''}: {totals['images']} images, "
        f"{totals['blobs']} blobs, {totals['moved']} bytes {verb}, {totals['skipped']} bytes "
        f"already there, {totals['failed']} failed",
        err=True,
    )
    if totals["failed"]:
        sys.exit(1)
