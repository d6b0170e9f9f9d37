"""The records every part of the analysis exchanges: blocks of text, findings, action items.

Offsets are into the original source (markdown, Jira markup or ADF JSON) so a finding can
always be shown where the author wrote it. Lines and columns are 1-based; `end_column` is
exclusive (the column just after the last character), as SARIF's `endColumn` is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# Re-exported: the findings' severities are the rules' (rules/ is the lower layer).
from rules.severity import SEVERITIES, severity_rank  # noqa: F401


@dataclass(frozen=True)
class Block:
    """One unit of analysable text cut from the source, with a map back to it.

    `starts[i]` / `ends[i]` are the source offsets where text character i begins and just
    after it ends; a placeholder (inline code, a URL) maps all its characters onto the whole
    source construct it stands for.
    """

    kind: str  # heading | paragraph | list_item | table_cell
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    section: str = ""  # text of the nearest heading above this block
    heading_level: int = 0
    quoted: bool = False  # inside a blockquote / {quote} / ADF blockquote
    list_depth: int = 0
    checked: bool | None = None  # checklist state of a list item, None when not a checkbox
    table: int = -1  # index of the table in the document, for table cells
    row: int = -1  # row index within the table (0 = header row when there is one)
    column: int = -1
    header: str = ""  # the column's header text, for table cells

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Source offsets [a, b) covering text[start:end]."""
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class Directive:
    """An inline suppression comment: pmguard-disable / -enable / -disable-next-line."""

    kind: str  # disable | enable | disable-next-line
    rules: frozenset[str]  # empty means every rule
    line: int  # 1-based source line of the comment
    applies_to_line: int = 0  # for disable-next-line: the line it covers
    reason: str = ""


@dataclass(frozen=True)
class Finding:
    rule: str
    category: str
    severity: str
    message: str
    suggestion: str
    start: int  # source offsets [start, end)
    end: int
    line: int
    column: int
    end_line: int
    end_column: int
    text: str  # exactly source[start:end]
    sentence: str = ""
    suppressed: bool = False
    justification: str = ""

    @property
    def fingerprint(self) -> str:
        """Hash of the rule id and the sentence (whitespace and case folded): stable across
        edits that only move the sentence, so a reviewer's decision survives a re-check."""
        sentence = " ".join((self.sentence or self.text).split()).casefold()
        return hashlib.sha256(f"{self.rule}\n{sentence}".encode()).hexdigest()[:32]

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "category": self.category,
            "severity": self.severity,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "text": self.text,
            "message": self.message,
            "suggestion": self.suggestion,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class ActionItem:
    text: str
    line: int
    column: int
    owner: str | None = None
    tracking: tuple[str, ...] = ()
    due: str | None = None  # ISO date when one could be read
    done: bool | None = None
    lesson_home: str | None = None  # link to a runbook / checklist / decision log
    # The item asks a person to change ("retrain the engineer", "be more careful"): a rule
    # of the pack flagged it, so the lint output, the dashboard and the comment can say so.
    asks_people: bool = False

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "line": self.line,
            "column": self.column,
            "owner": self.owner,
            "tracking": list(self.tracking),
            "due": self.due,
            "done": self.done,
            "lesson_home": self.lesson_home,
            "asks_people": self.asks_people,
        }


@dataclass
class Analysis:
    findings: list[Finding] = field(default_factory=list)
    action_items: list[ActionItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pack_version: str = ""
    model: str = ""
