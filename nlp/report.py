"""Output formats of `pmguard lint`: plain text, JSON and SARIF 2.1.0.

Pure formatting: each function takes the analysed files as `(path, source, analysis)`
tuples and returns a string or a JSON-ready dict; nothing here reads files or writes
output.

`min_severity` filters findings in every format: a finding below it is neither printed nor
counted. Suppressed findings (inline `pmguard-disable` comments) are counted apart: text
shows them only when asked (`show_suppressed`), JSON and SARIF always carry them, marked
`"suppressed": true` and with a SARIF `suppressions` entry respectively, so a reviewer can
still see what was silenced and why.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import PurePath, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote

from nlp.model import SEVERITIES, Analysis, Finding, severity_rank

if TYPE_CHECKING:  # rules.schema imports spaCy; formatting needs only the records
    from rules.schema import Rule, RulePack

Result = tuple[str, str, Analysis]  # (path as shown to the user, source text, analysis)

TOOL_NAME = "postmortem-guard"
DISTRIBUTION = "postmortem-guard"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
SARIF_LEVELS = {"info": "note", "warning": "warning", "error": "error"}
SUGGESTION_MARK = "→ "


# --------------------------------------------------------------------------- selection


def at_or_above(findings: Iterable[Finding], min_severity: str = "info") -> list[Finding]:
    """Findings whose severity is `min_severity` or higher, suppressed ones included."""
    floor = severity_rank(min_severity)
    return [f for f in findings if severity_rank(f.severity) >= floor]


def blocking(results: Sequence[Result], min_severity: str = "info") -> list[Finding]:
    """Unsuppressed findings at or above `min_severity`: the ones that make lint exit 1."""
    return [
        f
        for _path, _source, analysis in results
        for f in at_or_above(analysis.findings, min_severity)
        if not f.suppressed
    ]


def _counts(results: Sequence[Result], min_severity: str) -> tuple[Counter[str], int]:
    by_severity: Counter[str] = Counter({s: 0 for s in SEVERITIES})
    suppressed = 0
    for _path, _source, analysis in results:
        for finding in at_or_above(analysis.findings, min_severity):
            if finding.suppressed:
                suppressed += 1
            else:
                by_severity[finding.severity] += 1
    return by_severity, suppressed


def _first(results: Sequence[Result], attr: str) -> str:
    return next((getattr(a, attr) for _p, _s, a in results if getattr(a, attr)), "")


def _plural(count: int, word: str) -> str:
    if word == "info" or count == 1:
        return f"{count} {word}"
    return f"{count} {word}s"


# --------------------------------------------------------------------------- text


def to_text(
    results: Sequence[Result], min_severity: str = "info", *, show_suppressed: bool = False
) -> str:
    """One line per finding, its suggestion indented under it, then a summary line.

    `path:line:col: severity [rule-id] message`
    `    → suggestion`
    """
    lines: list[str] = []
    for path, _source, analysis in results:
        for f in at_or_above(analysis.findings, min_severity):
            if f.suppressed and not show_suppressed:
                continue
            line = f"{path}:{f.line}:{f.column}: {f.severity} [{f.rule}] {f.message}"
            if f.suppressed:
                line += f" (suppressed: {f.justification or 'no reason given'})"
            lines.append(line)
            if f.suggestion:
                lines.append(f"    {SUGGESTION_MARK}{f.suggestion}")
    lines.append(text_summary(results, min_severity))
    return "\n".join(lines) + "\n"


def text_summary(results: Sequence[Result], min_severity: str = "info") -> str:
    """`3 findings (1 warning, 2 info) in 2 files; 1 suppressed`."""
    by_severity, suppressed = _counts(results, min_severity)
    total = sum(by_severity.values())
    out = _plural(total, "finding")
    parts = [_plural(by_severity[s], s) for s in reversed(SEVERITIES) if by_severity[s]]
    if parts:
        out += f" ({', '.join(parts)})"
    out += f" in {_plural(len(results), 'file')}"
    if suppressed:
        out += f"; {suppressed} suppressed"
    return out


# --------------------------------------------------------------------------- JSON


def to_json(results: Sequence[Result], min_severity: str = "info") -> dict:
    """`{"files": [{path, findings, action_items, warnings}], "summary": {...}}`.

    Findings below `min_severity` are left out; suppressed ones stay in, marked
    `"suppressed": true`, and are counted under `summary.suppressed`, not `findings`.
    """
    by_severity, suppressed = _counts(results, min_severity)
    files = [
        {
            "path": path,
            "findings": [f.to_dict() for f in at_or_above(analysis.findings, min_severity)],
            "action_items": [item.to_dict() for item in analysis.action_items],
            "warnings": list(analysis.warnings),
        }
        for path, _source, analysis in results
    ]
    return {
        "files": files,
        "summary": {
            "files": len(results),
            "findings": sum(by_severity.values()),
            "by_severity": {s: by_severity[s] for s in SEVERITIES},
            "suppressed": suppressed,
            "pack": _first(results, "pack_version"),
            "model": _first(results, "model"),
        },
    }


# --------------------------------------------------------------------------- SARIF


def rule_name(rule_id: str) -> str:
    """`blame.counterfactual-modal` -> `BlameCounterfactualModal`."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", rule_id))


def fingerprint_base(finding: Finding) -> str:
    return finding.fingerprint


def artifact_location(path: str, root: str | None = None) -> dict:
    """A SARIF artifactLocation: relative to %SRCROOT% whenever the path allows it."""
    pure = PurePath(path)
    if pure.is_absolute() and root is not None:
        with contextlib.suppress(ValueError):  # outside root: stays absolute
            pure = pure.relative_to(root)
    if pure.is_absolute():
        return {"uri": pure.as_uri()}
    posix = posixpath.normpath(PurePosixPath(*pure.parts).as_posix()) if pure.parts else path
    return {"uri": quote(posix, safe="/"), "uriBaseId": SRCROOT}


def _rule_help(explanation: str, suggestion: str, match: Sequence[str], no_match: Sequence[str]):
    text = [explanation, "", f"Suggested question: {suggestion}"]
    markdown = [explanation, "", f"**Suggested question:** {suggestion}"]
    if match:
        text += ["", "Flagged, for example:"] + [f"- {s}" for s in match]
        markdown += ["", "**Flagged, for example:**", ""] + [f"- {s}" for s in match]
    if no_match:
        text += ["", "Not flagged (systems language):"] + [f"- {s}" for s in no_match]
        markdown += ["", "**Not flagged (systems language):**", ""] + [f"- {s}" for s in no_match]
    return {"text": "\n".join(text), "markdown": "\n".join(markdown)}


def _descriptor(rule: Rule) -> dict:
    out = {
        "id": rule.id,
        "name": rule_name(rule.id),
        "shortDescription": {"text": rule.message},
        "fullDescription": {"text": rule.explanation},
        "help": _rule_help(
            rule.explanation, rule.suggestion, rule.examples_match, rule.examples_no_match
        ),
    }
    if rule.link:
        out["helpUri"] = rule.link
    config: dict = {"level": SARIF_LEVELS[rule.severity]}
    if not rule.enabled:
        config["enabled"] = False
    out["defaultConfiguration"] = config
    out["properties"] = {"category": rule.category, "tags": ["blameless", rule.category]}
    return out


def _engine_descriptor(finding: Finding) -> dict:
    """Rules the engine reports without a pack entry (the structural action-item checks)."""
    explanation = (
        "A lesson has to become a change that lives in a shared system. This check reads the "
        "postmortem's action-items section; the action-item policy (pmguard lint --policy) "
        "says how many items it needs and what each must carry."
    )
    return {
        "id": finding.rule,
        "name": rule_name(finding.rule),
        "shortDescription": {"text": finding.message},
        "fullDescription": {"text": explanation},
        "help": _rule_help(explanation, finding.suggestion, (), ()),
        "defaultConfiguration": {"level": SARIF_LEVELS[finding.severity]},
        "properties": {"category": finding.category, "tags": ["blameless", finding.category]},
    }


def to_sarif(
    results: Sequence[Result],
    pack: RulePack,
    min_severity: str = "info",
    *,
    version: str | None = None,
    information_uri: str | None = None,
    root: str | None = None,
) -> dict:
    """A SARIF 2.1.0 log for GitHub code scanning: one run, every rule of `pack` described
    (plus engine rule ids that occur), one result per finding at or above `min_severity`.

    `root` is the directory relative paths are taken from (%SRCROOT%); absolute paths under
    it are made relative. Columns count Unicode code points (`columnKind`).
    """
    if version is None:
        version = tool_version()
    if information_uri is None:
        information_uri = tool_homepage()
    descriptors = [_descriptor(rule) for rule in pack.rules]
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    sarif_results: list[dict] = []
    warnings: list[str] = []
    for path, _source, analysis in results:
        location = artifact_location(path, root)
        seen: Counter[str] = Counter()
        for warning in analysis.warnings:
            if warning not in warnings:
                warnings.append(warning)
        for f in at_or_above(analysis.findings, min_severity):
            if f.rule not in index:
                index[f.rule] = len(descriptors)
                descriptors.append(_engine_descriptor(f))
            base = fingerprint_base(f)
            seen[base] += 1
            message = f.message if not f.suggestion else f"{f.message} {f.suggestion}"
            result: dict = {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": SARIF_LEVELS[f.severity],
                "message": {"text": message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": dict(location),
                            "region": {
                                "startLine": f.line,
                                "startColumn": f.column,
                                "endLine": f.end_line,
                                "endColumn": f.end_column,
                                "snippet": {"text": f.text},
                            },
                        }
                    }
                ],
                "partialFingerprints": {"primaryLocationLineHash": f"{base}:{seen[base]}"},
                "properties": {"category": f.category},
            }
            if f.suppressed:
                suppression = {"kind": "inSource"}
                if f.justification:
                    suppression["justification"] = f.justification
                result["suppressions"] = [suppression]
            sarif_results.append(result)
    driver: dict = {"name": TOOL_NAME, "version": version}
    if information_uri:
        driver["informationUri"] = information_uri
    if re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?", version):
        driver["semanticVersion"] = version
    driver["rules"] = descriptors
    invocation: dict = {"executionSuccessful": True}
    if warnings:
        invocation["toolExecutionNotifications"] = [
            {"level": "warning", "message": {"text": w}} for w in warnings
        ]
    run: dict = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "results": sarif_results,
        "properties": {
            "pack": _first(results, "pack_version") or f"{pack.name}@{pack.version}",
            "model": _first(results, "model"),
            "minSeverity": min_severity,
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def tool_version() -> str:
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def tool_homepage() -> str:
    """The distribution's Homepage project URL, or "" when the metadata names none."""
    from importlib import metadata

    try:
        urls = metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return ""
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().casefold() in ("homepage", "home", "source", "repository"):
            return url.strip()
    return ""
