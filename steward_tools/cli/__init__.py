"""`steward`: the operator's command line (installed with the `cli` extra, never in a function).

One module per command group; this one registers them all on the `steward` group."""

from __future__ import annotations

import click

from steward_tools.cli.errors import StewardGroup
from steward_tools.cli.events import events
from steward_tools.cli.findings import findings
from steward_tools.cli.gate import gate
from steward_tools.cli.governance import governance
from steward_tools.cli.images import images, push, sample_image
from steward_tools.cli.lifecycle import lifecycle
from steward_tools.cli.login import login
from steward_tools.cli.mirror import mirror
from steward_tools.cli.policy import policy
from steward_tools.cli.replicate import replicate
from steward_tools.cli.retention import retention
from steward_tools.cli.serve import serve
from steward_tools.cli.sweep import sweep_group


@click.group(cls=StewardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ecr-steward")
@click.option(
    "--debug",
    is_flag=True,
    envvar="STEWARD_DEBUG",
    help="Show the traceback of an error instead of its one-line summary.",
)
def main(debug: bool) -> None:
    """ecr-steward: event-driven image management for Amazon ECR.

    Errors end in one line on stderr and a non-zero exit; `steward --debug COMMAND` shows the
    traceback."""


for command in (
    serve,
    push,
    images,
    sample_image,
    policy,
    events,
    governance,
    lifecycle,
    gate,
    findings,
    retention,
    sweep_group,
    login,
    replicate,
    mirror,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
