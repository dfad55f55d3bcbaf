"""`steward policy validate|schema`: the policy file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chalicelib.policy.document import PolicyError, load_policy, policy_schema, policy_warnings


@click.group()
def policy() -> None:
    """Validate the policy file and export its JSON Schema."""


@policy.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
def policy_validate(file: Path) -> None:
    """Check a policy file; on error, name every bad field and exit 1."""

    try:
        loaded = load_policy(file)
    except PolicyError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    rules = loaded.policy.tagging
    click.echo(f"{file}: valid ({len(rules)} tagging rules, {loaded.fingerprint[:19]})")
    # Warnings do not fail validation: the policy loads and the service runs on it.
    for warning in policy_warnings(loaded.policy):
        click.echo(f"warning: {warning}", err=True)


@policy.command("schema")
def policy_schema_command() -> None:
    """Print the policy's JSON Schema (point your editor's YAML support at it)."""

    click.echo(json.dumps(policy_schema(), indent=2))
