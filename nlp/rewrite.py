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

MAX_PHRASE = 7
FALLBACK_ACTION = "this step"
# Verbs that frame another action rather than being the action: "failed to run X".
FRAME_LEMMAS = frozenset(
    "fail forget neglect omit remember try decide choose want need intend attempt manage "
    "have ought should could would must might can will do be get".split()
)
STOP_AT = frozenset(
    ", ; : . ! ? ( ) — – because since but although though when while after before until "
    "which that if so and or instead despite without".split()
)
PARTICLES = frozenset("back up down out off over in on away".split())
DETERMINERS = frozenset("the a an his her their its this that".split())
# Matches that start after the verb and its object: the verb is not in reach without a parse.
PREPOSITIONAL = frozenset("without despite with by instead rather to".split())
_DOUBLE = frozenset(
    "run stop drop set get put cut ship skip plan step tap swap commit submit forget admit "
    "permit omit chat hit let sit spin split strip trim wrap zip pin rig scan tag log map "
    "prod".split()
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
        return "their" if token.lower_ in ("his", "her", "their", "my") else "someone"
    return token.text


def _phrase(tokens: Sequence[Token], kinds: Sequence[str]) -> str:
    text = " ".join(_word(t, kinds) for t in tokens if not t.is_space)
    return re.sub(r" (n't|'s|'ve|'re|'ll|'d)\b", r"\1", text).strip()


def _trained_action(span: Span) -> list[Token]:
    verb = span.root
    for _ in range(4):
        if verb.pos_ in ("VERB", "AUX") or verb.head is verb:
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
        takes_object = child.dep_ in ("dobj", "prt", "attr", "dative", "oprd")
        particle = child.dep_ == "advmod" and child.lower_ in PARTICLES
        first_prep = child.dep_ == "prep" and len(tokens) == 1
        if takes_object or particle or first_prep:
            tokens.extend(child.subtree)
    out = []
    for t in sorted(set(tokens), key=lambda t: t.i):
        if t.lower_ in STOP_AT and t is not verb:
            break
        out.append(t)
    return out[:MAX_PHRASE]


def _blank_action(span: Span) -> list[Token]:
    """Without a parse: the words after a framing match ("failed to", "should have"), the
    verb before a determiner-led match ("rolled back | the wrong service"), else the match's
    last word and what follows it, up to the end of the clause."""
    doc, sent = span.doc, span.sent
    first, last = span[0], span[-1]
    if first.lower_ in PREPOSITIONAL:
        return []
    if first.lower_ in DETERMINERS and span.start > sent.start:
        start = span.start - 1
        while start > sent.start and doc[start].lower_ in PARTICLES:
            start -= 1
    elif last.lemma_.lower() in FRAME_LEMMAS or last.lower_ == "to":
        start = span.end
    elif len(span) > 1 and _verb_like(first):
        start = span.start  # "missed | the second alert": the match opens with its verb
    else:
        start = last.i
    while start < sent.end and doc[start].lower_ in ("to", "not", "n't", "have", "'ve"):
        start += 1
    out = []
    for t in doc[start : min(sent.end, start + MAX_PHRASE)]:
        if (t.lower_ in STOP_AT or t.is_punct) and out:
            break
        out.append(t)
    return [t for t in out if not t.is_punct]


DANGLING = frozenset(
    "of to the a an in on for with against from by at into and or our their".split()
)


def _tidy(tokens: list[Token]) -> list[Token]:
    """Drop a tail that a length cut left dangling: "testing it against a copy of"."""
    while len(tokens) > 1 and tokens[-1].lower_ in DANGLING:
        tokens = tokens[:-1]
    return tokens


def _verb_like(token: Token) -> bool:
    lower = token.lower_
    if lower in FRAME_LEMMAS or lower in DETERMINERS or lower in PREPOSITIONAL:
        return False
    if lower.endswith("ly") or token.is_punct:
        return False
    return token.lemma_.lower() != lower or lower.endswith("ed")


def fill(template: str, span: Span, kinds: Sequence[str], mode: str) -> str:
    tokens = _tidy(_trained_action(span) if mode == "trained" else _blank_action(span))
    if tokens:
        first = tokens[0]
        verb = (first.lemma_ or first.lower_).lower()
        rest = _phrase(tokens[1:], kinds)
        action = f"{verb} {rest}".strip()
        action_ing = f"{gerund(verb)} {rest}".strip()
        obj = rest or FALLBACK_ACTION
    else:
        action = action_ing = obj = FALLBACK_ACTION
    values = {
        "action": action,
        "action_ing": action_ing,
        "object": obj,
        "actor": _actor(span, kinds),
        "match": _phrase(list(span), kinds).lower(),
    }
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), m.group(0)), template)


def _actor(span: Span, kinds: Sequence[str]) -> str:
    """The role named in the sentence ("the on-call engineer"), never a person's name."""
    doc = span.doc
    for t in span.sent:
        if kinds[t.i] == OTHER and (t.lower_ in ROLE_NOUNS or t.lower_.rstrip("s") in ROLE_NOUNS):
            nxt = doc[t.i + 1] if t.i + 1 < len(doc) else None
            if nxt is not None and kinds[nxt.i] == OTHER and nxt.lower_.rstrip("s") in ROLE_NOUNS:
                continue  # "on-call | engineer": the head noun names the role
            prev = doc[t.i - 1] if t.i > 0 else None
            words = [t.lower_]
            if prev is not None and prev.lower_.rstrip("s") in ROLE_NOUNS:
                words.insert(0, prev.lower_)
            return "the " + " ".join(words)
    return "the people involved"


suggest = fill
