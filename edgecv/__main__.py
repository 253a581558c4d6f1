"""`python -m edgecv` runs the CLI."""

from edgecv.cli import main

main()
