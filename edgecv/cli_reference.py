"""The ``edgecv`` command line as one click command, for the manual's CLI reference.

``docs/reference/cli.md`` points mkdocs-click at :data:`command`, so every command and option
in the manual is read from the Typer app itself and cannot drift from it."""

import typer.main

from edgecv.cli import app

command = typer.main.get_command(app)
"""The click group behind ``edgecv`` (``typer.main.get_command(app)``)."""
