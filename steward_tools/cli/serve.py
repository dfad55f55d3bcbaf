"""`steward serve`: the service on the embedded AWS backend (what `make run` starts)."""

from __future__ import annotations

from pathlib import Path

import click

from chalicelib.policy.document import PolicyError
from steward_tools.local.runner import PortInUse
from steward_tools.local.runner import serve as run_service


@click.command()
@click.option("--host", envvar="STEWARD_HOST", default="127.0.0.1", show_default=True)
@click.option("--aws-port", envvar="STEWARD_AWS_PORT", default=5000, show_default=True, type=int)
@click.option("--api-port", envvar="STEWARD_API_PORT", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    envvar="STEWARD_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded registry keeps layer bytes (default: a temporary directory).",
)
def serve(host: str, aws_port: int, api_port: int, data_dir: Path | None) -> None:
    """Run the service on the embedded AWS backend until Ctrl-C."""

    try:
        run_service(host=host, aws_port=aws_port, api_port=api_port, data_dir=data_dir)
    except (PolicyError, PortInUse) as error:
        raise click.ClickException(str(error)) from error
