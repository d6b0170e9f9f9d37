"""Postmortem source -> blocks of plain text that know exactly where each character came from.

Every finding is shown to a human at the place they wrote it, so markup is never removed by
rewriting the whole text: each reader walks its format's structure and emits text one character
at a time together with the source range that character stands for. Markup (emphasis markers,
list bullets, table pipes, JSON quoting) simply never gets emitted, so nothing downstream can
drift out of step with the source.

Three readers share that contract: markdown (through markdown-it-py's token stream), Jira wiki
markup (hand-written, line based, because no maintained Python parser exists) and Atlassian
Document Format JSON (with a small JSON scanner, because the standard library's decoder forgets
where strings were). A fourth, "text", treats the source as plain paragraphs.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import Any

from nlp.model import Block, Directive, Finding

__all__ = ["FORMATS", "Document", "TextFormatError", "detect_format", "parse"]

FORMATS = ("markdown", "jira", "adf", "text")

# Placeholders stand in for constructs whose content is not prose, so sentence splitting and
# the rules still see a word there (no two words glued together, no URL tokenised as prose).
CODE_PLACEHOLDER = "code"
LINK_PLACEHOLDER = "link"

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


class TextFormatError(ValueError):
    """The source cannot be read in the format asked for (e.g. broken ADF JSON)."""


# --------------------------------------------------------------------------------------------
# Document


@dataclass(frozen=True)
class Document:
    """A parsed postmortem: analysable blocks plus the inline suppression directives."""

    source: str
    format: str
    blocks: tuple[Block, ...]
    directives: tuple[Directive, ...] = ()
    warnings: tuple[str, ...] = ()

    @cached_property
    def _line_starts(self) -> list[int]:
        # \r\n, \r and \n all end a line, as they do for markdown-it's line map and editors.
        return [0] + [m.end() for m in _LINE_BREAK_RE.finditer(self.source)]

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a source offset; columns count characters.

        `offset == len(source)` is allowed because finding ends are exclusive.
        """
        if not 0 <= offset <= len(self.source):
            raise ValueError(f"offset {offset} outside source of length {len(self.source)}")
        starts = self._line_starts
        index = bisect.bisect_right(starts, offset) - 1
        return index + 1, offset - starts[index] + 1

    def finding(
        self,
        *,
        rule: str,
        category: str,
        severity: str,
        message: str,
        suggestion: str,
        start: int,
        end: int,
        sentence: str = "",
    ) -> Finding:
        """A finding over source[start:end], placed by line and column and marked suppressed
        when a directive covers its first line."""
        line, column = self.line_col(start)
        end_line, end_column = self.line_col(end)
        directive = self.suppression_for(rule, line)
        return Finding(
            rule=rule,
            category=category,
            severity=severity,
            message=message,
            suggestion=suggestion,
            start=start,
            end=end,
            line=line,
            column=column,
            end_line=end_line,
            end_column=end_column,
            text=self.source[start:end],
            sentence=sentence,
            suppressed=directive is not None,
            justification=directive.reason if directive is not None else "",
        )

    def suppression_for(self, rule_id: str, line: int) -> Directive | None:
        """The directive that silences `rule_id` on source `line`, or None.

        A disable-next-line aimed at the line wins over a range so its reason is the one shown.
        Ranges are replayed in document order up to the line, so an enable on the line itself
        already counts.
        """
        for directive in self.directives:
            if (
                directive.kind == "disable-next-line"
                and directive.applies_to_line == line
                and (not directive.rules or rule_id in directive.rules)
            ):
                return directive
        everything: Directive | None = None
        reenabled: set[str] = set()
        by_rule: dict[str, Directive] = {}
        for directive in self.directives:
            if directive.line > line:
                break
            if directive.kind == "disable":
                if directive.rules:
                    for rule in directive.rules:
                        by_rule[rule] = directive
                        reenabled.discard(rule)
                else:
                    everything, reenabled, by_rule = directive, set(), {}
            elif directive.kind == "enable":
                if directive.rules:
                    for rule in directive.rules:
                        by_rule.pop(rule, None)
                        reenabled.add(rule)
                else:
                    everything, reenabled, by_rule = None, set(), {}
        if rule_id in by_rule:
            return by_rule[rule_id]
        if everything is not None and rule_id not in reenabled:
            return everything
        return None


def parse(source: str, fmt: str = "markdown", *, include_blockquotes: bool = True) -> Document:
    """Cut a postmortem into analysable blocks. `fmt="auto"` asks `detect_format`.

    Quoted material (customer words, chat logs) is kept by default because blame often hides
    there too; `include_blockquotes=False` is for teams that only want their own prose checked.
    """
    fmt = fmt.lower()
    if fmt == "auto":
        fmt = detect_format(source)
    if fmt == "markdown":
        blocks, directives, warnings = _MarkdownReader(source).read()
    elif fmt == "jira":
        blocks, directives, warnings = _JiraReader(source).read(), [], []
    elif fmt == "adf":
        blocks, directives, warnings = _AdfReader(source).read(), [], []
    elif fmt == "text":
        blocks, directives, warnings = _read_plain(source), [], []
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not include_blockquotes:
        blocks = [b for b in blocks if not b.quoted]
    return Document(
        source=source,
        format=fmt,
        blocks=tuple(blocks),
        directives=tuple(directives),
        warnings=tuple(warnings),
    )


_JIRA_LINE_HINTS = re.compile(
    r"^[ \t]*(?:h[1-6]\.[ \t]|\{code[:}]|\{noformat|\|\||bq\.[ \t]|\{quote\}|\{panel)",
    re.MULTILINE,
)
_MARKDOWN_LINE_HINTS = re.compile(
    r"^[ \t]{0,3}(?:#{1,6}[ \t]|```|~~~|>[ \t]|\|?[ \t]*:?-{3,}:?[ \t]*\|)|\]\([^)\s]+\)",
    re.MULTILINE,
)


def detect_format(source: str, path: str | None = None) -> str:
    """Best guess of a source's format, so callers with an unlabelled text need not ask users.

    The file extension wins when it is telling; otherwise ADF is recognised by parsing it, and
    Jira markup by its line-start signatures outnumbering markdown's.
    """
    if path:
        suffix = PurePath(path).suffix.lower()
        if suffix in (".md", ".markdown", ".mdown", ".mkd"):
            return "markdown"
        if suffix == ".json":
            return "adf"
        if suffix in (".jira", ".wiki"):
            return "jira"
    stripped = source.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict) and value.get("type") == "doc":
            return "adf"
    jira = len(_JIRA_LINE_HINTS.findall(source))
    markdown = len(_MARKDOWN_LINE_HINTS.findall(source))
    return "jira" if jira > markdown else "markdown"


# --------------------------------------------------------------------------------------------
# Shared pieces


class _Builder:
    """Accumulates text with a source range per character."""

    __slots__ = ("chars", "ends", "starts")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        return len(self.chars)

    def add(self, text: str, start: int, end: int) -> None:
        """Every character of `text` stands for the whole source range [start, end)."""
        for ch in text:
            self.chars.append(ch)
            self.starts.append(start)
            self.ends.append(end)

    def extend(self, other: _Builder) -> None:
        self.chars.extend(other.chars)
        self.starts.extend(other.starts)
        self.ends.extend(other.ends)

    def text(self) -> str:
        return "".join(self.chars)

    def block(self, kind: str, **attrs: Any) -> Block | None:
        """A Block with surrounding whitespace trimmed, or None when nothing is left."""
        lo, hi = 0, len(self.chars)
        while lo < hi and self.chars[lo].isspace():
            lo += 1
        while hi > lo and self.chars[hi - 1].isspace():
            hi -= 1
        if lo == hi:
            return None
        return Block(
            kind=kind,
            text="".join(self.chars[lo:hi]),
            starts=tuple(self.starts[lo:hi]),
            ends=tuple(self.ends[lo:hi]),
            **attrs,
        )


@dataclass
class _Lines:
    """Line table of a source: start, end (before the terminator) and next line's start."""

    starts: list[int]
    ends: list[int]
    nexts: list[int]

    @classmethod
    def of(cls, source: str) -> _Lines:
        starts, ends, nexts = [0], [], []
        for m in _LINE_BREAK_RE.finditer(source):
            ends.append(m.start())
            nexts.append(m.end())
            starts.append(m.end())
        ends.append(len(source))
        nexts.append(len(source))
        return cls(starts, ends, nexts)

    def __len__(self) -> int:
        return len(self.starts)

    def index_of(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self.starts, offset) - 1)


_URL_RE = re.compile(r"(?:(?:https?|ftp)://|www\.|mailto:)[^\s<>\[\]{}|\"'`]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\")*_"


def _url_end(text: str, start: int, end: int) -> int:
    """Drop sentence punctuation that a URL regex swallowed (and an unbalanced ')')."""
    while end > start and text[end - 1] in _URL_TRAILING:
        if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
            break
        end -= 1
    return end


def _looks_like_url(text: str) -> bool:
    m = _URL_RE.fullmatch(text.strip())
    return m is not None


def _emit_with_urls(out: _Builder, text: str, span: Callable[[int], tuple[int, int]]) -> None:
    """Emit `text` char by char, but bare URLs in it as the `link` placeholder."""
    pos = 0
    for m in _URL_RE.finditer(text):
        start = m.start()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "@/"):
            continue
        end = _url_end(text, start, m.end())
        if end - start < 5:
            continue
        for i in range(pos, start):
            out.add(text[i], *span(i))
        out.add(LINK_PLACEHOLDER, span(start)[0], span(end - 1)[1])
        pos = end
    for i in range(pos, len(text)):
        out.add(text[i], *span(i))


# --------------------------------------------------------------------------------------------
# Markdown


_local = threading.local()


def _markdown_parser() -> Any:
    """A configured markdown-it instance per thread.

    Building one compiles many regexes, so it is cached; per thread because linkify-it keeps
    the state of its last match on the instance.
    """
    md = getattr(_local, "markdown", None)
    if md is None:
        md = _local.markdown = _build_markdown_parser()
    return md


def _build_markdown_parser() -> Any:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark", {"linkify": True})
    md.enable(["table", "strikethrough", "linkify"])
    md.use(front_matter_plugin)
    # text_join would merge escapes and entities back into plain text; kept apart they carry
    # their source spelling in `markup`, which is what lets offsets stay exact.
    md.disable("text_join", ignoreInvalid=True)
    return md


_TOML_FRONT_MATTER = re.compile(r"\A\+\+\+[ \t]*\r?\n.*?^\+\+\+[ \t]*$", re.DOTALL | re.MULTILINE)


def _blank_toml_front_matter(source: str) -> str:
    """Hugo/Zola `+++` front matter becomes spaces of the same length, so no offset moves."""
    m = _TOML_FRONT_MATTER.match(source)
    if not m:
        return source
    blanked = re.sub(r"[^\r\n]", " ", m.group(0))
    return blanked + source[m.end() :]


_CHECKBOX_RE = re.compile(r"\[([ xX])\](?:[ \t]|$)")
_COMMENT_RE = re.compile(r"<!--(.*?)-->", re.DOTALL)
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_RULE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_DIRECTIVE_RE = re.compile(r"pmguard-(disable-next-line|disable|enable)(?=\s|\Z)(.*)\Z", re.DOTALL)
_REASON_SPLIT_RE = re.compile(r"(?:^|\s)--(?:\s|\Z)")
_COMMENT_ONLY_LINE_RE = re.compile(r"[ \t>]*<!--.*?-->[ \t]*\Z")


def _html_comments(source: str, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """(body, start, end) of each `<!-- … -->` in source[start:end], in one pass.

    A regex with a lazy body retries from every unclosed `<!--`, which is quadratic in a run
    of them (200 KB took a minute); once no `-->` follows, no later comment can close.
    """
    at = start
    while (open_at := source.find("<!--", at, end)) >= 0:
        close = source.find("-->", open_at + 4, end)
        if close < 0:
            return
        yield source[open_at + 4 : close], open_at, close + 3
        at = close + 3


class _Finder:
    """`str.find` of one needle in source[:end] for positions that only grow: remembers the
    last answer, so scanning a run of openers with no closer is linear, not quadratic."""

    def __init__(self, source: str, needle: str, end: int) -> None:
        self.source, self.needle, self.end = source, needle, end
        self.found = -2  # not asked yet
        self.since = 0  # the last answer holds for every position from here

    def find(self, at: int) -> int:
        if self.found == -2 or at < self.since or (self.found >= 0 and self.found < at):
            self.found = self.source.find(self.needle, at, self.end)
            self.since = at
        return self.found


def _align_line(content_line: str, src_line: str, base: int, lo: int) -> list[tuple[int, int]]:
    """Source ranges of each character of one line of an inline token's content.

    markdown-it hands inline content with block prefixes (`>`, list indentation, heading `#`s,
    table pipes) removed, so a content line is nearly always a suffix of its source line (or,
    for headings and cells, a substring after `lo`). Anything else (escaped pipes in cells,
    NUL replacement) falls back to a greedy character alignment.
    """
    n = len(src_line)
    lead = len(content_line) - len(content_line.lstrip(" \t"))
    core = content_line[lead:]
    core_r = core.rstrip(" \t")
    src_r = src_line.rstrip(" \t")
    start = -1
    if core_r and src_r.endswith(core_r) and len(src_r) - len(core_r) >= lo:
        start = len(src_r) - len(core_r)
    elif core_r:
        start = src_line.find(core_r, lo)
    spans: list[tuple[int, int]] = []
    if start >= 0 or not core:
        if start < 0:
            start = min(max(lo, lead), n)
        for j in range(lead):
            p = max(0, start - lead + j)
            spans.append((base + p, base + p + 1))
        for j in range(len(core)):
            p = min(start + j, max(n - 1, 0))
            spans.append((base + p, base + p + 1))
        return spans
    # Greedy: each content character matches the next equal source character.
    p = lo
    for ch in content_line:
        q = p
        while q < n and not (
            src_line[q] == ch
            or (ch == " " and src_line[q] == "\t")
            or (ch == "\ufffd" and src_line[q] == "\0")
        ):
            q += 1
        if q < n:
            spans.append((base + q, base + q + 1))
            p = q + 1
        else:
            last = min(p, n - 1) if n else 0
            spans.append((base + last, base + last + 1))
    return spans


def _skip_link_tail(content: str, pos: int) -> int:
    """Position after a link's `(destination "title")` or `[label]` part."""
    from markdown_it.helpers import parseLinkDestination, parseLinkTitle

    n = len(content)
    if pos < n and content[pos] == "(":
        p = pos + 1
        while p < n and content[p] in " \t\n":
            p += 1
        if p < n and content[p] != ")":
            dest = parseLinkDestination(content, p, n)
            if dest.ok:
                p = dest.pos
            while p < n and content[p] in " \t\n":
                p += 1
            title = parseLinkTitle(content, p, n)
            if title.ok:
                p = title.pos
            while p < n and content[p] in " \t\n":
                p += 1
        if p < n and content[p] == ")":
            return p + 1
        return pos
    if pos < n and content[pos] == "[":
        p = pos + 1
        while p < n and content[p] != "]":
            p += 2 if content[p] == "\\" else 1
        if p < n:
            return p + 1
    return pos


@dataclass
class _ItemFrame:
    depth: int
    quoted: bool
    builder: _Builder | None = None
    first: bool = True
    checked: bool | None = None
    last_line: int = -1


class _MarkdownReader:
    """Walks markdown-it's token stream; see the module docstring for the contract."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = _Lines.of(source)
        self.blocks: list[Block] = []
        self.comments: list[tuple[str, int, int]] = []  # body, source start, source end
        self.section = ""

    # ---- block level -------------------------------------------------------------------

    def read(self) -> tuple[list[Block], list[Directive], list[str]]:
        tokens = _markdown_parser().parse(_blank_toml_front_matter(self.source))
        containers: list[str] = []  # "item" / "quote"
        items: list[_ItemFrame] = []
        list_depth = 0
        heading_level = 0
        table = -1
        row = -1
        column = -1
        headers: list[str] = []
        row_cursor = 0

        def quoted() -> bool:
            return "quote" in containers

        def flush_item() -> None:
            frame = items[-1] if items else None
            if frame is not None and frame.builder is not None:
                self._add(
                    frame.builder.block(
                        "list_item",
                        section=self.section,
                        quoted=frame.quoted,
                        list_depth=frame.depth,
                        checked=frame.checked,
                    )
                )
                frame.builder = None
                frame.checked = None
            if frame is not None:
                frame.first = False

        for index, tok in enumerate(tokens):
            kind = tok.type
            if kind == "blockquote_open":
                flush_item()
                containers.append("quote")
            elif kind == "blockquote_close":
                containers.pop()
            elif kind in ("bullet_list_open", "ordered_list_open"):
                flush_item()
                list_depth += 1
            elif kind in ("bullet_list_close", "ordered_list_close"):
                list_depth -= 1
            elif kind == "list_item_open":
                flush_item()
                containers.append("item")
                items.append(_ItemFrame(depth=list_depth, quoted=quoted()))
            elif kind == "list_item_close":
                flush_item()
                containers.pop()
                items.pop()
            elif kind == "heading_open":
                flush_item()
                heading_level = int(tok.tag[1:])
            elif kind == "hr":
                flush_item()
            elif kind == "table_open":
                flush_item()
                table += 1
                row = -1
                headers = []
            elif kind == "tr_open":
                row += 1
                column = -1
                row_cursor = 0
                if tok.map:
                    line = self.source[self.lines.starts[tok.map[0]] : self.lines.ends[tok.map[0]]]
                    row_cursor = len(line) - len(line.lstrip(" \t>"))
            elif kind in ("th_open", "td_open"):
                column += 1
            elif kind == "html_block":
                if tok.map:
                    start = self.lines.starts[tok.map[0]]
                    end = self.lines.ends[max(tok.map[1] - 1, tok.map[0])]
                    self.comments.extend(_html_comments(self.source, start, end))
            elif kind == "inline":
                parent = tokens[index - 1].type if index else ""
                if not tok.map:
                    continue
                if parent == "heading_open":
                    out = self._inline(tok, heading=True)
                    self._add(
                        out.block(
                            "heading",
                            section=self.section,
                            heading_level=heading_level,
                            quoted=quoted(),
                        )
                    )
                    self.section = out.text().strip()
                elif parent in ("th_open", "td_open"):
                    out, row_cursor = self._cell(tok, row_cursor)
                    text = out.text().strip()
                    if row == 0:
                        headers.append(text)
                    header = headers[column] if column < len(headers) else ""
                    self._add(
                        out.block(
                            "table_cell",
                            section=self.section,
                            quoted=quoted(),
                            table=table,
                            row=row,
                            column=column,
                            header=header,
                        )
                    )
                elif containers and containers[-1] == "item":
                    self._item_paragraph(items[-1], tok)
                else:
                    out = self._inline(tok)
                    self._add(out.block("paragraph", section=self.section, quoted=quoted()))
        return self.blocks, *self._directives()

    def _add(self, block: Block | None) -> None:
        if block is not None:
            self.blocks.append(block)

    def _item_paragraph(self, frame: _ItemFrame, tok: Any) -> None:
        out = self._inline(tok)
        if frame.builder is None:
            frame.builder = _Builder()
            if frame.first:
                text = out.text()
                m = _CHECKBOX_RE.match(text)
                if m:
                    frame.checked = m.group(1) != " "
                    rest = _Builder()
                    rest.chars = out.chars[m.end() :]
                    rest.starts = out.starts[m.end() :]
                    rest.ends = out.ends[m.end() :]
                    out = rest
        elif frame.last_line >= 0:
            # Paragraphs of one item join with a line break mapped to the newline between them.
            line = frame.last_line
            end, nxt = self.lines.ends[line], self.lines.nexts[line]
            if nxt > end:
                frame.builder.add("\n", end, nxt)
            else:
                frame.builder.add("\n", max(end - 1, 0), max(end, 1))
        frame.first = False
        frame.builder.extend(out)
        frame.last_line = tok.map[1] - 1

    # ---- inline level ------------------------------------------------------------------

    def _content_spans(self, content: str, first_line: int, lo: int = 0) -> list[tuple[int, int]]:
        """Source range of every character of an inline token's content."""
        spans: list[tuple[int, int]] = []
        parts = content.split("\n")
        last = len(self.lines) - 1
        for k, part in enumerate(parts):
            line = min(first_line + k, last)
            base, end = self.lines.starts[line], self.lines.ends[line]
            spans.extend(_align_line(part, self.source[base:end], base, lo if k == 0 else 0))
            if k < len(parts) - 1:
                nxt = self.lines.nexts[line]
                spans.append((end, nxt) if nxt > end else (max(end - 1, 0), max(end, 1)))
        return spans

    def _inline(self, tok: Any, *, heading: bool = False) -> _Builder:
        lo = 0
        if heading:
            line = self.source[self.lines.starts[tok.map[0]] : self.lines.ends[tok.map[0]]]
            m = re.match(r"[ \t>]*#{1,6}(?=[ \t]|$)", line)
            if m:
                lo = m.end()
        spans = self._content_spans(tok.content, tok.map[0], lo)
        out = _Builder()
        self._walk(tok.children or [], tok.content, spans, 0, out)
        return out

    def _cell(self, tok: Any, cursor: int) -> tuple[_Builder, int]:
        spans = self._content_spans(tok.content, tok.map[0], cursor)
        out = _Builder()
        self._walk(tok.children or [], tok.content, spans, 0, out)
        if spans:
            cursor = spans[-1][1] - self.lines.starts[tok.map[0]]
        return out, cursor

    def _walk(
        self,
        tokens: Sequence[Any],
        content: str,
        spans: list[tuple[int, int]],
        pos: int,
        out: _Builder | None,
    ) -> int:
        """Advance through `content` token by token, emitting prose into `out` (None: skip)."""
        n = len(content)

        def span(a: int, b: int) -> tuple[int, int]:
            a = min(a, n - 1)
            b = max(min(b, n), a + 1)
            return spans[a][0], spans[b - 1][1]

        def locate(text: str, at: int) -> int:
            if content.startswith(text, at):
                return at
            found = content.find(text, at)
            return found if found >= 0 else at

        i = 0
        while i < len(tokens):
            tok = tokens[i]
            kind = tok.type
            i += 1
            if kind == "text":
                text = tok.content
                at = locate(text, pos)
                if out is not None:
                    for j, ch in enumerate(text):
                        if at + j < n:
                            out.add(ch, *spans[at + j])
                pos = min(at + len(text), n)
            elif kind == "text_special":
                at = locate(tok.markup, pos)
                end = min(at + max(len(tok.markup), 1), n)
                if out is not None and at < n:
                    out.add(tok.content, *span(at, end))
                pos = end
            elif kind in ("softbreak", "hardbreak"):
                while pos < n and content[pos] in " \t":
                    pos += 1
                if kind == "hardbreak" and pos < n and content[pos] == "\\":
                    pos += 1
                if pos < n and content[pos] == "\n":
                    if out is not None:
                        out.add(" ", *spans[pos])
                    pos += 1
                while pos < n and content[pos] in " \t":
                    pos += 1
            elif kind.endswith(("_open", "_close")) and kind.split("_")[0] in ("em", "strong", "s"):
                pos = min(locate(tok.markup, pos) + len(tok.markup), n)
            elif kind == "code_inline":
                at = locate(tok.markup, pos)
                ticks = len(tok.markup)
                closing = re.compile(rf"(?<!`)`{{{ticks}}}(?!`)").search(content, at + ticks)
                end = closing.end() if closing else min(at + ticks + len(tok.content), n)
                if out is not None and at < n:
                    out.add(CODE_PLACEHOLDER, *span(at, end))
                pos = end
            elif kind == "link_open":
                depth, j = 1, i
                while j < len(tokens) and depth:
                    if tokens[j].type == "link_open":
                        depth += 1
                    elif tokens[j].type == "link_close":
                        depth -= 1
                    j += 1
                inner = tokens[i : j - 1]
                i = j
                pos = self._link(tok, inner, content, spans, pos, out, span)
            elif kind == "image":
                at = pos
                if content.startswith("![", at):
                    at = self._walk(tok.children or [], content, spans, at + 2, None)
                    if at < n and content[at] == "]":
                        at = _skip_link_tail(content, at + 1)
                pos = max(at, pos)
            elif kind == "html_inline":
                at = locate(tok.content, pos)
                end = min(at + len(tok.content), n)
                if at < n:
                    a, b = span(at, end)
                    if tok.content.startswith("<!--"):
                        m = _COMMENT_RE.match(tok.content)
                        if m:
                            self.comments.append((m.group(1), a, b))
                    elif out is not None and _BR_RE.fullmatch(tok.content):
                        out.add(" ", a, b)
                pos = end
        return pos

    def _link(
        self,
        tok: Any,
        inner: Sequence[Any],
        content: str,
        spans: list[tuple[int, int]],
        pos: int,
        out: _Builder | None,
        span: Callable[[int, int], tuple[int, int]],
    ) -> int:
        n = len(content)
        if tok.markup == "autolink":
            end = content.find(">", pos)
            end = end + 1 if end >= 0 else n
            if out is not None and pos < n:
                out.add(LINK_PLACEHOLDER, *span(pos, end))
            return end
        if tok.markup == "linkify":
            shown = "".join(t.content for t in inner if t.type == "text")
            if content.startswith(shown, pos):
                end = pos + len(shown)
            else:
                matches = _markdown_parser().linkify.match(content[pos:]) or []
                first = next((m for m in matches if m.index == 0), None)
                end = pos + first.last_index if first else pos + len(shown)
            end = min(max(end, pos + 1), n)
            if out is not None and pos < n:
                out.add(LINK_PLACEHOLDER, *span(pos, end))
            return end
        start = pos
        text = _Builder()
        if pos < n and content[pos] == "[":
            pos += 1
        pos = self._walk(inner, content, spans, pos, text)
        if pos < n and content[pos] == "]":
            pos = _skip_link_tail(content, pos + 1)
        if out is not None:
            if _looks_like_url(text.text()) and start < n:
                out.add(LINK_PLACEHOLDER, *span(start, pos))
            else:
                out.extend(text)
        return pos

    # ---- directives --------------------------------------------------------------------

    def _directives(self) -> tuple[list[Directive], list[str]]:
        directives: list[Directive] = []
        warnings: list[str] = []
        for body, start, end in sorted(self.comments, key=lambda c: c[1]):
            text = body.strip()
            if not text.lower().startswith("pmguard"):
                continue
            line = self.lines.index_of(start) + 1
            m = _DIRECTIVE_RE.match(text)
            if not m:
                word = text.split()[0] if text.split() else text
                warnings.append(
                    f"line {line}: ignored unrecognised pmguard comment {word!r}; expected "
                    "pmguard-disable, pmguard-enable or pmguard-disable-next-line"
                )
                continue
            kind, rest = m.group(1), m.group(2)
            parts = _REASON_SPLIT_RE.split(rest, maxsplit=1)
            ids_text = parts[0]
            reason = " ".join(parts[1].split()) if len(parts) > 1 else ""
            ids = [i for i in re.split(r"[\s,]+", ids_text) if i]
            bad = [i for i in ids if not _RULE_ID_RE.match(i)]
            if bad:
                warnings.append(
                    f"line {line}: ignored pmguard-{kind} with malformed rule id "
                    f"{bad[0]!r}; rule ids use letters, digits, '.', '-' and '_' "
                    "(put a reason after ' -- ')"
                )
                continue
            applies = 0
            if kind == "disable-next-line":
                applies = self._next_content_line(self.lines.index_of(max(end - 1, start)))
                if not applies:
                    warnings.append(f"line {line}: pmguard-disable-next-line has no line to cover")
            directives.append(
                Directive(
                    kind=kind,
                    rules=frozenset(ids),
                    line=line,
                    applies_to_line=applies,
                    reason=reason,
                )
            )
        return directives, warnings

    def _next_content_line(self, after: int) -> int:
        """1-based number of the first line after `after` with prose (0 when none).

        Lines holding only a comment are passed over so stacked directives all reach the text.
        """
        for line in range(after + 1, len(self.lines)):
            text = self.source[self.lines.starts[line] : self.lines.ends[line]]
            if text.strip() and not _COMMENT_ONLY_LINE_RE.match(text):
                return line + 1
        return 0


# --------------------------------------------------------------------------------------------
# Jira wiki markup

_JIRA_BLOCK_TAG_RE = re.compile(
    r"(?<!\{)\{(code|noformat|quote|panel|info|note|tip|warning|expand|section|column)"
    r"(?::[^{}\n]*)?\}(?!\})"
)
_JIRA_INLINE_MACRO_RE = re.compile(r"\{(?:color|anchor)(?::[^{}\n]*)?\}")
_JIRA_HEADING_RE = re.compile(r"[ \t]*h([1-6])\.(?:[ \t]+|$)")
_JIRA_BQ_RE = re.compile(r"[ \t]*bq\.(?:[ \t]+|$)")
_JIRA_LIST_RE = re.compile(r"[ \t]*([*#-]+)[ \t]+(?=\S)")
_JIRA_HR_RE = re.compile(r"[ \t]*-{4,}[ \t]*$")
_JIRA_TABLE_RE = re.compile(r"[ \t]*\|")
_JIRA_IMAGE_RE = re.compile(
    r"!(?:[^\s!|][^!|\n]*?\.[A-Za-z0-9]{2,5}|https?://[^\s!|]+)(?:\|[^!\n]*)?!"
)
_JIRA_ESCAPABLE = set("*_-+^~?{}[]|!#\\")
_JIRA_MARKERS = ("*", "_", "-", "+", "^", "~", "??")


@dataclass
class _Paragraph:
    builder: _Builder
    quoted: bool
    last_line: int


class _JiraReader:
    """Jira wiki markup: lines classified by their start, inline markup stripped per line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = _Lines.of(source)
        self.blocks: list[Block] = []
        self.section = ""
        self.quoted = False
        self.paragraph: _Paragraph | None = None
        self.table = -1
        self.in_table = False
        self.row = -1
        self.headers: list[str] = []

    def read(self) -> list[Block]:
        src = self.source
        line, pos = 0, 0
        while line < len(self.lines):
            start, end, nxt = self.lines.starts[line], self.lines.ends[line], self.lines.nexts[line]
            pos = max(pos, start)
            at_line_start = pos == start
            tag = _JIRA_BLOCK_TAG_RE.search(src, pos, end) if pos < end else None
            piece_end = tag.start() if tag else end
            if src[pos:piece_end].strip():
                self._piece(pos, piece_end, line)
            elif at_line_start and not tag:
                # A blank line ends paragraphs and tables.
                self._flush()
                self.in_table = False
            if not tag:
                line, pos = line + 1, nxt
                continue
            self._flush()
            self.in_table = False
            name = tag.group(1)
            if name in ("code", "noformat"):
                closing = src.find("{" + name + "}", tag.end())
                if closing < 0:
                    break  # Jira renders an unclosed code block to the end of the text.
                pos = closing + len(name) + 2
                line = self.lines.index_of(pos)
            else:
                if name == "quote":
                    self.quoted = not self.quoted
                pos = tag.end()
        self._flush()
        return self.blocks

    def _add(self, block: Block | None) -> None:
        if block is not None:
            self.blocks.append(block)

    def _flush(self) -> None:
        if self.paragraph is not None:
            p = self.paragraph
            self._add(p.builder.block("paragraph", section=self.section, quoted=p.quoted))
            self.paragraph = None

    def _piece(self, a: int, b: int, line: int) -> None:
        """One line's worth of text (or the part of it outside block macros)."""
        src = self.source
        text = src[a:b]
        m = _JIRA_HEADING_RE.match(text)
        if m:
            self._flush()
            self.in_table = False
            out = self._inline(a + m.end(), b)
            self._add(
                out.block(
                    "heading",
                    section=self.section,
                    heading_level=int(m.group(1)),
                    quoted=self.quoted,
                )
            )
            self.section = out.text().strip()
            return
        m = _JIRA_BQ_RE.match(text)
        if m:
            self._flush()
            self.in_table = False
            out = self._inline(a + m.end(), b)
            self._add(out.block("paragraph", section=self.section, quoted=True))
            return
        if _JIRA_TABLE_RE.match(text):
            self._flush()
            self._table_row(a, b)
            return
        self.in_table = False
        if _JIRA_HR_RE.match(text):
            self._flush()
            return
        m = _JIRA_LIST_RE.match(text)
        if m:
            self._flush()
            out = self._inline(a + m.end(), b)
            self._add(
                out.block(
                    "list_item",
                    section=self.section,
                    quoted=self.quoted,
                    list_depth=len(m.group(1)),
                )
            )
            return
        out = self._inline(a, b)
        p = self.paragraph
        if p is not None and p.quoted == self.quoted and p.last_line < line:
            # Lines of one paragraph join with a space that stands for the line break.
            end, nxt = self.lines.ends[p.last_line], self.lines.nexts[p.last_line]
            p.builder.add(" ", end, nxt)
            p.builder.extend(out)
            p.last_line = line
        else:
            self._flush()
            self.paragraph = _Paragraph(out, self.quoted, line)

    def _table_row(self, a: int, b: int) -> None:
        src = self.source
        if not self.in_table:
            self.in_table = True
            self.table += 1
            self.row = -1
            self.headers = []
        self.row += 1
        i = a
        while i < b and src[i] in " \t":
            i += 1
        cells: list[tuple[int, int, bool]] = []
        brackets, monos = _Finder(src, "]", b), _Finder(src, "}}", b)
        while i < b:
            header = src.startswith("||", i)
            i += 2 if header else 1
            j = i
            while j < b and src[j] != "|":
                if src[j] == "\\" and j + 1 < b:
                    j += 2
                elif src[j] == "[":
                    close = brackets.find(j + 1)
                    j = close + 1 if close > 0 else j + 1
                elif src.startswith("{{", j):
                    close = monos.find(j + 2)
                    j = close + 2 if close > 0 else j + 2
                else:
                    j += 1
            if j >= b and not src[i:b].strip():
                break
            cells.append((i, j, header))
            i = j
        for column, (cs, ce, is_header) in enumerate(cells):
            out = self._inline(cs, ce)
            text = out.text().strip()
            if self.row == 0 and is_header:
                self.headers.append(text)
            header_text = self.headers[column] if column < len(self.headers) else ""
            self._add(
                out.block(
                    "table_cell",
                    section=self.section,
                    quoted=self.quoted,
                    table=self.table,
                    row=self.row,
                    column=column,
                    header=header_text,
                )
            )

    def _inline(self, a: int, b: int) -> _Builder:
        """Prose of source[a:b]: links keep their text, code and URLs become placeholders."""
        src = self.source
        # (char, start, end, literal): literal chars are candidates for emphasis markers.
        pieces: list[tuple[str, int, int, bool]] = []

        def atom(text: str, start: int, end: int) -> None:
            for ch in text:
                pieces.append((ch, start, end, False))

        brackets, monos = _Finder(src, "]", b), _Finder(src, "}}", b)
        i = a
        while i < b:
            ch = src[i]
            if src.startswith("\\\\", i) and i + 1 < b:
                atom(" ", i, i + 2)
                i += 2
            elif ch == "\\" and i + 1 < b and src[i + 1] in _JIRA_ESCAPABLE:
                atom(src[i + 1], i, i + 2)
                i += 2
            elif src.startswith("{{", i) and (close := monos.find(i + 2)) > i + 2:
                atom(CODE_PLACEHOLDER, i, close + 2)
                i = close + 2
            elif ch == "{" and (m := _JIRA_INLINE_MACRO_RE.match(src, i, b)):
                i = m.end()
            elif ch == "[" and (close := brackets.find(i + 1)) > i:
                inner = src[i + 1 : close]
                if inner.startswith("~"):
                    name = inner[1:]
                    if name.lower().startswith("accountid:"):
                        name = name[len("accountid:") :]
                    atom("@" + name, i, close + 1)
                elif "|" in inner:
                    bar = i + 1 + inner.index("|")
                    label = self._inline(i + 1, bar)
                    if _looks_like_url(label.text()) or not label.text().strip():
                        atom(LINK_PLACEHOLDER, i, close + 1)
                    else:
                        for k in range(len(label)):
                            pieces.append((label.chars[k], label.starts[k], label.ends[k], False))
                elif (
                    _URL_RE.match(inner.strip()) or inner.startswith(("^", "#", "/", "mailto:"))
                ) and inner.strip():
                    atom(LINK_PLACEHOLDER, i, close + 1)
                else:
                    pieces.append((ch, i, i + 1, True))
                    i += 1
                    continue
                i = close + 1
            elif ch == "!" and (m := _JIRA_IMAGE_RE.match(src, i, b)):
                i = m.end()
            elif (
                ch in "hHwWfFmM"
                and (i == a or not src[i - 1].isalnum())
                and (m := _URL_RE.match(src, i, b))
                and (end := _url_end(src, i, m.end())) - i >= 5
            ):
                atom(LINK_PLACEHOLDER, i, end)
                i = end
            else:
                pieces.append((ch, i, i + 1, True))
                i += 1
        drop = _emphasis_markers(pieces)
        out = _Builder()
        for k, (ch, start, end, _literal) in enumerate(pieces):
            if k not in drop:
                out.add(ch, start, end)
        return out


def _emphasis_markers(pieces: Sequence[tuple[str, int, int, bool]]) -> set[int]:
    """Indices of literal marker characters that pair up as Jira emphasis.

    A marker opens after a non-alphanumeric character and before a non-space, and closes after
    a non-space and before a non-alphanumeric character, so `on-call`, `snake_case` and `5*3`
    stay text. The earliest open marker pairs with the first closing one after it; one linear
    scan per marker keeps long lines cheap.
    """
    proxy = "".join(
        ch if literal else (" " if ch.isspace() else "a") for ch, _s, _e, literal in pieces
    )
    n = len(proxy)
    drop: set[int] = set()
    for marker in _JIRA_MARKERS:
        size, first = len(marker), marker[0]
        if first not in proxy:
            continue
        opened = -1
        k = proxy.find(marker)
        while k >= 0:
            after = k + size
            literal = all(pieces[j][3] for j in range(k, after))
            before_ch = proxy[k - 1] if k else ""
            after_ch = proxy[after] if after < n else ""
            can_close = (
                literal
                and opened >= 0
                and k > opened + size
                and not before_ch.isspace()
                and before_ch != first
                and not after_ch.isalnum()
            )
            if can_close:
                drop.update(range(opened, opened + size))
                drop.update(range(k, after))
                opened = -1
                k = proxy.find(marker, after)
                continue
            can_open = (
                literal
                and opened < 0
                and not before_ch.isalnum()
                and after_ch != ""
                and not after_ch.isspace()
                and after_ch != first
            )
            if can_open:
                opened = k
                k = proxy.find(marker, after)
            else:
                k = proxy.find(marker, k + 1)
    return drop


# --------------------------------------------------------------------------------------------
# ADF (Atlassian Document Format)


class _JStr(str):
    """A JSON string value that remembers where each of its characters sits in the source."""

    pos: int  # offset of the first character after the opening quote
    spans: list[tuple[int, int]] | None  # per-character ranges; None when no escapes

    def span(self, i: int) -> tuple[int, int]:
        if self.spans is not None:
            return self.spans[i]
        return self.pos + i, self.pos + i + 1

    def whole(self) -> tuple[int, int]:
        if not self:
            return self.pos - 1, self.pos + 1
        return self.span(0)[0], self.span(len(self) - 1)[1]


class _JObj(dict):
    """A JSON object with its source range, for nodes that stand for no text of their own."""

    start: int
    end: int


_JSON_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_JSON_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_JSON_LITERALS = {"true": True, "false": False, "null": None, "NaN": float("nan")}


class _JsonScanner:
    """Decodes JSON (already validated by `json.loads`) keeping source offsets of strings."""

    def __init__(self, source: str) -> None:
        self.s = source

    def skip(self, i: int) -> int:
        s = self.s
        while i < len(s) and s[i] in " \t\n\r":
            i += 1
        return i

    def value(self, i: int) -> tuple[Any, int]:
        s = self.s
        i = self.skip(i)
        c = s[i]
        if c == "{":
            obj = _JObj()
            obj.start = i
            i = self.skip(i + 1)
            if s[i] == "}":
                obj.end = i + 1
                return obj, i + 1
            while True:
                key, i = self.string(self.skip(i))
                i = self.skip(i)
                value, i = self.value(i + 1)  # past ':'
                obj[str(key)] = value
                i = self.skip(i)
                if s[i] == ",":
                    i += 1
                    continue
                obj.end = i + 1
                return obj, i + 1
        if c == "[":
            items: list[Any] = []
            i = self.skip(i + 1)
            if s[i] == "]":
                return items, i + 1
            while True:
                value, i = self.value(i)
                items.append(value)
                i = self.skip(i)
                if s[i] == ",":
                    i += 1
                    continue
                return items, i + 1
        if c == '"':
            return self.string(i)
        for literal, value in _JSON_LITERALS.items():
            if s.startswith(literal, i):
                return value, i + len(literal)
        for literal in ("Infinity", "-Infinity"):
            if s.startswith(literal, i):
                return float(literal), i + len(literal)
        m = _JSON_NUMBER_RE.match(s, i)
        if not m:
            raise ValueError(f"unexpected {c!r}")
        return json.loads(m.group(0)), m.end()

    def string(self, i: int) -> tuple[_JStr, int]:
        s = self.s
        m = _JSON_STRING_RE.match(s, i)
        if not m:
            raise ValueError("expected a string")
        raw = s[i + 1 : m.end() - 1]
        if "\\" not in raw:
            result = _JStr(raw)
            result.pos, result.spans = i + 1, None
            return result, m.end()
        chars: list[str] = []
        spans: list[tuple[int, int]] = []
        j, stop = i + 1, m.end() - 1
        while j < stop:
            c = s[j]
            if c != "\\":
                chars.append(c)
                spans.append((j, j + 1))
                j += 1
                continue
            e = s[j + 1]
            if e == "u":
                code = int(s[j + 2 : j + 6], 16)
                k = j + 6
                if 0xD800 <= code < 0xDC00 and s.startswith("\\u", k):
                    low = int(s[k + 2 : k + 6], 16)
                    if 0xDC00 <= low < 0xE000:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        k += 6
                chars.append(chr(code))
                spans.append((j, k))
                j = k
            else:
                chars.append(_JSON_ESCAPES.get(e, e))
                spans.append((j, j + 2))
                j += 2
        result = _JStr("".join(chars))
        result.pos, result.spans = i + 1, spans
        return result, m.end()


_ADF_CONTAINERS = {
    "panel",
    "expand",
    "nestedExpand",
    "layoutSection",
    "layoutColumn",
    "bodiedExtension",
    "doc",
}
_ADF_INLINE_PARENTS = {"paragraph", "heading", "bulletList", "orderedList", "taskList"}
_ADF_SKIPPED = {"codeBlock", "rule", "mediaSingle", "mediaGroup", "media", "extension", "embedCard"}


@dataclass
class _AdfCollector:
    """Text of one list item or table cell gathered from its paragraphs."""

    kind: str
    attrs: dict[str, Any]
    builder: _Builder = field(default_factory=_Builder)


class _AdfReader:
    """Walks an ADF tree; text offsets point into the JSON source."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.blocks: list[Block] = []
        self.section = ""
        self.table = -1

    def read(self) -> list[Block]:
        if not self.source.strip():
            return []  # Jira sends no description at all as an empty body.
        root = self._load()
        try:
            self._children(root, quoted=False, depth=0, into=None)
        except RecursionError:
            raise TextFormatError("ADF source is nested too deeply to read") from None
        return self.blocks

    def _load(self) -> _JObj:
        """The document's root node; anything else is a TextFormatError saying what and where."""
        src = self.source
        try:
            json.loads(src)
        except json.JSONDecodeError as exc:
            raise TextFormatError(
                f"ADF source is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise TextFormatError(f"ADF source is not valid JSON: {exc}") from None
        try:
            root, _end = _JsonScanner(src).value(0)
        except (ValueError, IndexError, RecursionError) as exc:
            raise TextFormatError(f"ADF source could not be scanned: {exc}") from None
        if not isinstance(root, _JObj):
            line, column = self._where(len(src) - len(src.lstrip(" \t\r\n")))
            raise TextFormatError(
                f"ADF source is not an ADF document: the top level is a JSON "
                f"{_json_kind(root)} at line {line}, column {column}; expected an object with "
                f'"type": "doc"'
            )
        line, column = self._where(root.start)
        if root.get("type") != "doc":
            raise TextFormatError(
                f"ADF source is not an ADF document: the top-level object at line {line}, "
                f'column {column} has "type": {json.dumps(root.get("type"))}; expected "doc"'
            )
        if not isinstance(root.get("content", []), list):
            raise TextFormatError(
                f"ADF source is not an ADF document: the doc node at line {line}, column "
                f'{column} has "content" that is a JSON {_json_kind(root["content"])}; '
                "expected an array"
            )
        return root

    def _where(self, offset: int) -> tuple[int, int]:
        return Document(self.source, "adf", ()).line_col(offset)

    def _add(self, block: Block | None) -> None:
        if block is not None:
            self.blocks.append(block)

    def _children(
        self, node: dict, *, quoted: bool, depth: int, into: _AdfCollector | None
    ) -> None:
        content = node.get("content")
        if not isinstance(content, list):
            return
        for child in content:
            if isinstance(child, dict):
                self._block(child, quoted=quoted, depth=depth, into=into)

    def _block(self, node: dict, *, quoted: bool, depth: int, into: _AdfCollector | None) -> None:
        kind = _node_type(node)
        attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
        if kind in _ADF_SKIPPED:
            return
        if kind in ("paragraph", "heading") and into is not None:
            self._join(into, node)
            self._inline(node, into.builder)
        elif kind == "paragraph":
            out = _Builder()
            self._inline(node, out)
            self._add(out.block("paragraph", section=self.section, quoted=quoted))
        elif kind == "heading":
            out = _Builder()
            self._inline(node, out)
            level = attrs.get("level", 1)
            level = min(max(level, 1), 6) if type(level) is int else 1
            self._add(
                out.block(
                    "heading",
                    section=self.section,
                    heading_level=level,
                    quoted=quoted,
                )
            )
            self.section = out.text().strip()
        elif kind in ("bulletList", "orderedList", "taskList", "decisionList"):
            inner_depth = depth + 1
            for item in _content(node):
                if not isinstance(item, dict):
                    continue
                if item.get("type") == "taskList":
                    # A nested task list sits directly inside its parent list.
                    self._block(item, quoted=quoted, depth=inner_depth, into=into)
                else:
                    self._item(item, quoted=quoted, depth=inner_depth, into=into)
        elif kind == "blockquote":
            self._children(node, quoted=True, depth=depth, into=into)
        elif kind == "table":
            self._table(node, quoted=quoted, into=into)
        elif kind == "blockCard":
            url = attrs.get("url")
            out = into.builder if into is not None else _Builder()
            if into is not None:
                self._join(into, node)
            a, b = url.whole() if isinstance(url, _JStr) else (node.start, node.end)
            out.add(LINK_PLACEHOLDER, a, b)
            if into is None:
                self._add(out.block("paragraph", section=self.section, quoted=quoted))
        elif kind in _ADF_CONTAINERS or isinstance(node.get("content"), list):
            self._children(node, quoted=quoted, depth=depth, into=into)

    def _join(self, into: _AdfCollector, node: dict) -> None:
        """A line break between two paragraphs gathered into one block."""
        if len(into.builder) and isinstance(node, _JObj):
            into.builder.add("\n", node.start, node.start + 1)

    def _item(self, item: dict, *, quoted: bool, depth: int, into: _AdfCollector | None) -> None:
        kind = _node_type(item)
        attrs = item.get("attrs") if isinstance(item.get("attrs"), dict) else {}
        checked = None
        if kind == "taskItem":
            state = attrs.get("state")
            checked = state == "DONE" if state in ("DONE", "TODO") else None
        if into is not None:
            # Inside a table cell everything belongs to the cell.
            self._join(into, item)
            self._item_content(item, into, quoted=quoted, depth=depth)
            return
        collector = _AdfCollector(
            "list_item",
            {"quoted": quoted, "list_depth": depth, "checked": checked},
        )
        self._item_content(item, collector, quoted=quoted, depth=depth)
        self._emit(collector)

    def _item_content(
        self, item: dict, collector: _AdfCollector, *, quoted: bool, depth: int
    ) -> None:
        if _node_type(item) in ("taskItem", "decisionItem"):
            # Their content is inline nodes, but newer editors also nest paragraphs there.
            for child in _content(item):
                if not isinstance(child, dict):
                    continue
                if _node_type(child) in _ADF_INLINE_PARENTS:
                    self._block(child, quoted=quoted, depth=depth, into=collector)
                else:
                    self._inline_nodes([child], collector.builder)
            return
        for child in _content(item):
            if not isinstance(child, dict):
                continue
            ctype = _node_type(child)
            if ctype in ("bulletList", "orderedList", "taskList", "decisionList"):
                if collector.kind == "list_item":
                    # Nested lists are blocks of their own; emit the item so far first.
                    self._emit(collector)
                    collector.builder = _Builder()
                    collector.attrs = {**collector.attrs, "checked": None}
                    self._block(child, quoted=quoted, depth=depth, into=None)
                else:
                    self._block(child, quoted=quoted, depth=depth, into=collector)
            else:
                self._block(child, quoted=quoted, depth=depth, into=collector)

    def _emit(self, collector: _AdfCollector) -> None:
        self._add(collector.builder.block(collector.kind, section=self.section, **collector.attrs))

    def _table(self, node: dict, *, quoted: bool, into: _AdfCollector | None) -> None:
        if into is not None:
            self._children(node, quoted=quoted, depth=0, into=into)
            return
        self.table += 1
        table = self.table
        headers: list[str] = []
        rows = [r for r in _content(node) if isinstance(r, dict)]
        for row_index, row in enumerate(rows):
            cells = [c for c in _content(row) if isinstance(c, dict)]
            for column, cell in enumerate(cells):
                collector = _AdfCollector(
                    "table_cell",
                    {"quoted": quoted, "table": table, "row": row_index, "column": column},
                )
                self._children(cell, quoted=quoted, depth=0, into=collector)
                text = collector.builder.text().strip()
                if row_index == 0 and cell.get("type") == "tableHeader":
                    headers.append(text)
                collector.attrs["header"] = headers[column] if column < len(headers) else ""
                self._emit(collector)

    def _inline(self, node: dict, out: _Builder) -> None:
        content = node.get("content")
        if isinstance(content, list):
            self._inline_nodes(content, out)

    def _inline_nodes(self, nodes: list[Any], out: _Builder) -> None:
        for child in nodes:
            if not isinstance(child, dict):
                continue
            kind = _node_type(child)
            attrs = child.get("attrs") if isinstance(child.get("attrs"), dict) else {}
            if kind == "text":
                text = child.get("text")
                if not isinstance(text, _JStr):
                    continue
                marks = child.get("marks") if isinstance(child.get("marks"), list) else []
                if any(isinstance(m, dict) and m.get("type") == "code" for m in marks):
                    out.add(CODE_PLACEHOLDER, *text.whole())
                elif _looks_like_url(text) and text.strip():
                    out.add(LINK_PLACEHOLDER, *text.whole())
                else:
                    _emit_with_urls(out, text, text.span)
            elif kind in ("mention", "status"):
                text = attrs.get("text")
                if isinstance(text, _JStr) and text:
                    for i, ch in enumerate(text):
                        out.add(ch, *text.span(i))
                elif kind == "mention" and isinstance(child, _JObj):
                    out.add("@mention", child.start, child.end)
            elif kind == "hardBreak" and isinstance(child, _JObj):
                out.add(" ", child.start, child.end)
            elif kind in ("inlineCard", "blockCard"):
                url = attrs.get("url")
                if isinstance(url, _JStr):
                    out.add(LINK_PLACEHOLDER, *url.whole())
                elif isinstance(child, _JObj):
                    out.add(LINK_PLACEHOLDER, child.start, child.end)
            elif kind == "date":
                stamp = attrs.get("timestamp")
                day = _adf_date(stamp)
                if day and isinstance(stamp, _JStr):
                    out.add(day, *stamp.whole())
                elif day and isinstance(child, _JObj):
                    out.add(day, child.start, child.end)
            elif kind in ("emoji", "placeholder", "mediaInline"):
                continue
            elif isinstance(child.get("text"), _JStr):
                text = child["text"]
                for i, ch in enumerate(text):
                    out.add(ch, *text.span(i))


def _content(node: dict) -> list[Any]:
    """A node's children; anything but an array counts as none."""
    content = node.get("content")
    return content if isinstance(content, list) else []


def _node_type(node: dict) -> str:
    """A node's type; hand-edited or foreign JSON may put anything there."""
    kind = node.get("type")
    return kind if isinstance(kind, str) else ""


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    return "array" if isinstance(value, list) else "object"


def _adf_date(stamp: Any) -> str:
    """ADF dates are epoch milliseconds as a string; readers (and due-date checks) want ISO."""
    try:
        millis = int(str(stamp))
        return _dt.datetime.fromtimestamp(millis / 1000, tz=_dt.UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        return ""


# --------------------------------------------------------------------------------------------
# Plain text


def _read_plain(source: str) -> list[Block]:
    """Blank lines separate paragraphs; line breaks inside one become spaces."""
    lines = _Lines.of(source)
    blocks: list[Block] = []
    out = _Builder()
    for line in range(len(lines)):
        start, end = lines.starts[line], lines.ends[line]
        text = source[start:end]
        if not text.strip():
            block = out.block("paragraph")
            if block:
                blocks.append(block)
            out = _Builder()
            continue
        if len(out):
            prev = lines.index_of(out.ends[-1] - 1)
            out.add(" ", lines.ends[prev], max(lines.nexts[prev], lines.ends[prev] + 1))
        _emit_with_urls(out, text, lambda i, s=start: (s + i, s + i + 1))
    block = out.block("paragraph")
    if block:
        blocks.append(block)
    return blocks
