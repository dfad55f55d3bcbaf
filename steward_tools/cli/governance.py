"""`steward governance plan|apply`: repository settings as the policy declares them."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.governance.plan import plan_governance
from chalicelib.governance.read import read_registry
from chalicelib.governance.task import reconcile
from chalicelib.policy.document import PolicyError, current_policy, load_policy
from steward_tools.cli.common import local_option, use_local_backend


@click.group()
def governance() -> None:
    """Repository settings, declared and ephemeral repositories, as the policy declares them."""


governance_policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (default: $STEWARD_POLICY, else policy.example.yaml).",
)


governance_now_option = click.option(
    "--now", "now_text", help="Evaluate TTLs at this ISO-8601 time (default: now)."
)


def _governance_inputs(policy_path: Path | None, now_text: str | None, local: bool) -> Any:

    if local:
        use_local_backend()
    try:
        loaded = load_policy(policy_path) if policy_path else current_policy()
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    return loaded.policy, now


def _echo_governance_change(change: Any, outcome: str | None = None) -> None:
    label = f"{outcome:<9} " if outcome else ""
    click.echo(f"{label}{change.operation:<33} {change.repository:<32} {change.reason}")


@governance.command("plan")
@governance_policy_option
@governance_now_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list settings already in sync.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def governance_plan(
    policy_path: Path | None,
    now_text: str | None,
    as_json: bool,
    show_all: bool,
    region: str | None,
    local: bool,
) -> None:
    """Show the drift between the policy and the registry, and what apply would do."""
    policy, now = _governance_inputs(policy_path, now_text, local)

    try:
        section = policy.governance
        plan = plan_governance(section, read_registry(Registry(region=region), section, now), now)
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(plan.model_dump_json(indent=2))
        return
    for change in plan.changes if show_all else plan.drift:
        _echo_governance_change(change)
    if not plan.drift:
        click.echo("no drift: every governed repository is as declared")


@governance.command("apply")
@governance_policy_option
@governance_now_option
@click.option("--dry-run", is_flag=True, help="Plan only; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def governance_apply(
    policy_path: Path | None,
    now_text: str | None,
    dry_run: bool,
    as_json: bool,
    region: str | None,
    local: bool,
) -> None:
    """Fix the drift: create declared repositories, fix settings, expire ephemeral ones."""
    policy, now = _governance_inputs(policy_path, now_text, local)

    try:
        _, result = reconcile(
            Registry(region=region),
            policy.governance,
            now,
            dry_run=dry_run or policy.dry_run,
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2, default=str))
    else:
        shown = [item for item in result.results if item.outcome != "kept"]
        for item in shown:
            _echo_governance_change(item.change, item.outcome)
            if item.detail:
                click.echo(f"{'':10}{item.detail}")
        if not shown:
            click.echo("no drift: every governed repository is as declared")
    if result.with_outcome("failed"):
        sys.exit(1)
