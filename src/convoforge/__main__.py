"""`python -m convoforge` runs the CLI."""

from convoforge.app.cli import main

main()
