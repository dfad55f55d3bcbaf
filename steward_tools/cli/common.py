"""What every command group shares: the embedded backend's address, the `--local`, `--json` and
`--region` options, and JSON output."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from steward_tools.cli.errors import probe

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Settings of the caller's real AWS set-up that would redirect or break a local call: a profile
# that exists only on another machine (ProfileNotFound), or its session token.
NOT_LOCAL = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


def local_host() -> str:
    return os.environ.get("STEWARD_HOST", "127.0.0.1")


def local_port() -> int:
    value = os.environ.get("STEWARD_AWS_PORT", "5000")
    try:
        return int(value)
    except ValueError:
        raise click.ClickException(f"STEWARD_AWS_PORT={value!r} is not a port number") from None


def local_endpoint() -> str:
    host = local_host()
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"  # bound to every interface: loopback reaches it
    return f"http://{host}:{local_port()}"


def use_local_backend(*, check: bool = True) -> None:
    """Point boto3 at the embedded backend that `steward serve` runs, with its dummy keys.

    With `check`, fail in under a second, saying to start it, when nothing listens there;
    otherwise boto3 would retry its connection for half a minute and end in a traceback."""
    endpoint = local_endpoint()
    if check:
        probe(endpoint.split("//")[1].rsplit(":", 1)[0], local_port(), endpoint)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for key in NOT_LOCAL:
        os.environ.pop(key, None)
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)


def apply_region(region: str | None) -> None:
    """`--region` for code that takes its region from the environment (tables, queues)."""
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region


def echo_json(data: Any) -> None:
    """JSON on stdout, alone: every other line a command prints goes to stderr."""
    click.echo(json.dumps(data, indent=2, default=str))


local_option = click.option(
    "--local",
    is_flag=True,
    help="Talk to the embedded backend of `steward serve` (127.0.0.1:$STEWARD_AWS_PORT).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON on stdout (and anything else on stderr)."
)
region_option = click.option(
    "--region", envvar="AWS_DEFAULT_REGION", default=None, help="AWS region (default: yours)."
)
