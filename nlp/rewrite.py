"""Fills a rule's systems-question template from the matched sentence.

"Sam forgot to run the migration" gives action "run the migration" and action_ing "running
the migration", so the question can be about what made running the migration skippable.
People are never named in a suggestion: names become the role or "someone".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from spacy.tokens import Span, Token

from nlp.people import OTHER, ROLE_NOUNS

MAX_PHRASE = 6
FALLBACK_ACTION = "this step"
# Verbs that frame another action rather than being the action: "failed to run X".
FRAME_LEMMAS = frozenset(
    [
        "fail",
        "forget",
        "neglect",
        "omit",
        "remember",
        "try",
        "decide",
        "choose",
        "want",
        "need",
        "intend",
        "attempt",
        "manage",
        "have",
        "ought",
        "should",
        "could",
        "would",
        "must",
        "might",
        "can",
        "will",
        "do",
        "be",
        "get",
    ]
)
STOP_AT = frozenset(
    [
        ",",
        ";",
        ":",
        ".",
        "!",
        "?",
        "(",
        ")",
        "—",
        "–",
        "because",
        "since",
        "but",
        "although",
        "though",
        "when",
        "while",
        "after",
        "before",
        "until",
        "which",
        "that",
        "if",
        "so",
        "and",
        "or",
        "instead",
        "despite",
        "without",
    ]
)
_DOUBLE = frozenset(
    [
        "run",
        "stop",
        "drop",
        "set",
        "get",
        "put",
        "cut",
        "ship",
        "skip",
        "plan",
        "step",
        "tap",
        "swap",
        "commit",
        "submit",
        "forget",
        "admit",
        "permit",
        "omit",
        "chat",
        "hit",
        "let",
        "sit",
        "spin",
        "split",
        "strip",
        "trim",
        "wrap",
        "zip",
        "pin",
        "rig",
        "scan",
        "tag",
        "log",
        "map",
        "prod",
    ]
)


def gerund(verb: str) -> str:
    verb = verb.lower()
    if not verb.isalpha():
        return verb
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    return verb + "ing"


def _word(token: Token, kinds: Sequence[str]) -> str:
    if kinds[token.i] == OTHER and token.lower_ not in ROLE_NOUNS:
        return "someone" if token.tag_ != "PRP$" and not token.text.endswith("'s") else "their"
    if token.text in ("code", "link"):
        return token.text
    return token.text


def _phrase(tokens: Sequence[Token], kinds: Sequence[str]) -> str:
    words = [_word(t, kinds) for t in tokens if not t.is_space]
    text = " ".join(words)
    text = re.sub(r" (n't|'s|'ve|'re|'ll|'d)\b", r"\1", text)
    return text.strip()


def _action_tokens(span: Span, mode: str) -> list[Token]:
    doc = span.doc
    sent = span.sent
    if mode == "trained":
        verb = span.root
        for _ in range(4):
            if verb.pos_ in ("VERB", "AUX"):
                break
            if verb.head is verb:
                break
            verb = verb.head
        if verb.pos_ not in ("VERB", "AUX"):
            return []
        xcomp = next((c for c in verb.children if c.dep_ == "xcomp" and c.pos_ == "VERB"), None)
        if verb.lemma_ in FRAME_LEMMAS and xcomp is not None:
            verb = xcomp
        if verb.lemma_ in FRAME_LEMMAS:
            return []
        tokens = [verb]
        for child in verb.rights:
            if (
                child.dep_ in ("dobj", "prt", "attr", "dative", "oprd")
                or child.dep_ == "prep"
                and len(tokens) == 1
            ):
                tokens.extend(t for t in child.subtree)
        tokens = sorted(set(tokens), key=lambda t: t.i)
        out = []
        for t in tokens:
            if t.lower_ in STOP_AT and t is not verb:
                break
            out.append(t)
        return out[:MAX_PHRASE]
    # Blank: the words after a framing match ("failed to", "should have"), else the match's
    # last word and what follows it, up to the end of the clause.
    last = span[-1]
    start = span.end if last.lemma_.lower() in FRAME_LEMMAS or last.lower_ == "to" else last.i
    out = []
    for i in range(start, min(sent.end, start + MAX_PHRASE)):
        t = doc[i]
        if t.lower_ in STOP_AT or t.is_punct:
            break
        out.append(t)
    return out


def fill(template: str, span: Span, kinds: Sequence[str], mode: str) -> str:
    tokens = _action_tokens(span, mode)
    if tokens:
        first = tokens[0]
        verb = first.lemma_.lower() if first.lemma_ else first.lower_
        rest = _phrase(tokens[1:], kinds)
        action = f"{verb} {rest}".strip()
        action_ing = f"{gerund(verb)} {rest}".strip()
        obj = rest or FALLBACK_ACTION
    else:
        action = action_ing = obj = FALLBACK_ACTION
    actor = _actor(span, kinds)
    values = {
        "action": action,
        "action_ing": action_ing,
        "object": obj,
        "actor": actor,
        "match": _phrase(list(span), kinds).lower(),
    }
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), template)


def _actor(span: Span, kinds: Sequence[str]) -> str:
    sent = span.sent
    for t in sent:
        lower = t.lower_.rstrip("s")
        if kinds[t.i] == OTHER and (t.lower_ in ROLE_NOUNS or lower in ROLE_NOUNS):
            compound = [c for c in t.lefts if c.dep_ == "compound"] if t.dep_ else []
            words = [c.lower_ for c in compound] + [t.lower_]
            return "the " + " ".join(words)
    return "the people involved"


suggest = fill
