"""`python -m steward_tools.cli`: the `steward` command."""

from steward_tools.cli import main

main()
