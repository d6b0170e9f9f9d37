"""What makes a heading, a label or a list item read as "what we will change".

Teams head their action items in many ways ("Corrective actions", "What we're doing about
it", "How are we preventing it from happening again?", "5. Prevention", "TODO"), so a
fixed list of titles misses most real postmortems. This module classifies a heading by
its word classes instead: stems of action / prevention / remediation / follow-up words,
first-person future ("what we will do", "how are we preventing"), and vetoes for what
happened during the incident ("Actions taken", "Timeline") or advice to readers ("What
should you do?").

`heading_kind` says "strong" (opens a section by itself), "weak" (lessons, takeaways,
changes, fixes: a section only when nothing strong exists and its items read as future
changes) or None. `reads_as_change` judges one item for the heading-less fallback.

Pure: no I/O, no spaCy (the blank pipeline mode has no tagger, and headings are short).
"""

from __future__ import annotations

import re
import unicodedata

# Contractions first: with the apostrophe dropped, "we're" would read as the past "were".
_CONTRACTIONS = (
    (re.compile(r"\b(we|they|you)['’]re\b"), r"\1 are"),
    (re.compile(r"\b(we|they|you|i)['’]ll\b"), r"\1 will"),
    (re.compile(r"\b(we|they|you|i)['’]d\b"), r"\1 would"),
    (re.compile(r"\b(we|they|you|i)['’]ve\b"), r"\1 have"),
    (re.compile(r"\bwon['’]t\b"), "will not"),
    (re.compile(r"\b(\w+)n['’]t\b"), r"\1 not"),
    (re.compile(r"\b(what|who|how|that|there|it|here)['’]s\b"), r"\1 is"),
    (re.compile(r"\blet['’]s\b"), "let us"),
)
_ASIDE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|<[^<>]*>")
_NUMBERING = re.compile(
    r"^\s*(?:(?:\d+(?:\.\d+)*|[ivxlc]+|[a-z])[.)]\s+|\d+(?:\.\d+)+\s+|\d+\s+(?=[a-z]))"
)

# Stems (token prefixes) of words that name planned change by themselves.
_STRONG_STEMS = (
    "action",  # action items, review actions, actionable
    "remedi",  # remediation, remediate, remedial
    "prevent",  # prevention, preventive, preventative, preventing
    "corrective",
    "correction",
    "countermeasure",
    "followup",
    "todo",
    "improvement",  # improvements, areas for improvement
    "safeguard",
    "commitment",
)
# Two-word constructions that name planned change.
_STRONG_PAIRS = frozenset(
    {
        ("follow", "up"),
        ("next", "step"),
        ("next", "steps"),
        ("going", "forward"),
        ("moving", "forward"),
        ("looking", "ahead"),
        ("future", "work"),
        ("further", "work"),
        ("work", "items"),
        ("work", "item"),
        ("to", "do"),
        ("do", "differently"),
    }
)
# Stems that name lessons or changes but also head narrative ("Lessons learned", "Fixes",
# "Mitigation"): only a fallback, and only when the items read as future changes.
_WEAK_STEMS = (
    "lesson",
    "learn",
    "takeaway",
    "recommend",
    "change",
    "fix",
    "mitigat",
    "improv",
    "plan",
    "hardening",
)
_WE = frozenset({"we", "us", "our", "ourselves", "team"})
_FUTURE = frozenset({"will", "shall", "going", "plan", "planning", "intend", "next", "future"})
_BE = frozenset({"are", "am", "is"})
# A heading about the incident itself, or advice addressed to readers or customers.
_VETO = frozenset(
    {
        "taken",
        "timeline",
        "during",
        "happened",
        "did",
        "went",
        "was",
        "were",
        "occurred",
        "you",
        "your",
        "required",
    }
)
# Progressive verbs that report rather than act ("what we are seeing").
_NOT_ACTING = frozenset({"seeing", "observing", "hearing", "reading", "saying", "thinking"})


def heading_words(text: str) -> tuple[str, ...]:
    """Lower-case words of a heading, contractions expanded, numbering and asides gone."""
    text = unicodedata.normalize("NFKC", text).casefold()
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    bare = _ASIDE.sub(" ", text)
    if re.search(r"[^\W_]", bare):
        text = bare
    text = _NUMBERING.sub("", text)
    words = re.findall(r"[^\W_]+", text)
    while words and words[0].isdigit() and len(words) > 1:
        words.pop(0)
    return tuple(words)


def _has_stem(words: tuple[str, ...], stems: tuple[str, ...]) -> bool:
    return any(w.startswith(stems) for w in words)


def _we_will(words: tuple[str, ...]) -> bool:
    # "what we will do", "how are we preventing it", "what we are doing about it",
    # "what will we do differently", "how will we do better in the future"
    if not _WE.intersection(words):
        return False
    if _FUTURE.intersection(words):
        return True
    return any(
        a in _BE and b.endswith("ing") and b not in _NOT_ACTING
        for a, b in zip(words, words[1:], strict=False)
    ) or any(
        a in _BE and b in _WE and c.endswith("ing") and c not in _NOT_ACTING
        for a, b, c in zip(words, words[1:], words[2:], strict=False)
    )


def heading_kind(text: str) -> str | None:
    """"strong", "weak" or None: how far a heading reads as a section of planned change."""
    words = heading_words(text)
    if not words or len(words) > 14 or _VETO.intersection(words):
        return None
    compact = "".join(words)
    if compact.startswith(("followup", "todo", "actionitem", "nextstep")):
        return "strong"
    if _has_stem(words, _STRONG_STEMS):
        return "strong"
    pairs = set(zip(words, words[1:], strict=False))
    if pairs & _STRONG_PAIRS or _we_will(words):
        return "strong"
    if _has_stem(words, _WEAK_STEMS):
        return "weak"
    return None


# --------------------------------------------------------------------------- items

# Verbs an action item starts with ("Add an alert", "Investigate options", "Spike ways"),
# as stems so "Adding" / "Updated"-style variants still read the same.
_CHANGE_VERBS = frozenset(
    """add adopt alert allow announce archive audit automate avoid block build change check
    clean configure consider create define delete deploy deprecate design disable disband
    document enable enforce ensure establish evaluate explore extend find fix implement
    improve increase install introduce investigate limit look make merge migrate monitor
    move notify pin plan prevent protect publish purge reduce refactor remove rename replace
    require research restrict review revoke rewrite rotate run schedule separate set spike
    split standardise standardize start stop switch test track try update upgrade use
    validate verify write speak talk ask tell reach contact discuss share communicate follow
    reflect get keep go do send raise open close drop restore backfill rehearse practise
    practice drill schedule""".split()
)


def is_change_verb(word: str) -> bool:
    """A verb an action item opens with ("Add", "Spike", "Speak", "Rehearse")."""
    word = word.casefold()
    return word in _CHANGE_VERBS or (word.endswith("e") and word[:-1] in _CHANGE_VERBS)
_MODAL_FUTURE = re.compile(
    r"\b(?:we|team|they)\s+(?:will|shall|need\s+to|must|should|plan\s+to|are\s+going\s+to|"
    r"intend\s+to|are\s+(?:adding|building|changing|moving|planning|working))\b|"
    r"\b(?:will|to)\s+be\s+(?:added|updated|fixed|changed|replaced|removed|documented)\b",
    re.IGNORECASE,
)
_LEAD = re.compile(r"^[\s\-*+•>#\d.)\[\]xX✅☐☑]*(?:\*\*|__)?\s*")


def reads_as_change(text: str) -> bool:
    """Whether one item reads as a future change: an imperative verb first, or "we will /
    need to / should …"; an owner, ticket or date is judged by the caller."""
    body = _LEAD.sub("", text.strip())
    first = re.match(r"[A-Za-z]+", body)
    if first and is_change_verb(first.group(0)):
        return True
    return bool(_MODAL_FUTURE.search(body))
