"""What every command group shares: the embedded backend's address and the `--local` option."""

from __future__ import annotations

import os

import click

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def local_endpoint() -> str:
    host = os.environ.get("STEWARD_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('STEWARD_AWS_PORT', '5000')}"


def use_local_backend() -> None:
    """Point boto3 at the embedded backend that `steward serve` runs, with its dummy keys."""
    os.environ["AWS_ENDPOINT_URL"] = local_endpoint()
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)


local_option = click.option(
    "--local",
    is_flag=True,
    help="Talk to the embedded backend of `steward serve` (127.0.0.1:$STEWARD_AWS_PORT).",
)
