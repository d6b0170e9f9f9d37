"""The one error every `pmguard` command raises for a usage or input problem."""

from __future__ import annotations

from typing import IO, Any

import click


class CliError(click.ClickException):
    """A usage or input error: one line on stderr, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"pmguard: {self.message}", err=True)
