"""`steward sweep run`: every schedule of the service, now (what EventBridge fires on its rate)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from chalicelib.kernel import aws
from chalicelib.sweep.jobs import start_sweep
from steward_tools.cli.common import (
    apply_region,
    echo_json,
    json_option,
    local_option,
    region_option,
    use_local_backend,
)
from steward_tools.local import schedules
from steward_tools.local.runner import ACCOUNT


@click.group("sweep")
def sweep_group() -> None:
    """The service's schedules: the repository sweep, the gate sweep, governance."""


@sweep_group.command("run")
@click.option(
    "--schedule",
    "names",
    multiple=True,
    type=click.Choice(list(schedules.SCHEDULES)),
    help="Run only this schedule (give it again for more; default: every one).",
)
@click.option(
    "--now",
    "now_text",
    help="Run as of this ISO-8601 moment (default: now): the scan timeout, TTLs are measured "
    "from it.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Start a repository sweep whose jobs report what they would repair (aliases, gate "
    "tags) and change nothing; the other schedules have no dry run and are skipped.",
)
@region_option
@local_option
@json_option
def sweep_run(
    names: tuple[str, ...],
    now_text: str | None,
    dry_run: bool,
    region: str | None,
    local: bool,
    as_json: bool,
) -> None:
    """Run the service's schedules now, as their scheduled functions would, one after another:

    \b
    start_sweep           one job per repository (retention, settings) onto the job queue
    gate_sweep            fail closed what waited past the scan timeout; re-decide
    governance_reconcile  create declared repositories, expire ephemeral ones

    Prints each schedule's summary (`--json`: one JSON object by schedule name)."""
    if local:
        use_local_backend()
    apply_region(region)
    account = ACCOUNT if local else aws.caller_account()
    region_name = region or aws.session().region_name or "us-east-1"
    chosen = ["start_sweep"] if dry_run else list(names or schedules.SCHEDULES)
    click.echo(f"running {', '.join(chosen)} in {region_name}", err=True)
    now = _moment(now_text)
    outcomes: dict[str, Any] = {}
    failed = False
    for name in chosen:
        try:
            outcomes[name] = (
                start_sweep(account=account, region=region_name, now=now, dry_run=True)
                if dry_run
                else schedules.run(name, account=account, region=region_name, now=now)
            )
        except click.ClickException:
            raise
        except Exception as error:
            if len(chosen) == 1:
                raise  # the group's handler says it in one line
            failed = True
            outcomes[name] = {"error": f"{type(error).__name__}: {error}"}
        if not as_json:
            click.echo(f"{name}: {_summary(outcomes[name])}")
    if as_json:
        echo_json(outcomes)
    if failed:
        sys.exit(1)


def _summary(outcome: Any) -> str:
    """One line: scalars as they are, a mapping's items inline, a list by its length (--json
    has the whole of it)."""
    if not isinstance(outcome, dict):
        return str(outcome)
    parts = []
    for key, value in outcome.items():
        if isinstance(value, list):
            parts.append(f"{key} {len(value)}")
        elif isinstance(value, dict):
            parts.append(f"{key} " + " ".join(f"{k}={v}" for k, v in value.items()))
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint="--now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
