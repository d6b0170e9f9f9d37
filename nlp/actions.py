"""Finds a postmortem's action-items section, reads its items and checks them against policy.

Systems thinking (DESIGN.md, "Three forces", point 2): a lesson has to become a change that
lives in a shared system. So a postmortem needs an action-items section; policy can ask for
an owner, a tracking link and a due date on each item, and for at least one item that says
where the learning lives (a runbook, checklist, decision log...).

How a section is found (see `action_sections`)
    By what its heading says, not by a fixed list of titles: a heading of any level (ATX,
    setext, numbered, Jira `h2.`, ADF) or a pseudo-heading (a bold line, "Follow-ups:",
    "- **Review actions**:", "5. Prevention") whose words are about actions, follow-ups,
    prevention, remediation, next steps or "what we will do" (rules/action_words.py), or
    that `policy.headings` lists. It runs until the next heading of the same or a higher
    level (a list-item label owns its nested items). Failing those, a lessons / takeaways
    heading whose items read as future changes; failing that, a trailing list or table whose
    items do (imperative verbs, owners, ticket keys, due dates).

What an item is
    * each list item; nested sub-bullets (and paragraphs inside a list item) are merged into
      their parent for owner / tracking / due detection and are not items of their own;
    * each table row after the header row, read by column header (owner, due, status,
      ticket...);
    * only when a section has no list and no table: each sentence of its paragraphs
      (blockquotes and lines ending with ":" are skipped). Simple on purpose.
    Placeholders ("TBD", "-", an empty checkbox) and markdown paragraphs wholly in italics
    (template guidance) are not items.

What is read from an item
    owner, tracking references, due date, done state and lesson home (see `parse_item`).
    A table row is read by its column headers first; a sub-heading inside the section that
    links an issue ("### Short-term ([tracked here](…/issues/39))") gives that tracking to
    the items under it that have none. Items under a sub-heading saying "(completed)" are
    done unless they say otherwise. Done items are not asked for an owner or a due date.

Pure: no I/O. Person-remediation items ("be more careful") are the rule pack's business.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nlp.model import ActionItem, Block, Finding
from rules.action_words import is_change_verb, reads_as_change
from rules.policy import DEFAULT_LESSON_HOME_WORDS, ActionPolicy

if TYPE_CHECKING:  # pragma: no cover
    from nlp.text import Document
    from rules.schema import RulePack  # imports spaCy; the checks only read its records

CATEGORY = "action-items"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --------------------------------------------------------------------------- tracking

_URL = re.compile(r"https?://[^\s<>()\[\]{}\"'`|\\]+", re.IGNORECASE)
# ABC-123: 2-10 capitals, a dash, digits; not inside a longer token (US-EAST-1, AB-12c,
# CVE-2024-1234) and not a well-known standard or version name.
_JIRA_KEY = re.compile(r"(?<![\w./#@-])([A-Z]{2,10})-(\d+)(?![\w]|-\w|\.\d)")
_KEY_STOPLIST = _words(
    """UTF UCS SHA MD ISO RFC CVE CWE GHSA AES RSA DSA TLS SSL HTTP HTTPS IPV TCP UDP DNS PEP
    COVID GPT LTS SLA SLO SLI SEV PRI UTC GMT CET PST PDT EST EDT BST CEST ECMA IEEE ANSI
    FIPS PCI RAID DDR LPDDR ARM AMD USB HDMI WPA RAM ROM ECC EAL NIST SOC IP"""
)
_GH_REF = re.compile(r"(?<![\w/&#.@-])((?:[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)?#\d+)\b")


def _urls(source: str) -> list[tuple[int, int, str]]:
    out = []
    for m in _URL.finditer(source):
        url = m.group(0).rstrip(".,;:!?*_~")
        out.append((m.start(), m.start() + len(url), url))
    return out


def find_tracking(text: str, source_text: str = "") -> tuple[str, ...]:
    """Issue references in an item: URLs, `#123`, `org/repo#123`, Jira keys like `OPS-42`."""
    found: list[str] = []
    for hay in (source_text, text):
        urls = _urls(hay)
        found.extend(u for _, _, u in urls)

        def inside_url(start: int, end: int, urls: list = urls) -> bool:
            return any(a <= start and end <= b for a, b, _ in urls)

        for m in _JIRA_KEY.finditer(hay):
            if m.group(1) not in _KEY_STOPLIST and not inside_url(m.start(), m.end()):
                found.append(m.group(0))
        for m in _GH_REF.finditer(hay):
            if not inside_url(m.start(), m.end()):
                found.append(m.group(1))
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------- owner

_PLACEHOLDER = re.compile(
    r"^(?:|-+|—|–|\?+|\.\.\.|…|tbd|tba|tbc|n/?a|none|nobody|unassigned|unknown|todo|xxx|"
    r"<[^>]*>|\[[^\]]*\]|_+)$",
    re.IGNORECASE,
)
_OWNER_LABEL = re.compile(
    r"(?<![\w-])(?:owners?|assignees?|assigned\s+to|owned\s+by|dri|responsible(?:\s+team)?)"
    r"(?:\s*[:=]\s*|\s+-\s+|\s+(?=@)|(?<=to)\s+|(?<=by)\s+)",
    re.IGNORECASE,
)
_OWNER_END = re.compile(
    r"[,;|()\[\]\n?]|\.(?:\s|$)|\s[-–—]\s|\s+(?:due|by|deadline|eta|target|tracking|ticket|"
    r"issue|status|link)\b",
    re.IGNORECASE,
)
_MENTION = re.compile(r"(?<![\w.@/`])@([A-Za-z0-9](?:[\w.-]*[\w])?(?:/[A-Za-z0-9][\w.-]*\w)?)")


def find_owner(text: str) -> str | None:
    """`Owner: Name`, `(owner: @team)`, `Assignee: …`, `assigned to X`, or an @mention.

    A bracketed name prefix ("[Sam] fix the job") is not read as an owner.
    """
    for m in _OWNER_LABEL.finditer(text):
        rest = text[m.end() :]
        end = _OWNER_END.search(rest)
        value = rest[: end.start()] if end else rest
        value = value.strip().strip("*_`\"'").strip()
        words = value.split()
        if len(words) > 6:
            value = " ".join(words[:6])
        if value and not _PLACEHOLDER.match(value):
            return value
    mention = _MENTION.search(text)
    if mention:
        return "@" + mention.group(1)
    lead = _LEAD_OWNER.match(text)
    if lead and _may_own(lead.group(1)):
        return lead.group(1)
    team = _TEAM.search(text)
    if team and _may_own(team.group(1)):
        return team.group(0).strip()
    return None


def _may_own(words: str) -> bool:
    first = words.split()[0]
    return first.casefold() not in _NOT_OWNERS and not is_change_verb(first)


# "Kai to add the alert", "Platform team will rotate the keys", "SRE: add a lag alert":
# the item opens with who does it. Capitalised so "Need to add" and "Try to" stay verbs.
_LEAD_OWNER = re.compile(
    r"^\s*(?:\[[ xX]\]\s*)?((?:[A-Z][\w.-]*|[A-Z]{2,})(?:\s+[A-Z][\w.-]*)?(?:\s+team)?)"
    r"(?:\s+(?:to|will|shall|should|must)\s+[a-z]|\s*:\s+[A-Za-z])"
)
# "the platform team", "payments-oncall team": a named team anywhere in the item.
_TEAM = re.compile(
    r"(?<![\w-])((?:[A-Z][\w-]*|[a-z]+-[\w-]+)(?:\s+[A-Z][\w-]*)?)\s+(?:team|squad|guild)\b"
)
_NOT_OWNERS = frozenset(
    """we i you they it this that these those the a an our their each every all any no
    who need needs try plan make nobody someone somebody everyone note status next then
    also and or but when if once after before update add fix remove review investigate
    document ensure consider spike owner owners assignee assignees due deadline status
    ticket tickets issue priority eta target done todo tbd action item""".split()
)


# --------------------------------------------------------------------------- due dates

_MONTHS = (
    {name.casefold(): i for i, name in enumerate(calendar.month_name) if name}
    | {name.casefold(): i for i, name in enumerate(calendar.month_abbr) if name}
    | {"sept": 9}
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORD = r"(?:st|nd|rd|th)?"
_PERIOD_PREFIX = (
    r"(?:the\s+)?(?:end|middle|start|beginning)\s+of\s+(?:the\s+)?|mid[-\s]|early\s+|late\s+"
)
_DATE_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ymd", re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)")),
    ("xyY", re.compile(r"(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>\d{4})(?!\d)")),
    (
        "mdy",
        re.compile(
            rf"(?P<mon>{_MONTH})\.?\s+(?P<d>\d{{1,2}}){_ORD},?\s+(?P<y>\d{{4}})(?!\d)",
            re.IGNORECASE,
        ),
    ),
    (
        "dmy",
        re.compile(
            rf"(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+)?(?P<mon>{_MONTH})\.?,?\s+(?P<y>\d{{4}})(?!\d)",
            re.IGNORECASE,
        ),
    ),
    (
        "raw",
        re.compile(
            rf"(?:{_PERIOD_PREFIX})?(?:Q[1-4]\s*'?\d{{2,4}}|\d{{4}}[-\s]?Q[1-4]|[HS][12]\s+\d{{4}}|"
            rf"{_MONTH}\.?\s+\d{{1,2}}{_ORD}(?![\d,])|\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\b|"
            rf"{_MONTH}\.?,?\s+\d{{4}}|Q[1-4]\b|EO[WMQY]\b|"
            rf"(?:this|next|the\s+next)\s+(?:week|sprint|month|quarter|release|year)\b)|"
            rf"(?:{_PERIOD_PREFIX})(?:{_MONTH}|week|sprint|month|quarter|year)\b",
            re.IGNORECASE,
        ),
    ),
)
_DUE_LABEL = re.compile(
    r"(?<![\w-])(?:due(?:\s+date)?(?:\s+by)?|deadline|target(?:\s+date)?|eta|by|before|"
    r"no\s+later\s+than)\s*[:=]?\s*",
    re.IGNORECASE,
)


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def read_date(text: str, *, anchored: bool = True) -> tuple[str | None, str | None]:
    """Read a date at the start of `text` (anywhere when not anchored).

    Returns (iso, raw): iso when the date is unambiguous ("2024-06-01", "June 1, 2024",
    "1 Jun 2024", "13/06/2024"), else None with the raw words ("Q3 2024", "03/04/2024").
    """
    best: tuple[int, str | None, str | None] | None = None
    for kind, pattern in _DATE_FORMS:
        m = pattern.match(text) if anchored else pattern.search(text)
        if not m:
            continue
        if best is not None and m.start() >= best[0]:
            continue
        raw = m.group(0).strip()
        iso = None
        if kind == "ymd":
            iso = _iso(int(m["y"]), int(m["m"]), int(m["d"]))
        elif kind == "xyY":
            a, b, y = int(m["a"]), int(m["b"]), int(m["y"])
            if a == b or b > 12:
                iso = _iso(y, a, b)
            elif a > 12:
                iso = _iso(y, b, a)
        elif kind in ("mdy", "dmy"):
            iso = _iso(int(m["y"]), _MONTHS[m["mon"].casefold().rstrip(".")], int(m["d"]))
        best = (m.start(), iso, raw)
    if best is None:
        return None, None
    return best[1], best[2]


def find_due(text: str) -> tuple[str | None, str | None]:
    """A due date introduced by due / by / deadline / target / ETA: (iso, raw)."""
    for m in _DUE_LABEL.finditer(text):
        iso, raw = read_date(text[m.end() :])
        if raw:
            return iso, raw
    return None, None


# --------------------------------------------------------------------------- done

_DONE_WORDS = r"done|complete|completed|closed|fixed|resolved|shipped|merged|finished|landed"
_OPEN_WORDS = (
    r"open|to\s*do|in\s+progress|in-progress|wip|planned|not\s+started|pending|ongoing|"
    r"blocked|backlog|proposed|started"
)
_DONE_MARK = re.compile(r"[✅✔☑✓]|\bDONE\b")
_DONE_MARK_CI = re.compile(
    rf"^\s*(?:{_DONE_WORDS})\b\s*[:\-–—]|[(\[]\s*(?:{_DONE_WORDS})\s*[)\]]", re.IGNORECASE
)
_OPEN_MARK = re.compile(rf"^\s*TODO\b|[(\[]\s*(?:{_OPEN_WORDS})\s*[)\]]|[❌⏳🚧]", re.IGNORECASE)
_STATUS = re.compile(r"(?<![\w-])(?:status|state)\s*[:=]\s*([\w -]+)", re.IGNORECASE)
_STRUCK = re.compile(
    r"^\s*(?:[-*+]|\d+[.)]|#+)?\s*(?:\[[ xX]\]\s*)?"
    r"(?:~~(?!~).+~~|<(del|s|strike)>.+</\1>)\s*[.;,]?\s*$",
    re.DOTALL,
)
_JIRA_STRUCK = re.compile(r"^\s*[*#-]+\s+-(?=\S).+(?<=\S)-\s*$", re.DOTALL)
_COMPLETED_HEADING = re.compile(r"\b(?:completed|done|finished)\b", re.IGNORECASE)
_NOT_COMPLETED = re.compile(
    r"\b(?:not|un|in[\s-]progress|planned|pending|open|remaining|outstanding)\b", re.IGNORECASE
)


def status_done(value: str) -> bool | None:
    """Read a status word: done / complete / closed -> True; open / in progress -> False."""
    value = value.strip().casefold()
    if not value:
        return None
    if re.match(rf"^(?:[✅✔☑✓]|yes|y|true|x|(?:{_DONE_WORDS})\b)", value):
        return True
    if re.match(rf"^(?:[❌⏳🚧]|no|n|false|(?:{_OPEN_WORDS})\b)", value):
        return False
    return None


def is_struck(source_text: str, fmt: str = "markdown") -> bool:
    """Whether an item's whole source is struck through (~~…~~, <del>, Jira -…-)."""
    if _STRUCK.match(source_text):
        return True
    return fmt == "jira" and bool(_JIRA_STRUCK.match(source_text))


def find_done(text: str, source_text: str = "") -> bool | None:
    if source_text and is_struck(source_text):
        return True
    status = _STATUS.search(text)
    if status:
        value = status_done(status.group(1))
        if value is not None:
            return value
    if _DONE_MARK.search(text) or _DONE_MARK_CI.search(text):
        return True
    if _OPEN_MARK.search(text):
        return False
    return None


# --------------------------------------------------------------------------- lesson home

_LESSON_VERB = re.compile(
    r"\b(?:add|updat|document|writ|wrote|written|creat|extend|revis|amend|record|publish|"
    r"captur|includ|expand|rewrit|edit|improv|introduc|draft|put|move|link|fold)\w*",
    re.IGNORECASE,
)


def _word_pattern(word: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(w) for w in word.split())
    flags = 0 if (word.isupper() and len(word) <= 4) else re.IGNORECASE
    return re.compile(rf"(?<![\w.-]){body}(?:s|es)?(?![\w]|[.-]\w)", flags)


def find_lesson_home(
    text: str, source_text: str = "", words: Sequence[str] = DEFAULT_LESSON_HOME_WORDS
) -> str | None:
    """Where the item puts the learning: a link to (or a change to) a runbook, checklist...

    Counts when the item names a lesson home together with a link ("Update the failover
    runbook (https://…)") or with a verb that changes it ("Add the step to the deploy
    checklist"). Returns the link when there is one, else the words naming the home.
    """
    patterns = [_word_pattern(w) for w in words if w.strip()]
    mentions = [m for p in patterns for m in p.finditer(text)]
    urls = [u for _, _, u in _urls(source_text or text)]
    url_homes = [u for u in urls if any(p.search(_url_words(u)) for p in patterns)]
    if url_homes:
        return url_homes[0]
    if not mentions:
        return None
    if urls:
        return urls[0]
    spans = [(m.start(), m.end()) for m in mentions]
    for verb in _LESSON_VERB.finditer(text):
        if not any(a < verb.end() and verb.start() < b for a, b in spans):
            first = min(mentions, key=lambda m: m.start())
            return _phrase(text, first)
    return None


def _url_words(url: str) -> str:
    # "https://wiki.example.com/ops/Deploy_Runbook" -> "wiki example com ops Deploy Runbook"
    rest = re.sub(r"^https?://", "", url, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9]+", " ", rest)


def _phrase(text: str, mention: re.Match[str]) -> str:
    # "Update the failover runbook" -> "failover runbook": one modifier before the mention.
    before = text[: mention.start()].split()[-1:]
    stop = {"the", "a", "an", "our", "to", "in", "into", "of", "on", "and", "with", "for"}
    words = [
        w
        for w in before
        if re.fullmatch(r"[^\W\d_][\w-]*", w)
        and w.casefold() not in stop
        and not _LESSON_VERB.fullmatch(w)
    ]
    return " ".join([*words, mention.group(0)])


# --------------------------------------------------------------------------- one item


def parse_item(
    text: str,
    source_text: str = "",
    *,
    lesson_home_words: Sequence[str] = DEFAULT_LESSON_HOME_WORDS,
) -> dict[str, Any]:
    """Read one action item.

    `text` is the analysable text (placeholders `code` / `link` in place of inline code and
    URLs); `source_text` is the item's source, where URLs can be read. Returns a dict with
    owner, tracking (tuple), due (ISO or None), due_raw (the words, also when they are not
    a calendar date, e.g. "Q3 2024"), done (True / False / None) and lesson_home.
    """
    due, due_raw = find_due(text)
    return {
        "owner": find_owner(text),
        "tracking": find_tracking(text, source_text),
        "due": due,
        "due_raw": due_raw,
        "done": find_done(text, source_text),
        "lesson_home": find_lesson_home(text, source_text, lesson_home_words),
    }


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Section:
    """An action-items section: the heading (or bold label) and the blocks under it."""

    label: Block
    title: str
    blocks: tuple[Block, ...]
    indices: tuple[int, ...]  # indices of `blocks` in doc.blocks


def _label_title(block: Block) -> str:
    return block.text.strip().rstrip(":：").strip().strip("*_").strip()


_ORDERED_MARKER = re.compile(r"^\s*(?:[-*+]\s+)?\d+[.)]\s+$")


def _emphasised(doc: Document, block: Block) -> bool:
    # "**Next steps**", "__Follow-ups__", Jira "*Actions*" / "+Actions+": the whole text
    # wrapped in one emphasis, the usual stand-in for a heading.
    if not block.starts or doc.format == "adf":
        return False
    a, b = block.starts[0], block.ends[-1]
    before = doc.source[max(0, a - 3) : a]
    after = doc.source[b : b + 3]
    return before.endswith(("**", "__", "*", "_", "+")) and after.startswith(
        ("**", "__", "*", "_", "+", ":")
    )


def _pseudo_heading(doc: Document, block: Block) -> bool:
    """A short paragraph or list item standing in for a heading: "**Next steps**",
    "Follow-ups:", "- **Review actions**:"; it opens a section when its words say so and
    ends the section of the label before it either way."""
    if block.kind not in ("paragraph", "list_item") or block.quoted:
        return False
    text = block.text.strip()
    if not text or "\n" in text or len(text) > 100:
        return False
    if text.endswith((":", "：")):
        return len(text.split()) <= 14
    return len(text.split()) <= 8 and _emphasised(doc, block)


def _numbered_label(doc: Document, block: Block) -> bool:
    # "5. Prevention" on its own line is an ordered list item, not a heading, in markdown.
    if block.kind != "list_item" or not block.starts:
        return False
    text = block.text.strip()
    if len(text.split()) > 6 or text.endswith((".", "?", "!")):
        return False
    line_start = doc.source.rfind("\n", 0, block.starts[0]) + 1
    return bool(_ORDERED_MARKER.match(doc.source[line_start : block.starts[0]]))


def _heading_sections(
    blocks: Sequence[Block], opens: Callable[[str], bool], taken: set[int]
) -> list[Section]:
    """Sections opened by a heading: up to the next heading of the same or a higher level."""
    out: list[Section] = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        if block.kind == "heading" and i not in taken and opens(block.text):
            j = i + 1
            while j < len(blocks) and not (
                blocks[j].kind == "heading" and blocks[j].heading_level <= block.heading_level
            ):
                j += 1
            out.append(_claim(blocks, i, j, taken))
            i = j
        else:
            i += 1
    return out


def _claim(blocks: Sequence[Block], i: int, j: int, taken: set[int]) -> Section:
    """The section headed by blocks[i] and holding blocks[i+1:j], marked as taken."""
    taken.update(range(i, j))
    return Section(blocks[i], _label_title(blocks[i]), tuple(blocks[i + 1 : j]),
                   tuple(range(i + 1, j)))


def _label_sections(
    doc: Document, opens: Callable[[str], bool], taken: set[int]
) -> list[Section]:
    """Sections opened by a pseudo-heading (bold line, "Label:", "5. Prevention").

    A list-item label with nested items owns just those; any other label runs to the next
    heading or the next pseudo-heading at its own list depth or shallower.
    """
    blocks = doc.blocks
    out: list[Section] = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        is_label = _pseudo_heading(doc, block) or _numbered_label(doc, block)
        if i in taken or not is_label or not opens(block.text.strip().rstrip(":：")):
            i += 1
            continue
        depth = block.list_depth
        j = i + 1
        nested = (
            block.kind == "list_item"
            and j < len(blocks)
            and blocks[j].list_depth > depth
            and blocks[j].kind != "heading"
        )
        while j < len(blocks) and j not in taken:
            nxt = blocks[j]
            if nxt.kind == "heading":
                break
            if nested and nxt.list_depth <= depth:
                break
            if not nested and nxt.list_depth <= depth and _pseudo_heading(doc, nxt):
                break
            j += 1
        if j > i + 1:
            out.append(_claim(blocks, i, j, taken))
            i = j
        else:
            i += 1
    return out


def _reads_as_changes(section: Section, ctx: _Context, *, share: float) -> bool:
    """Whether at least `share` of a section's items read as future changes: an
    imperative verb or "we will / need to", or an owner, ticket or due date."""
    drafts = _drafts(section, ctx)
    texts = [d.text or " ".join(t for t, _ in d.parts) for d in drafts]
    texts = [t for t in texts if t.strip()]
    if not texts:
        return False
    changes = sum(
        1
        for t in texts
        if reads_as_change(t) or find_owner(t) or find_tracking(t) or find_due(t)[1]
    )
    return changes >= max(1, share * len(texts))


def _trailing_list(doc: Document, ctx: _Context) -> Section | None:
    """The document's last list or table, when only a short sign-off follows it ("Thanks
    for reading!"): a heading-less action list if its items read as changes."""
    blocks = doc.blocks
    j = len(blocks)
    tail = 0
    while j > 0 and blocks[j - 1].kind == "paragraph" and tail < 2:
        j -= 1
        tail += 1
    end = j
    while j > 0 and blocks[j - 1].kind in ("list_item", "table_cell"):
        j -= 1
    if j == end or blocks[j].list_depth > 1:
        return None
    section = Section(blocks[j], "", tuple(blocks[j:end]), tuple(range(j, end)))
    items = _drafts(section, ctx)
    if len(items) < 2 or not _reads_as_changes(section, ctx, share=2 / 3):
        return None
    return section


def action_sections(doc: Document, policy: ActionPolicy) -> tuple[Section, ...]:
    """Where a postmortem says what will change, in order of confidence.

    1. Headings and pseudo-headings (bold lines, "Label:", "5. Prevention") that the policy
       matches: listed titles, or words of planned change (rules/action_words.py).
    2. Failing those, lessons / takeaways / changes headings whose items mostly read as
       future changes.
    3. Failing those, a trailing list or table whose items read as future changes.
    """
    taken: set[int] = set()
    sections = _heading_sections(doc.blocks, policy.matches_heading, taken)
    sections += _label_sections(doc, policy.matches_heading, taken)
    if sections or not policy.detect_headings:
        return tuple(sorted(sections, key=lambda s: s.indices[0] if s.indices else 0))
    ctx = _Context(doc)  # built once: every weak section is read against it
    weak = _heading_sections(doc.blocks, policy.weak_heading, taken)
    weak += _label_sections(doc, policy.weak_heading, taken)
    sections = [s for s in weak if _reads_as_changes(s, ctx, share=0.5)]
    if sections:
        return tuple(sorted(sections, key=lambda s: s.indices[0] if s.indices else 0))
    trailing = _trailing_list(doc, ctx)
    return (trailing,) if trailing else ()


def in_action_section(block: Block, policy: ActionPolicy, doc: Document | None = None) -> bool:
    """Whether a block is part of an action-items section.

    Without `doc` this is decided from the block alone (its own heading text, or the
    heading above it); with `doc` the section boundaries are computed exactly, so blocks
    under a nested sub-heading or a bold "Action items:" label count too.
    """
    if doc is not None:
        for section in action_sections(doc, policy):
            if block is section.label or block in section.blocks:
                return True
        return False
    if block.kind == "heading":
        return policy.matches_heading(block.text)
    return bool(block.section) and policy.matches_heading(block.section)


# --------------------------------------------------------------------------- items


@dataclass
class _Draft:
    """An item being assembled: its anchor span, text, and what was read so far."""

    start: int
    end: int
    text: str
    parts: list[tuple[str, str]]  # (text, source context) of the item and merged children
    heading: str = ""
    heading_refs: tuple[str, ...] = ()  # tracking named in the heading above the item
    checked: bool | None = None
    struck: bool = False
    cells: dict[str, tuple[str, str]] | None = None  # role -> (text, source context)
    row: tuple[int, int] | None = None  # (table, row) of a table row not yet read


def _span(block: Block) -> tuple[int, int] | None:
    if not block.starts:
        return None
    return block.starts[0], block.ends[-1]


class _Context:
    """Source context of a block: its span widened to whole lines, never into a neighbour.

    A trailing link's URL ("see [runbook](https://…)") and a list marker's `~~` lie outside
    the text's own span. ADF keeps a node's marks after its text, so there the span is only
    widened forwards.
    """

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.index = {id(b): i for i, b in enumerate(doc.blocks)}
        spans = [_span(b) for b in doc.blocks]
        self.prev_end: list[int] = []
        last = 0
        for span in spans:
            self.prev_end.append(last)
            if span:
                last = span[1]
        self.next_start: list[int] = []
        following = len(doc.source)
        for span in reversed(spans):
            self.next_start.append(following)
            if span:
                following = span[0]
        self.next_start.reverse()

    def bounds(
        self, block: Block, start: int | None = None, end: int | None = None
    ) -> tuple[int, int]:
        """Source offsets [a, b) around `block` (or around [start, end) inside it)."""
        src = self.doc.source
        span = _span(block)
        if span is None:
            return (0, 0)
        a = span[0] if start is None else start
        b = span[1] if end is None else end
        i = self.index.get(id(block))
        prev_end = self.prev_end[i] if i is not None else a
        next_start = self.next_start[i] if i is not None else b
        if self.doc.format != "adf":
            line_start = src.rfind("\n", 0, a) + 1
            a = min(a, max(line_start, prev_end))
        line_end = src.find("\n", b)
        line_end = len(src) if line_end < 0 else line_end
        return a, max(b, min(line_end, next_start))

    def around(self, block: Block, start: int | None = None, end: int | None = None) -> str:
        a, b = self.bounds(block, start, end)
        return self.doc.source[a:b]

    def italic(self, block: Block) -> bool:
        """A markdown paragraph wholly in emphasis: template guidance, not an item."""
        span = _span(block)
        if span is None or self.doc.format != "markdown":
            return False
        src = self.doc.source
        before, after = src[max(0, span[0] - 1) : span[0]], src[span[1] : span[1] + 1]
        return before in ("_", "*") and after == before


_COLUMN_ROLES: tuple[tuple[str, frozenset[str]], ...] = (
    ("owner", _words("owner owners assignee assignees who dri responsible assigned")),
    (
        "tracking",
        _words(
            "ticket tickets issue issues tracking tracker link links jira pr prs url urls "
            "reference references ref refs"
        ),
    ),
    ("status", _words("status done state complete completed progress")),
    ("due", _words("due date deadline by target eta when")),
)


def column_role(header: str) -> str | None:
    """What a table column holds, from its header: owner, tracking, status, due or None."""
    words = set(re.findall(r"[a-z]+", header.casefold()))
    for role, names in _COLUMN_ROLES:
        if words & names:
            return role
    return None


def _is_placeholder(text: str) -> bool:
    return bool(_PLACEHOLDER.match(text.strip().strip("*_").strip().rstrip(".").strip()))


# "None yet — will follow up next week", "No action needed", "TBD", "Nothing so far": a
# section that says no change is planned, which must not pass as a planned change.
_NOTHING = (
    r"(?:none|nothing|no\s+(?:further\s+)?(?:actions?|action\s+items?|follow[\s-]?ups?|"
    r"changes?|items?)|n/?a|tbd|tba|tbc|to\s+be\s+(?:decided|determined|confirmed|defined|"
    r"added|agreed)|todo|pending)"
)
_FOLLOW_LATER = (
    r"(?:(?:we|i|team)\s+)?(?:will|'ll|to|shall)\s+(?:follow[\s-]?up|decide|update\s+this|"
    r"add\s+(?:them|items|these|more)|come\s+back\s+to\s+(?:this|it))"
    r"(?:\s+(?:later|soon|next\s+\w+|tomorrow|after\s+.*|in\s+.*|on\s+.*|by\s+.*))?"
)
_NON_ITEM = re.compile(
    rf"^(?:{_NOTHING}(?:\s+(?:yet|so\s+far|for\s+now|at\s+(?:this|the\s+moment)\s*\w*|"
    rf"needed|required|planned|identified|necessary|at\s+present))*"
    rf"(?:\s*[-–—,;:(]+\s*{_FOLLOW_LATER}\)?)?|{_FOLLOW_LATER}|"
    rf"(?:items?|actions?|follow[\s-]?ups?)\s+(?:to\s+come|to\s+follow|tbd|pending))$",
    re.IGNORECASE,
)


def is_non_item(text: str) -> bool:
    """A placeholder or a statement that nothing is planned yet: not an action item."""
    bare = " ".join(text.split()).strip().strip("*_").strip().rstrip(".!").strip()
    return _is_placeholder(bare) or bool(_NON_ITEM.match(bare))


_SENTENCE = re.compile(r"[^\n]+?(?:[.!?]+(?=\s|$)|$)", re.MULTILINE)


def _drafts(section: Section, ctx: _Context) -> list[_Draft]:
    body = [b for b in section.blocks if b.kind != "heading"]
    has_list = any(b.kind == "list_item" for b in body)
    has_table = any(b.kind == "table_cell" for b in body)
    drafts: list[_Draft] = []
    refs = _heading_refs(section.label, ctx)
    if has_list or has_table:
        parent: _Draft | None = None
        parent_depth = 0
        rows: dict[tuple[int, int], list[Block]] = {}
        headed_tables = {b.table for b in body if b.kind == "table_cell" and b.header.strip()}
        for block in section.blocks:
            if block.kind == "heading":
                parent = None
                refs = _heading_refs(block, ctx) or _heading_refs(section.label, ctx)
            elif block.kind == "list_item":
                span = _span(block)
                if parent is not None and block.list_depth > parent_depth:
                    parent.parts.append((block.text, ctx.around(block)))
                    continue
                parent = None
                if span is None or is_non_item(block.text):
                    continue
                around = ctx.around(block)
                parent = _Draft(
                    start=span[0],
                    end=span[1],
                    text=block.text.strip(),
                    parts=[(block.text, around)],
                    heading=block.section,
                    heading_refs=refs,
                    checked=block.checked,
                    struck=is_struck(around, ctx.doc.format),
                )
                parent_depth = block.list_depth
                drafts.append(parent)
            elif block.kind == "table_cell":
                parent = None
                if block.table in headed_tables and block.row == 0:
                    continue
                rows.setdefault((block.table, block.row), []).append(block)
                if len(rows[(block.table, block.row)]) == 1:
                    drafts.append(
                        _Draft(
                            0,
                            0,
                            "",
                            [],
                            heading=block.section,
                            heading_refs=refs,
                            row=(block.table, block.row),
                        )
                    )
            elif block.list_depth > 0 and parent is not None:
                parent.parts.append((block.text, ctx.around(block)))
            else:
                parent = None
        # Fill the table-row drafts now that every cell of the row is known.
        filled: list[_Draft] = []
        for draft in drafts:
            if draft.row is None:
                filled.append(draft)
                continue
            row_draft = _row_draft(rows[draft.row], ctx, draft.heading)
            if row_draft is not None:
                row_draft.heading_refs = draft.heading_refs
                filled.append(row_draft)
        return filled
    for block in section.blocks:
        if block.kind == "heading":
            refs = _heading_refs(block, ctx) or _heading_refs(section.label, ctx)
        if block.kind != "paragraph" or block.quoted or _span(block) is None:
            continue
        if ctx.italic(block):
            continue
        matches = list(_SENTENCE.finditer(block.text))
        for k, m in enumerate(matches):
            raw = m.group(0)
            a = m.start() + (len(raw) - len(raw.lstrip()))
            b = m.start() + len(raw.rstrip())
            sentence = block.text[a:b]
            if b <= a or sentence.endswith((":", "：")) or is_non_item(sentence):
                continue
            start, end = block.source_span(a, b)
            if k + 1 < len(matches):
                nxt = matches[k + 1]
                around = ctx.doc.source[start : block.starts[nxt.start()]]
            else:
                around = ctx.around(block, start, end)
            drafts.append(
                _Draft(
                    start,
                    end,
                    sentence,
                    [(sentence, around)],
                    heading=block.section,
                    heading_refs=refs,
                    struck=is_struck(around, ctx.doc.format),
                )
            )
    return drafts


def _heading_refs(block: Block, ctx: _Context) -> tuple[str, ...]:
    # "### Short-term improvements ([tracked here](https://…/issues/39))"
    return find_tracking(block.text, ctx.around(block)) if block.kind == "heading" else ()


def _row_draft(cells: list[Block], ctx: _Context, heading: str) -> _Draft | None:
    cells = sorted((c for c in cells if _span(c)), key=lambda c: c.column)
    if not cells or all(_is_placeholder(c.text) for c in cells):
        return None
    by_role: dict[str, tuple[str, str]] = {}
    texts: list[str] = []
    for cell in cells:
        role = column_role(cell.header) if cell.header else None
        if role is None:
            if cell.text.strip():
                texts.append(cell.text.strip())
        elif role not in by_role:
            by_role[role] = (cell.text.strip(), ctx.around(cell))
    start, end = _span(cells[0])[0], _span(cells[-1])[1]
    around = ctx.doc.source[start : ctx.bounds(cells[-1])[1]]
    row_text = " | ".join(c.text.strip() for c in cells if c.text.strip())
    text = " | ".join(texts) if texts else row_text
    if texts and all(is_non_item(t) for t in texts):
        return None  # | None yet | TBD | — |: the row plans nothing
    return _Draft(start, end, text, [(row_text, around)], heading=heading, cells=by_role)


def _item(draft: _Draft, doc: Document, policy: ActionPolicy) -> tuple[ActionItem, dict]:
    text = "\n".join(t for t, _ in draft.parts)
    source = "\n".join(s for _, s in draft.parts)
    info = parse_item(text, source, lesson_home_words=policy.lesson_home_words)
    done = info["done"]
    cells = draft.cells or {}
    if "owner" in cells and not _is_placeholder(cells["owner"][0]):
        info["owner"] = find_owner(cells["owner"][0]) or cells["owner"][0]
    if "due" in cells and not _is_placeholder(cells["due"][0]):
        iso, raw = read_date(cells["due"][0], anchored=False)
        if raw:
            info["due"], info["due_raw"] = iso, raw
    if "tracking" in cells:
        extra = find_tracking(*cells["tracking"])
        info["tracking"] = tuple(dict.fromkeys(extra + info["tracking"]))
    if not info["tracking"] and draft.heading_refs:
        info["tracking"] = draft.heading_refs
    if "status" in cells:
        status = status_done(cells["status"][0])
        if status is not None:
            done = status
    if draft.checked is True or draft.struck:
        done = True
    elif draft.checked is False and done is None:
        done = False
    if (
        done is None
        and _COMPLETED_HEADING.search(draft.heading)
        and not _NOT_COMPLETED.search(draft.heading)
    ):
        done = True
    info["done"] = done
    line, column = doc.line_col(draft.start)
    item = ActionItem(
        text=draft.text,
        line=line,
        column=column,
        owner=info["owner"],
        tracking=info["tracking"],
        due=info["due"],
        done=done,
        lesson_home=info["lesson_home"],
    )
    return item, info


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class ActionCheck:
    items: tuple[ActionItem, ...]
    findings: tuple[Finding, ...]  # category "action-items"
    section_found: bool
    spans: tuple[tuple[int, int], ...] = ()  # source span of each item, parallel to `items`
    sections: tuple[Section, ...] = ()


_MESSAGES = {
    "actions.missing-section": (
        "warning",
        "No action-items section was found. What will change in tooling, process or "
        "documentation because of this incident?",
        "Add an 'Action items' section with at least one change to tooling, process or "
        "documentation, each with an owner and a tracking link.",
    ),
    "actions.empty-section": (
        "warning",
        "The '{title}' section has no action items yet. What will change because of this incident?",
        "List at least one change to tooling, process or documentation under '{title}', each "
        "with an owner and a tracking link.",
    ),
    "actions.too-few-items": (
        "warning",
        "The '{title}' section lists {count} action {noun}; the policy asks for at least "
        "{minimum}.",
        "Add the further changes to tooling, process or documentation that would make this "
        "kind of incident less likely or less harmful.",
    ),
    "actions.missing-owner": (
        "info",
        "Who owns this action item?",
        "Name an owning team or person, e.g. 'Owner: @payments-oncall'.",
    ),
    "actions.missing-tracking": (
        "info",
        "Where is this action item tracked?",
        "Link an issue (#123), a Jira key (OPS-123) or a URL so its progress stays visible.",
    ),
    "actions.missing-due": (
        "info",
        "When is this action item due?",
        "Add a due date, e.g. 'due 2025-03-31'.",
    ),
    "actions.systems-action": (
        "warning",
        "The write-up points at people, and {what}. What change to tooling, defaults or "
        "process would make this incident less likely for whoever is next?",
        "Add an action item that changes the system (an alert, a check, a safer default, a "
        "runbook step), with an owner and a tracking link.",
    ),
    "actions.no-lesson-home": (
        "info",
        "Where will the next person on call find what was learned? No action item updates a "
        "runbook, checklist or decision log.",
        "Add an item that records the lesson in a runbook, checklist or decision log, with a "
        "link to it.",
    ),
}


def _finding(
    doc: Document,
    rule: str,
    start: int,
    end: int,
    sentence: str = "",
    *,
    pack: RulePack | None = None,
    **fmt: Any,
) -> Finding | None:
    """The finding for one check, worded and levelled by the pack's rule of that id (None
    when the pack disables it); `_MESSAGES` words it for a pack without that rule."""
    severity, message, suggestion = _MESSAGES[rule]
    entry = pack.rule(rule) if pack is not None else None
    if entry is not None:
        if not entry.enabled:
            return None
        severity, message, suggestion = entry.severity, entry.message, entry.suggestion
    return doc.finding(
        rule=rule,
        category=CATEGORY,
        severity=severity,
        message=message.format(**fmt),
        suggestion=suggestion.format(**fmt),
        start=start,
        end=end,
        sentence=sentence,
    )


def _add(findings: list[Finding], finding: Finding | None) -> None:
    if finding is not None:
        findings.append(finding)


def _label_span(section: Section) -> tuple[int, int]:
    span = _span(section.label)
    return span if span else (0, 0)


def check_action_items(
    doc: Document, policy: ActionPolicy, pack: RulePack | None = None
) -> ActionCheck:
    """Find the action-items section(s), read the items, report what policy asks for.

    `pack` words, levels or disables each check (its `check: true` rules)."""
    sections = action_sections(doc, policy)
    findings: list[Finding] = []
    if not sections:
        if policy.min_items > 0:
            src = doc.source
            end = 1 if src and src[0] not in "\r\n" else 0
            _add(findings, _finding(doc, "actions.missing-section", 0, end, pack=pack))
        return ActionCheck(items=(), findings=tuple(findings), section_found=False)

    ctx = _Context(doc)
    items: list[ActionItem] = []
    spans: list[tuple[int, int]] = []
    item_findings: list[Finding] = []
    for section in sections:
        for draft in _drafts(section, ctx):
            item, info = _item(draft, doc, policy)
            items.append(item)
            spans.append((draft.start, draft.end))
            open_item = item.done is not True
            checks: Iterable[tuple[bool, str]] = (
                (policy.require_owner and open_item and not item.owner, "actions.missing-owner"),
                (policy.require_tracking and not item.tracking, "actions.missing-tracking"),
                (
                    policy.require_due and open_item and not (item.due or info["due_raw"]),
                    "actions.missing-due",
                ),
            )
            for failed, rule in checks:
                if failed:
                    _add(
                        item_findings,
                        _finding(doc, rule, draft.start, draft.end, sentence=item.text, pack=pack),
                    )

    first = sections[0]
    title = first.title or "Action items"
    a, b = _label_span(first)
    if not items:
        if policy.min_items > 0:
            _add(findings, _finding(doc, "actions.empty-section", a, b, title=title, pack=pack))
    else:
        if len(items) < policy.min_items:
            _add(
                findings,
                _finding(
                    doc,
                    "actions.too-few-items",
                    a,
                    b,
                    title=title,
                    count=len(items),
                    noun="item" if len(items) == 1 else "items",
                    minimum=policy.min_items,
                    pack=pack,
                ),
            )
        if policy.require_lesson_home and not any(i.lesson_home for i in items):
            _add(findings, _finding(doc, "actions.no-lesson-home", a, b, pack=pack))
    findings.extend(item_findings)
    return ActionCheck(
        items=tuple(items),
        findings=tuple(findings),
        section_found=True,
        spans=tuple(spans),
        sections=sections,
    )


# --------------------------------------------------------------------------- summary

SECTION_RULES = (
    "actions.missing-section",
    "actions.empty-section",
    "actions.too-few-items",
    "actions.systems-action",
)


def _get(item: ActionItem | dict, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key)


def _share(count: int, total: int, singular: str, plural: str) -> str:
    # "2 of 3 items have no owner", "none has a tracking link", "the item has no owner"
    if total == 1:
        return f"the item {singular}"
    if count == total:
        return f"no item {plural}"
    verb = singular if count == 1 else singular.replace("has ", "have ", 1)
    return f"{count} of {total} items {verb}"


def lacks_summary(items: Sequence[ActionItem | dict]) -> str:
    """What the action items lack, in one sentence for the comment and the dashboard:
    "2 of 3 items have no owner; none says where the lesson lives". Empty when nothing is
    lacking. Done items are not asked for an owner."""
    if not items:
        return ""
    parts: list[str] = []
    open_items = [i for i in items if _get(i, "done") is not True]
    no_owner = sum(1 for i in open_items if not _get(i, "owner"))
    if no_owner:
        parts.append(_share(no_owner, len(items), "has no owner", "has an owner"))
    no_link = sum(1 for i in items if not _get(i, "tracking"))
    if no_link:
        parts.append(_share(no_link, len(items), "has no tracking link", "has a tracking link"))
    if not any(_get(i, "lesson_home") for i in items):
        parts.append(
            "none says where the lesson lives (a runbook, checklist, alert or test)"
            if len(items) > 1
            else "it does not say where the lesson lives (a runbook, checklist, alert or test)"
        )
    people = [i for i in items if _get(i, "asks_people")]
    if people:
        lines = ", ".join(str(_get(i, "line")) for i in people)
        verb = "asks" if len(people) == 1 else "ask"
        parts.append(
            f"{len(people)} of {len(items)} {verb} people to change rather than the system "
            f"(line {lines})"
        )
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


# Categories of findings that are not about people: the action check's own, input limits,
# and praise (heroics, brilliance point at people but do not blame them).
_NOT_ABOUT_PEOPLE = frozenset({CATEGORY, "input", "heroics", "brilliance"})


def systems_action_finding(
    doc: Document,
    check: ActionCheck,
    items: Sequence[ActionItem],
    findings: Sequence[Finding],
    policy: ActionPolicy,
    pack: RulePack | None = None,
) -> Finding | None:
    """One finding when the narrative's flags point at people and the remedy does too.

    Counterfactual thinking ("if only", "should have") pushes teams toward remedies aimed
    at people (Morris, Moore & Sim 1999); when every open action item asks a person to
    change, or there is none, the postmortem is asked for one change to the system.
    `items` are the check's items with `asks_people` set (nlp.analysis does that).
    """
    if not policy.require_systems_action:
        return None
    if not any(f.category not in _NOT_ABOUT_PEOPLE and not f.suppressed for f in findings):
        return None
    open_items = [i for i in items if i.done is not True]
    if open_items and not all(i.asks_people for i in open_items):
        return None
    if not check.sections:
        # Where the missing-section finding points (the first character), which this one
        # replaces: one finding, not two asking the same question.
        src = doc.source
        end = 1 if src and src[0] not in "\r\n" else 0
        what = "no action-items section says what will change"
        return _finding(doc, "actions.systems-action", 0, end, what=what, pack=pack)
    what = (
        "every action item asks people to change"
        if open_items
        else "no open action item says what will change"
    )
    a, b = _label_span(check.sections[0])
    return _finding(doc, "actions.systems-action", a, b, what=what, pack=pack)
