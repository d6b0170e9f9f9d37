"""Runs a rule pack over parsed text and returns findings.

One compiled matcher per (pack, pipeline). A match becomes a finding only after its guards
pass: `unless` patterns veto an overlapping match, `context` patterns must appear in the
same sentence, and `agent: person` requires a person as the agent of the matched clause —
the dependency subject in trained mode, the clause to the left in blank mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spacy.matcher import Matcher
from spacy.tokens import Doc, Span, Token

from nlp.model import SEVERITIES, severity_rank
from nlp.people import (
    OTHER,
    PERSON_ACTION_NOUNS,
    SELF,
    SYSTEM_NOUNS,
    PersonLexicon,
    Roster,
    phrase_kind,
)
from nlp.pipeline import Pipeline
from nlp.rewrite import suggest
from rules.schema import Rule, RulePack, _register_extension

CLAUSE_BREAKS = frozenset(
    "; : — – ( ) because since but although though whereas when while after before until "
    "unless so which that if whether and".split()
)
# "and" ends a clause only for the left scan: "Sam deployed and the job failed to start".
SUBJECT_DEPS = ("nsubj", "nsubjpass", "csubj", "csubjpass", "expl")
QUANTIFIERS = frozenset("one some all none each any several many most both either neither".split())


@dataclass(frozen=True)
class Hit:
    """A rule match in one block's text that passed its guards."""

    rule: Rule
    start: int  # character offsets in the block text
    end: int
    severity: str
    sentence: str
    suggestion: str


class CompiledPack:
    """A pack's rules compiled for one pipeline; rules it cannot run are listed."""

    def __init__(self, pack: RulePack, pipeline: Pipeline) -> None:
        _register_extension()
        self.pack = pack
        self.pipeline = pipeline
        self.skipped: list[str] = []
        self.rules: list[Rule] = []
        self.people = PersonLexicon(pipeline.lexeme_prob, use_ner="ner" in pipeline.provides)
        vocab = pipeline.nlp.vocab
        self.matcher = Matcher(vocab)
        self.unless = Matcher(vocab)
        self.context = Matcher(vocab)
        self.unless_sentence = Matcher(vocab)
        self.skip = Matcher(vocab)
        if pack.skip_sentences:
            self.skip.add("skip", [list(p) for p in pack.skip_sentences])
        self._lock = threading.Lock()
        for rule in pack.active:
            missing = rule.requires - pipeline.provides
            if missing:
                self.skipped.append(
                    f"rule {rule.id} needs {', '.join(sorted(missing))}, which the "
                    f"{pipeline.mode} pipeline lacks; skipped"
                )
                continue
            self.rules.append(rule)
            self.matcher.add(rule.id, [list(p) for p in rule.patterns])
            if rule.unless:
                self.unless.add(rule.id, [list(p) for p in rule.unless])
            if rule.context:
                self.context.add(rule.id, [list(p) for p in rule.context])
            if rule.unless_sentence:
                self.unless_sentence.add(rule.id, [list(p) for p in rule.unless_sentence])
        self.by_id = {r.id: r for r in self.rules}

    def run(
        self,
        doc: Doc,
        roster: Roster,
        *,
        action_scope: bool,
        quoted: bool,
        only: str | None = None,
    ) -> list[Hit]:
        """Findings for one parsed block; `only` keeps one rule and skips deduplication."""
        kinds = self.people.annotate(doc, roster)
        for token, kind in zip(doc, kinds, strict=True):
            token._.pmg_person = kind
        vocab_strings = doc.vocab.strings
        # Matchers keep no per-call state, but a lock keeps them safe should spaCy change that.
        with self._lock:
            matches = _run(self.matcher, doc)
            vetoes = _run(self.unless, doc)
            contexts = _run(self.context, doc)
            sentence_vetoes = _run(self.unless_sentence, doc)
            skipped = {doc[s].sent.start for _k, s, _e in _run(self.skip, doc)}
        veto_spans: dict[str, list[tuple[int, int]]] = {}
        for key, s, e in vetoes:
            veto_spans.setdefault(vocab_strings[key], []).append((s, e))
        context_sents = _sentences_by_rule(doc, contexts)
        vetoed_sents = _sentences_by_rule(doc, sentence_vetoes)

        hits: list[tuple[int, int, Hit]] = []
        for key, s, e in matches:
            rule = self.by_id[vocab_strings[key]]
            if only is not None and rule.id != only:
                continue
            if rule.scope == "body" and action_scope:
                continue
            if rule.scope == "action_items" and not action_scope:
                continue
            if any(vs < e and s < ve for vs, ve in veto_spans.get(rule.id, ())):
                continue
            span = doc[s:e]
            sent = span.sent
            if rule.context and sent.start not in context_sents.get(rule.id, ()):
                continue
            if sent.start in skipped or sent.start in vetoed_sents.get(rule.id, ()):
                continue
            who = self._who(rule, span, kinds)
            if who is None:
                continue
            severity = self._severity(rule, who, quoted)
            if severity is None:
                continue
            hit = Hit(
                rule=rule,
                start=span.start_char,
                end=span.end_char,
                severity=severity,
                sentence=sent.text,
                suggestion=suggest(rule.suggestion, span, kinds, self.pipeline.mode),
            )
            hits.append((sent.start, s, hit))
        if only is not None:
            return [h for _a, _b, h in hits]
        return self._one_per_span(hits)

    def _who(self, rule: Rule, span: Span, kinds: Sequence[str]) -> str | None:
        """The person kind behind a match; None when the rule's agent guard fails."""
        if rule.agent == "any":
            who = phrase_kind(list(span), kinds)
        else:
            who = agent_kind(span, kinds, parsed="parser" in self.pipeline.provides)
            if not who:
                return None
        if who == SELF and not rule.self_blame:
            return None
        return who

    def _severity(self, rule: Rule, who: str, quoted: bool) -> str | None:
        severity = rule.severity
        settings = self.pack.settings
        if who == SELF:
            if settings.self_blame == "off":
                return None
            severity = _cap(severity, settings.self_blame)
        if quoted:
            if settings.quoted == "off":
                return None
            severity = _cap(severity, settings.quoted)
        return severity

    def _one_per_span(self, hits: list[tuple[int, int, Hit]]) -> list[Hit]:
        """Keep the strongest finding per sentence (then by pack order): one flag per span."""
        order = {r.id: i for i, r in enumerate(self.rules)}
        limit = self.pack.settings.sentence_max_findings
        by_sentence: dict[int, list[Hit]] = {}
        for sent_start, _s, hit in hits:
            by_sentence.setdefault(sent_start, []).append(hit)
        out: list[Hit] = []
        for group in by_sentence.values():
            group.sort(key=lambda h: (-severity_rank(h.severity), order[h.rule.id], h.start))
            kept: list[Hit] = []
            for hit in group:
                if len(kept) >= limit:
                    break
                if any(k.start < hit.end and hit.start < k.end for k in kept):
                    continue
                kept.append(hit)
            out.extend(kept)
        out.sort(key=lambda h: h.start)
        return out


def _run(matcher: Matcher, doc: Doc) -> list:
    return matcher(doc) if len(matcher) else []


def _sentences_by_rule(doc: Doc, matches: list) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for key, s, _e in matches:
        out.setdefault(doc.vocab.strings[key], set()).add(doc[s].sent.start)
    return out


def _cap(severity: str, ceiling: str) -> str:
    return SEVERITIES[min(severity_rank(severity), severity_rank(ceiling))]


def agent_kind(span: Span, kinds: Sequence[str], *, parsed: bool) -> str:
    """Person kind of the agent of the clause the match sits in ('' when not a person)."""
    if parsed:
        found, subject = dependency_subject(span)
        if found:
            return subject_kind(subject, kinds) if subject is not None else ""
    return clause_kind(span, kinds)


def _governing_verb(span: Span) -> Token:
    token = span.root
    for _ in range(6):
        is_verb = token.pos_ in ("VERB", "AUX") and token.dep_ not in ("aux", "auxpass", "neg")
        if is_verb or token.head is token:
            return token
        token = token.head
    return token


def dependency_subject(span: Span) -> tuple[bool, Token | None]:
    """(found, agent) of the matched clause from the parse, following shared subjects.

    A passive without a "by" agent is found with no agent: "the repo was accidentally
    deleted" names what was affected, not who acted."""
    verb = _governing_verb(span)
    for _ in range(6):
        agent = next((c for c in verb.children if c.dep_ == "agent"), None)
        if agent is not None:
            pobj = next((c for c in agent.children if c.dep_ == "pobj"), None)
            if pobj is not None:
                return True, pobj
        subject = next((c for c in verb.children if c.dep_ in SUBJECT_DEPS), None)
        if subject is None:
            # Small parsers sometimes attach a name before its verb as a compound.
            subject = next(
                (
                    c
                    for c in verb.lefts
                    if c.dep_ in ("compound", "npadvmod", "dep")
                    and c.pos_ in ("PROPN", "PRON", "NOUN")
                ),
                None,
            )
        if subject is not None:
            if subject.dep_ in ("nsubjpass", "csubjpass"):
                return True, None
            # "Bob's change is what took the API down": the pseudo-cleft's real subject
            # belongs to the verb above.
            if subject.lower_ in ("what", "which", "that") and verb.head is not verb:
                verb = verb.head
                continue
            return True, subject
        if verb.dep_ in ("relcl", "acl") and verb.head is not verb:
            return True, verb.head
        if verb.dep_ in ("xcomp", "conj", "advcl", "ccomp", "pcomp") and verb.head is not verb:
            verb = verb.head
            continue
        return False, None
    return False, None


def subject_kind(subject: Token, kinds: Sequence[str]) -> str:
    """Kind of a subject phrase: its head, a possessor of an action noun, or an 'of' member."""
    head = subject
    if head.lower_ in QUANTIFIERS:
        of = next((c for c in head.children if c.dep_ == "prep" and c.lower_ == "of"), None)
        pobj = next((c for c in of.children if c.dep_ == "pobj"), None) if of else None
        if pobj is not None:
            head = pobj
    if kinds[head.i]:
        return kinds[head.i]
    group = [c for c in head.children if c.dep_ in ("conj", "appos")]
    if head.lemma_ in PERSON_ACTION_NOUNS or head.lower_ in PERSON_ACTION_NOUNS:
        # "Maria's change", "the change by Maria"
        group += [c for c in head.children if c.dep_ == "poss"]
        for prep in (c for c in head.children if c.dep_ == "prep" and c.lower_ == "by"):
            group += [c for c in prep.children if c.dep_ == "pobj"]
    return phrase_kind(group, kinds)


def _adjacent(doc: Doc, i: int, start: int) -> bool:
    """Only adverbs, auxiliaries and negation stand between token i and position start."""
    return all(
        t.lower_.endswith("ly") or t.lower_ in BE_FORMS or t.lower_ in FILLERS
        for t in doc[i + 1 : start]
    )


LEFT_WINDOW = 16
OBJECT_PRONOUNS = frozenset("me us him them her".split())
NON_VERBAL_STARTS = frozenset(
    "without by instead rather despite with the a an his her their to in on for of".split()
)
FILLERS = frozenset("not n't never also then still did does do has have had will would".split())
SHARED_SUBJECT_CONJ = frozenset(("but", "then", "or"))
BE_FORMS = frozenset(["was", "were", "been", "being", "is", "are", "be", "got", "gets", "get"])


def _passive(span: Span) -> bool:
    """Blank-mode passive check: a form of 'be' just before the match."""
    doc = span.doc
    if span[-1].lower_ in ("been", "be", "being"):
        return True
    for i in range(span.start - 1, max(span.sent.start, span.start - 3) - 1, -1):
        if doc[i].lower_ in BE_FORMS:
            return True
        if not (doc[i].lower_.endswith("ly") or doc[i].lower_ in ("not", "n't", "also")):
            return False
    return False


def _by_agent(span: Span, kinds: Sequence[str]) -> str:
    doc = span.doc
    for i in range(span.end, min(span.sent.end, span.end + 6)):
        if doc[i].lower_ == "by":
            for j in range(i + 1, min(span.sent.end, i + 4)):
                if kinds[j]:
                    return kinds[j]
    return ""


def clause_kind(span: Span, kinds: Sequence[str]) -> str:
    """Blank-mode agent: a person in the same clause, left of the match (or just after it)."""
    doc = span.doc
    sent = span.sent
    if _passive(span):
        return _by_agent(span, kinds)
    found = ""
    # A match that opens with a preposition or determiner follows the verb's object, so the
    # thing right before it is that object, not the subject.
    verbal = span[0].lower_ not in NON_VERBAL_STARTS
    for i in range(span.start - 1, max(sent.start, span.start - LEFT_WINDOW) - 1, -1):
        token = doc[i]
        if token.lower_ in CLAUSE_BREAKS and token.lower_ != "and":
            # "An operator used X but forgot to type -n": a conjunction right before the
            # verb shares the subject of the clause before it.
            if not (token.lower_ in SHARED_SUBJECT_CONJ and i >= span.start - 2):
                break
            continue
        if kinds[i]:
            found = kinds[i]
            if found == OTHER:
                return found
        elif (
            verbal and not found and token.lower_ in SYSTEM_NOUNS and _adjacent(doc, i, span.start)
        ):
            return ""  # "the script failed to start": a thing right before the verb acts
    if found:
        return found
    for i in range(span.end, min(sent.end, span.end + 4)):
        if doc[i].lower_ in CLAUSE_BREAKS:
            break
        if kinds[i] and doc[i].lower_ not in OBJECT_PRONOUNS:
            return kinds[i]
    return ""


def sentence_people(sent: Span, kinds: Sequence[str]) -> Iterable[Token]:
    return (t for t in sent if kinds[t.i])


_compiled: dict[tuple[int, str], tuple[RulePack, CompiledPack]] = {}
_compiled_lock = threading.Lock()


def compile_pack(pack: RulePack, pipeline: Pipeline) -> CompiledPack:
    """The compiled form of `pack` for `pipeline`, built once and shared across threads."""
    key = (id(pack), pipeline.name)
    with _compiled_lock:
        entry = _compiled.get(key)
        if entry is None or entry[0] is not pack:
            if len(_compiled) > 32:
                _compiled.clear()
            entry = (pack, CompiledPack(pack, pipeline))
            _compiled[key] = entry
        return entry[1]
