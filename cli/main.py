"""The `pmguard` command line.

    pmguard lint PATH... | -      check postmortems for blame language and action items
    pmguard rules test [PACK]     run every rule's own examples
    pmguard rules list [PACK]     list a pack's rules
    pmguard serve | worker | db upgrade | reconcile | jobs   the service (cli/service.py)
    pmguard users ...              accounts and API tokens (cli/users.py)

Exit codes of `lint`: 0 when no unsuppressed finding is at or above --min-severity, 1 when
one is, 2 on a usage or input error (one line on stderr starting "pmguard: ").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.errors import CliError
from nlp.limits import MAX_SOURCE_CHARS
from nlp.model import SEVERITIES

FORMATS = ("text", "json", "sarif")
INPUT_FORMATS = ("auto", "markdown", "jira", "adf", "text")
STDIN = "-"
STDIN_NAME = "<stdin>"


def _warn(message: str) -> None:
    click.echo(f"pmguard: warning: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="postmortem-guard", prog_name="pmguard", message="%(prog)s %(version)s"
)
def main() -> None:
    """postmortem-guard: keeps incident learning blameless.

    Flags sentences that blame a person instead of asking what in the system made the
    outcome likely, suggests a systems question for each, and checks the action items.
    """


# --------------------------------------------------------------------------- lint


@main.command(short_help="Check postmortems for blame language and action items.")
@click.argument("paths", nargs=-1, required=True, metavar="PATH... | -")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Output format; sarif is for GitHub code scanning.",
)
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITIES),
    default="info",
    show_default=True,
    help="Report only findings at or above this severity (in every format, JSON and SARIF "
    "included) and exit 1 only for those.",
)
@click.option(
    "--rules",
    "pack_path",
    metavar="PACK",
    help="Rule pack YAML file (default: the shipped pack).",
)
@click.option(
    "--people",
    multiple=True,
    metavar="ROSTER",
    help="Comma-separated names and @handles of the incident's participants, e.g. "
    '"Sam Smith,@ssmith"; these count as people even in lower case. Repeatable.',
)
@click.option(
    "--model",
    metavar="auto|blank|NAME",
    help="spaCy pipeline: auto (trained English if installed), blank, or a package name. "
    "Default: $PMGUARD_SPACY_MODEL, else auto.",
)
@click.option(
    "--policy",
    "policy_path",
    metavar="FILE",
    help="Action-item policy YAML (see examples/policy.yml).",
)
@click.option(
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    default="auto",
    show_default=True,
    help="Source format; auto guesses from the file extension and the content.",
)
@click.option(
    "--stdin-filename",
    metavar="NAME",
    help="Name to report for '-' (stdin); its extension also guides --input-format auto.",
)
@click.option(
    "--no-blockquotes",
    is_flag=True,
    help="Do not analyse quoted material (blockquotes, {quote}, bq.).",
)
@click.option(
    "--show-suppressed",
    is_flag=True,
    help="Text format: also print findings silenced by pmguard-disable comments. "
    "JSON and SARIF always include them, marked as suppressed.",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    metavar="FILE",
    help="Write the report to FILE instead of standard output.",
)
def lint(
    paths: tuple[str, ...],
    output_format: str,
    min_severity: str,
    pack_path: str | None,
    people: tuple[str, ...],
    model: str | None,
    policy_path: str | None,
    input_format: str,
    stdin_filename: str | None,
    no_blockquotes: bool,
    show_suppressed: bool,
    output_path: str | None,
) -> None:
    """Check postmortems (markdown, Jira wiki markup or Atlassian Document Format JSON) for
    person-blaming language and for action items. '-' reads standard input.

    Exit status: 0 when no unsuppressed finding is at or above --min-severity, 1 when one
    is, 2 on a usage or input error.
    """
    # Inputs first: a missing or unreadable file is reported before spaCy is even imported.
    inputs = [_read_input(path, stdin_filename) for path in paths]

    # Imported here so that --help, --version and input errors stay fast.
    from nlp import report
    from nlp.analysis import analyse
    from nlp.limits import TooLarge
    from nlp.text import TextFormatError, detect_format
    from rules.policy import ActionPolicy, PolicyError

    pack = _load_pack(pack_path)
    policy = None
    if policy_path is not None:
        try:
            policy = ActionPolicy.load(policy_path)
        except PolicyError as exc:
            raise CliError(str(exc)) from None
    roster = [name.strip() for entry in people for name in entry.split(",") if name.strip()]

    _pipeline(model)  # load it now so an unknown model is reported before any work

    results: list[report.Result] = []
    for path, name, source in inputs:
        fmt = input_format
        if fmt == "auto":
            fmt = detect_format(source, stdin_filename if path == STDIN else path)
        try:
            analysis = analyse(
                source,
                fmt=fmt,
                pack=pack,
                people=roster,
                policy=policy,
                model=model,
                include_blockquotes=not no_blockquotes,
            )
        except (TextFormatError, TooLarge) as exc:
            raise CliError(f"{name}: {exc}") from None
        results.append((name, source, analysis))

    _print_warnings(results)

    if output_format == "text":
        rendered = report.to_text(results, min_severity, show_suppressed=show_suppressed)
    elif output_format == "json":
        rendered = _dump(report.to_json(results, min_severity))
    else:
        rendered = _dump(report.to_sarif(results, pack, min_severity, root=str(Path.cwd())))
    _write(rendered, output_path)

    sys.exit(1 if report.blocking(results, min_severity) else 0)


def _read_input(path: str, stdin_filename: str | None) -> tuple[str, str, str]:
    """(path as given, name to report, source text); CliError naming the file on failure."""
    # Read at most what could pass the size limit (UTF-8 takes up to 4 bytes a character),
    # so a huge file or an endless pipe is refused without being held in memory.
    cap = 4 * MAX_SOURCE_CHARS + 1
    if path == STDIN:
        name = stdin_filename or STDIN_NAME
        data = sys.stdin.buffer.read(cap)
    else:
        name = path
        p = Path(path)
        if p.is_dir():
            raise CliError(f"{path}: is a directory; pass the postmortem files inside it")
        try:
            with p.open("rb") as file:
                data = file.read(cap)
        except FileNotFoundError:
            raise CliError(f"{path}: no such file") from None
        except PermissionError:
            raise CliError(f"{path}: permission denied") from None
        except OSError as exc:
            raise CliError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) >= cap:
        raise CliError(f"{name}: too large to check: over {cap - 1:,} bytes (the limit is "
                       f"{MAX_SOURCE_CHARS:,} characters)")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"{name}: not UTF-8 text ({exc.reason} at byte offset {exc.start})"
        ) from None
    # A byte-order mark is not part of the text: without this a first-line heading would
    # not be a heading and ADF JSON would not parse.
    return path, name, source.removeprefix("\ufeff")


def _print_warnings(results: list) -> None:
    """Each analysis warning once; ones about a place in a file name the file."""
    seen: set[str] = set()
    for name, _source, analysis in results:
        for warning in analysis.warnings:
            text = f"{name}: {warning}" if warning.startswith("line ") else warning
            if text not in seen:
                seen.add(text)
                _warn(text)


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _write(rendered: str, output_path: str | None) -> None:
    if output_path is not None and output_path != STDIN:
        try:
            Path(output_path).write_text(rendered, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{output_path}: cannot write report ({exc.strerror or exc})") from None
        return
    try:
        try:
            sys.stdout.write(rendered)
        except UnicodeEncodeError:
            # A console that cannot show "→" or a name's accents still gets the report.
            sys.stdout.flush()
            sys.stdout.buffer.write(rendered.encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:
        # `pmguard lint … | head` closed the pipe: nothing left to say.
        sys.stderr.close()
        sys.exit(0)


# --------------------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Inspect and test rule packs."""


@rules.command("test")
@click.argument("pack_path", required=False, metavar="[PACK]")
@click.option(
    "--model",
    metavar="auto|blank|NAME",
    help="spaCy pipeline to run the examples with (default: $PMGUARD_SPACY_MODEL, else auto).",
)
def rules_test(pack_path: str | None, model: str | None) -> None:
    """Run every rule's examples: each 'match' sentence must be flagged by its rule and each
    'no_match' sentence must not. Exit 1 when any fails, 2 for an invalid pack."""
    from check.examples import run_examples
    from nlp.blame import compile_pack

    pack = _load_pack(pack_path)
    pipeline = _pipeline(model)
    for warning in compile_pack(pack, pipeline).skipped:
        _warn(warning)
    failures, count = run_examples(pack, model)
    for failure in failures:
        click.echo(str(failure))
    noun = "example" if count == 1 else "examples"
    fails = "failure" if len(failures) == 1 else "failures"
    click.echo(
        f"{count} {noun}, {len(failures)} {fails} ({pack.name}@{pack.version}, "
        f"{pipeline.name} pipeline)"
    )
    sys.exit(1 if failures else 0)


@rules.command("list")
@click.argument("pack_path", required=False, metavar="[PACK]")
def rules_list(pack_path: str | None) -> None:
    """List a pack's rules: id, category, severity, enabled."""
    pack = _load_pack(pack_path)
    rows = [("ID", "CATEGORY", "SEVERITY", "ENABLED")] + [
        (r.id, r.category, r.severity, "yes" if r.enabled else "no") for r in pack.rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(pack.rules)} rules in {pack.name}@{pack.version}")


def _pipeline(model: str | None):
    from nlp.pipeline import ModelError, get_pipeline

    try:
        return get_pipeline(model)
    except ModelError as exc:
        raise CliError(str(exc)) from None
    except ImportError as exc:  # find_spec("pkg.sub") when "pkg" does not exist
        raise CliError(f"spaCy model {model!r} cannot be found: {exc}") from None


def _load_pack(pack_path: str | None):
    from rules.schema import PackError, load_pack

    try:
        return load_pack(pack_path)
    except PackError as exc:
        raise CliError(str(exc)) from None


def _register_service_commands() -> None:
    from cli.service import register
    from cli.users import register as register_users

    register(main)
    register_users(main)


_register_service_commands()
