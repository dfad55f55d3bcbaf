"""`steward retention plan|diff`: what the sweep would prune, and what a policy change would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.kernel.settings import get_settings
from chalicelib.policy.document import PolicyError, current_policy, load_policy
from chalicelib.retention.diff import diff_plans
from chalicelib.retention.marks import MarkStore
from chalicelib.retention.task import plan_for_repository, read_repository
from steward_tools.cli.common import echo_json, json_option, local_option, use_local_backend


@click.group()
def retention() -> None:
    """Show what retention would keep and delete, and why."""


def _retention_inputs(repository: str, region: str | None, local: bool) -> tuple[Any, Any]:
    if local:
        use_local_backend()

    registry = Registry(region=region)
    return registry, registry.describe_repository(repository)


def _now(value: str | None) -> Any:

    if value is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _load_policy_or_exit(path: Path | None) -> Any:

    try:
        return (load_policy(path) if path else current_policy()).policy
    except PolicyError as error:
        raise click.ClickException(str(error)) from error


def _grace_marks(repository: str) -> Any:
    """The sweep's first-marked times (read only), so the plan shows the real grace deadlines."""

    try:
        return MarkStore(get_settings().retention_table).load(repository)
    except Exception as error:  # no table or no access: plan as if nothing were marked yet
        click.echo(f"note: grace-period marks not read ({error})", err=True)
        return None


def _decision_line(decision: Any) -> str:
    tags = ",".join(decision.tags) or "-"
    held = f"  [not now: {decision.deferred}]" if decision.deferred else ""
    return (
        f"{decision.action:<6}  {decision.digest[:19]}…  {decision.pushed_at:%Y-%m-%d %H:%M}  "
        f"{decision.role:<8}  {tags}  {decision.reason}{held}"
    )


@retention.command("plan")
@click.option("--repository", "-r", required=True)
@click.option("--policy", "policy_path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan as JSON.")
@click.option("--now", help="Plan as of this ISO-8601 moment (default: now).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def retention_plan(
    repository: str,
    policy_path: Path | None,
    as_json: bool,
    now: str | None,
    region: str | None,
    local: bool,
) -> None:
    """Every image of REPOSITORY with keep or delete and the reason. Deletes nothing."""

    policy = _load_policy_or_exit(policy_path)
    try:
        registry, info = _retention_inputs(repository, region, local)
        plan = plan_for_repository(
            registry,
            policy.retention,
            info,
            _now(now),
            dry_run=policy.dry_run,
            marks=_grace_marks(repository) if policy.retention.grace_period_days else None,
        )
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(plan.model_dump_json(indent=2))
        return
    for decision in plan.decisions:
        click.echo(_decision_line(decision))
    deletes = [d for d in plan.decisions if d.action == "delete"]
    click.echo(
        f"{repository}: {plan.images} images, {len(deletes)} to delete "
        f"({len(plan.deletions)} this run), {plan.images - len(deletes)} kept"
    )
    for note in [*plan.notes, *([plan.capped] if plan.capped else [])]:
        click.echo(f"note: {note}")


@retention.command("diff")
@click.argument("old_policy", type=click.Path(exists=True, path_type=Path))
@click.argument("new_policy", type=click.Path(exists=True, path_type=Path))
@click.option("--repository", "-r", required=True)
@click.option("--now", help="Compare as of this ISO-8601 moment (default: now).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
@json_option
def retention_diff(
    old_policy: Path,
    new_policy: Path,
    repository: str,
    now: str | None,
    region: str | None,
    local: bool,
    as_json: bool,
) -> None:
    """What changing OLD_POLICY to NEW_POLICY would delete (+) or spare (-) in REPOSITORY."""

    old, new = _load_policy_or_exit(old_policy), _load_policy_or_exit(new_policy)
    moment = _now(now)
    try:
        registry, info = _retention_inputs(repository, region, local)
        contents = read_repository(registry, repository)
        plans = [
            plan_for_repository(registry, p.retention, info, moment, contents=contents)
            for p in (old, new)
        ]
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    changes = diff_plans(*plans)
    if as_json:
        echo_json([change.model_dump(mode="json") for change in changes])
        return
    for change in changes:
        sign = "+" if change.after.action == "delete" else "-"
        click.echo(
            f"{sign} {change.digest[:19]}…  {','.join(change.tags) or '-'}  "
            f"{change.after.action}: {change.after.reason}  (was {change.before.action}: "
            f"{change.before.reason})"
        )
    more = sum(1 for c in changes if c.after.action == "delete")
    click.echo(f"{repository}: {more} more deleted, {len(changes) - more} more kept")
