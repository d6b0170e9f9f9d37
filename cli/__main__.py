"""`python -m cli`: the same as the `pmguard` command."""

from cli.main import main

main(prog_name="pmguard")
