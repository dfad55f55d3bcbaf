"""`steward gate status`: the scan gate's record of an image."""

from __future__ import annotations

import json
import os

import click

from chalicelib.gate.sweep import gate_status
from steward_tools.cli.common import local_option, use_local_backend


@click.group()
def gate() -> None:
    """The scan gate's decisions."""


@gate.command("status")
@click.argument("image")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def gate_status_command(image: str, region: str | None, local: bool) -> None:
    """The decision for REPOSITORY@DIGEST: verdict, reasons, counts, tags, policy version."""
    if local:
        use_local_backend()
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    repository, _, digest = image.partition("@")
    if not repository or not digest:
        raise click.BadParameter("expected REPOSITORY@DIGEST", param_hint="IMAGE")

    record = gate_status(repository, digest)
    if record is None:
        raise click.ClickException(f"no gate record for {image}")
    decision = record.get("decision") or {}
    click.echo(f"{repository}@{digest}: {record['status']}")
    for reason in decision.get("reasons", []):
        click.echo(f"  {reason}")
    click.echo(json.dumps(record, indent=2))
