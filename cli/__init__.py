"""The `pmguard` command line: `lint` and `rules` (cli/main.py), the service's commands
(cli/service.py) and accounts (cli/users.py)."""

from cli.main import main

__all__ = ["main"]
