"""`steward lifecycle validate|preview`: ECR lifecycle policies, evaluated as ECR does."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from chalicelib.ecr.errors import RegistryError
from chalicelib.ecr.gateway import Registry
from chalicelib.ecr.lifecycle_policy import LifecyclePolicyError, parse_policy
from chalicelib.lifecycle.evaluate import evaluate_details
from chalicelib.lifecycle.preview import preview_repository
from steward_tools.cli.common import local_option, use_local_backend


@click.group()
def lifecycle() -> None:
    """ECR lifecycle policies: validate them, preview what they would expire or archive."""


def _read_lifecycle_policy(path: Path) -> Any:

    try:
        return parse_policy(path.read_text())
    except LifecyclePolicyError as error:
        for issue in error.issues:
            click.echo(f"{path}: {issue}", err=True)
        sys.exit(1)


@lifecycle.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def lifecycle_validate(file: Path) -> None:
    """Check a lifecycle policy as ECR would; on error, name every bad field and exit 1."""
    policy = _read_lifecycle_policy(file)
    click.echo(f"{file}: valid ({len(policy.rules)} rules)")


@lifecycle.command("preview")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Lifecycle policy JSON (with --repository: default the repository's own policy).",
)
@click.option(
    "--images",
    "images_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='What `aws ecr describe-images` prints: {"imageDetails": [...]}.',
)
@click.option(
    "--index-children",
    "children_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON {index digest: [child digests]}: children of a kept index are never expired.",
)
@click.option("--now", "now_text", help="Evaluate at this ISO-8601 time (default: now, UTC).")
@click.option("--explain", is_flag=True, help="Also print every image's decision and reason.")
@click.option("--repository", help="Ask ECR's own preview for this repository instead of --images.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
@local_option
def lifecycle_preview(
    policy_path: Path | None,
    images_path: Path | None,
    children_path: Path | None,
    now_text: str | None,
    explain: bool,
    repository: str | None,
    region: str | None,
    local: bool,
) -> None:
    """Print get-lifecycle-policy-preview's `previewResults` and `summary` as JSON."""

    if repository:
        if local:
            use_local_backend()

        if policy_path:
            _read_lifecycle_policy(policy_path)
        text = policy_path.read_text() if policy_path else None
        try:
            preview = preview_repository(Registry(region=region), repository, text)
        except RegistryError as error:
            raise click.ClickException(str(error)) from error
        shown = {"previewResults": preview.results, "summary": preview.summary}
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    if not policy_path or not images_path:
        raise click.UsageError("give --policy and --images (or --repository)")
    policy = _read_lifecycle_policy(policy_path)
    document = json.loads(images_path.read_text())
    details = document.get("imageDetails", []) if isinstance(document, dict) else document
    children = json.loads(children_path.read_text()) if children_path else None
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:
        plan = evaluate_details(policy, details, now, index_children=children)
    except (KeyError, ValueError) as error:
        raise click.ClickException(f"{images_path}: not describe-images output: {error}") from error
    if explain:
        for decision in plan.decisions:
            action = decision.action or "keep"
            click.echo(f"{decision.digest}  {action:<10} {decision.reason}", err=True)
    shown = {"previewResults": plan.preview_results(), "summary": plan.summary()}
    click.echo(json.dumps(shown, indent=2))
