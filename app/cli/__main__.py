"""`python -m app.cli`: the same as the `applyrelay` command."""

from app.cli import main

main()
