"""`steward gate status`: the scan gate's record of an image."""

from __future__ import annotations

import click

from chalicelib.gate.sweep import gate_status
from steward_tools.cli.common import (
    apply_region,
    echo_json,
    json_option,
    local_option,
    region_option,
    use_local_backend,
)


@click.group()
def gate() -> None:
    """The scan gate's decisions (its sweep: `steward sweep run --schedule gate_sweep`)."""


@gate.command("status")
@click.argument("image")
@region_option
@local_option
@json_option
def gate_status_command(image: str, region: str | None, local: bool, as_json: bool) -> None:
    """The decision for REPOSITORY@DIGEST: verdict, reasons, counts, tags, policy version."""
    repository, _, digest = image.partition("@")
    if not repository or not digest:
        raise click.BadParameter("expected REPOSITORY@DIGEST", param_hint="IMAGE")
    if local:
        use_local_backend()
    apply_region(region)

    record = gate_status(repository, digest)
    if record is None:
        raise click.ClickException(f"no gate record for {image}")
    if as_json:
        echo_json(record)
        return
    decision = record.get("decision") or {}
    click.echo(f"{repository}@{digest}: {record['status']}")
    for reason in decision.get("reasons", []):
        click.echo(f"  {reason}")
    for key in ("counts", "tags", "policy_version", "pending_since", "decided_at"):
        value = decision.get(key, record.get(key))
        if value not in (None, {}, []):
            click.echo(f"  {key}: {value}")
