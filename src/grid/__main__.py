"""`python -m grid` runs the CLI."""

from grid.cli.app import main

main()
