"""Runs a rule pack over parsed text and returns findings.

One compiled matcher per (pack, pipeline). A match becomes a finding only after its guards
pass: `unless` patterns veto an overlapping match, `context` patterns must appear in the
same sentence, and `agent: person` requires a person as the agent of the matched clause —
the dependency subject in trained mode, the clause to the left in blank mode.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from spacy.attrs import LEMMA, LOWER
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span, Token

from nlp.classifier import available as classifier_available
from nlp.classifier import get_classifier
from nlp.model import SEVERITIES, severity_rank
from nlp.names import name_table
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
from rules.regex_guard import bound_pattern, bounded_regex
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
        self.people = PersonLexicon(name_table(), use_ner="ner" in pipeline.provides)
        vocab = pipeline.nlp.vocab
        self.skip = _matcher(vocab, "skip", pack.skip_sentences)
        self._lock = threading.Lock()
        self.compiled: list[_RuleMatchers] = []
        self.model_rules: list[Rule] = []
        # A model rule's `context` patterns must occur in the sentence it flags and its
        # `unless_sentence` patterns must not: a structural cue the prediction has to meet.
        self.gates: dict[str, _RuleMatchers] = {}
        for rule in pack.active:
            if rule.model:
                if classifier_available():
                    self.rules.append(rule)
                    self.model_rules.append(rule)
                    self.gates[rule.id] = _RuleMatchers(rule, vocab)
                else:
                    self.skipped.append(
                        f"rule {rule.id} needs the trained {rule.model} (nlp/models/"
                        f"{rule.model}), which is not installed; skipped"
                    )
                continue
            missing = rule.requires - pipeline.provides
            if missing:
                self.skipped.append(
                    f"rule {rule.id} needs {', '.join(sorted(missing))}, which the "
                    f"{pipeline.mode} pipeline lacks; skipped"
                )
                continue
            self.rules.append(rule)
            self.compiled.append(_RuleMatchers(rule, vocab))
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
        hits, kinds = self._pattern_hits(doc, roster, action_scope, quoted, only)
        hits += self._model_hits(doc, roster, action_scope, quoted, only, hits, kinds)
        if only is not None:
            return [h for _a, _b, h in hits]
        return self._one_per_span(hits)

    def _pattern_hits(
        self, doc: Doc, roster: Roster, action_scope: bool, quoted: bool, only: str | None
    ) -> tuple[list[tuple[int, int, Hit]], list[str] | None]:
        words = DocWords(doc)
        candidates = [
            c
            for c in self.compiled
            if (only is None or c.rule.id == only)
            and _in_scope(c.rule, action_scope)
            and c.may_match(words)
        ]
        if not candidates:
            return [], None
        # Classifying every token is the costliest step: do it only when a pattern reads the
        # person attribute or when something matched.
        kinds: list[str] | None = None
        if any(c.uses_person for c in candidates):
            kinds = self._annotate(doc, roster)
        # Matchers keep no per-call state, but a lock keeps them safe should spaCy change that.
        with self._lock:
            found = [(c, c.matcher(doc)) for c in candidates]
            found = [(c, m) for c, m in found if m]
            if not found:
                return [], kinds
            if kinds is None:
                kinds = self._annotate(doc, roster)
            skipped = {doc[s].sent.start for _k, s, _e in _run(self.skip, doc)}
            checks = [
                (c, m, _run(c.unless, doc), _run(c.context, doc), _run(c.unless_sentence, doc))
                for c, m in found
            ]

        hits: list[tuple[int, int, Hit]] = []
        for compiled, matches, vetoes, contexts, sentence_vetoes in checks:
            rule = compiled.rule
            context_sents = {doc[s].sent.start for _k, s, _e in contexts}
            vetoed_sents = {doc[s].sent.start for _k, s, _e in sentence_vetoes}
            for _key, s, e in matches:
                if any(vs < e and s < ve for _k, vs, ve in vetoes):
                    continue
                span = doc[s:e]
                sent = span.sent
                if rule.context and sent.start not in context_sents:
                    continue
                if sent.start in skipped or sent.start in vetoed_sents:
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
        return hits, kinds

    def _model_hits(
        self,
        doc: Doc,
        roster: Roster,
        action_scope: bool,
        quoted: bool,
        only: str | None,
        pattern_hits: list[tuple[int, int, Hit]],
        kinds: list[str] | None,
    ) -> list[tuple[int, int, Hit]]:
        """Sentences the trained classifier reads as blame, where no pattern rule already
        flagged them: the rule for the predicted class decides, at its own threshold."""
        rules = {
            r.model_class: r
            for r in self.model_rules
            if (only is None or r.id == only) and _in_scope(r, action_scope)
        }
        if not rules:
            return []
        flagged = set() if only is not None else {a for a, _b, _h in pattern_hits}
        with self._lock:
            skipped = {doc[s].sent.start for _k, s, _e in _run(self.skip, doc)}
            cues = {
                rule.id: (
                    {doc[s].sent.start for _k, s, _e in _run(self.gates[rule.id].context, doc)},
                    {doc[s].sent.start
                     for _k, s, _e in _run(self.gates[rule.id].unless_sentence, doc)},
                )
                for rule in rules.values()
            }
        if kinds is None:
            kinds = self._annotate(doc, roster)
        # Blame needs someone to blame: a sentence naming no person (a name, handle, role,
        # team, pronoun or "anyone") is about the system, whatever it sounds like; such
        # sentences are not even classified, which is most of the classifier's saving.
        people = [
            (sent, who)
            for sent in doc.sents
            if sent.start not in flagged and sent.start not in skipped
            and (who := phrase_kind(list(sent), kinds))
        ]
        if not people:
            return []
        predictions = get_classifier().predict([sent.text for sent, _who in people])
        out: list[tuple[int, int, Hit]] = []
        for (sent, who), prediction in zip(people, predictions, strict=True):
            rule = rules.get(prediction.label)
            if rule is None or prediction.blame < rule.threshold:
                continue
            present, vetoed = cues[rule.id]
            if (rule.context and sent.start not in present) or sent.start in vetoed:
                continue
            if prediction.label == "SELF_BLAME":
                who = SELF
            severity = self._severity(rule, who, quoted)
            if severity is None:
                continue
            span = _trimmed(sent)
            out.append((sent.start, span.start, Hit(
                rule=rule,
                start=span.start_char,
                end=span.end_char,
                severity=severity,
                sentence=sent.text,
                suggestion=rule.suggestion,
            )))
        return out

    def _annotate(self, doc: Doc, roster: Roster) -> list[str]:
        kinds = self.people.annotate(doc, roster)
        for token, kind in zip(doc, kinds, strict=True):
            token._.pmg_person = kind
        return kinds

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
        """Per sentence, the strongest finding of each category (then by pack order), up to
        the pack's sentence_max_findings, never two on the same words."""
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
                # Distinct problems are distinct categories: two rules reading the same
                # kind of problem into one sentence are one flag, the strongest.
                if any(k.start < hit.end and hit.start < k.end or
                       k.rule.category == hit.rule.category for k in kept):
                    continue
                kept.append(hit)
            out.extend(kept)
        out.sort(key=lambda h: h.start)
        return out


def _trimmed(sent: Span) -> Span:
    """The sentence without leading and trailing whitespace or list punctuation."""
    start, end = sent.start, sent.end
    while start < end - 1 and (sent.doc[start].is_space or sent.doc[start].text in "-*•"):
        start += 1
    while end > start + 1 and sent.doc[end - 1].is_space:
        end -= 1
    return sent.doc[start:end]


def _run(matcher: Matcher | None, doc: Doc) -> list:
    return matcher(doc) if matcher is not None else []


def _matcher(vocab, key: str, patterns: tuple) -> Matcher | None:
    if not patterns:
        return None
    matcher = Matcher(vocab)
    # Every REGEX is rewritten to fail at once on a token over MAX_REGEX_INPUT characters:
    # the pack's checks refuse backtracking shapes, but even a sound pattern costs time in
    # the length of what it searches, and a token can be thousands of characters long.
    matcher.add(key, [[bound_pattern(t) for t in p] for p in patterns])
    return matcher


def _in_scope(rule: Rule, action_scope: bool) -> bool:
    if rule.scope == "body":
        return not action_scope
    if rule.scope == "action_items":
        return action_scope
    return True


_WORD_KEYS = ("LOWER", "LEMMA", "ORTH", "TEXT", "NORM")


class DocWords:
    """The word and lemma hashes of a doc, read in one C call (iterating Token objects
    would cost more than the matching it saves), and its distinct lowercase words for
    regular-expression anchors, built only when asked."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.hashes = set(doc.to_array([LOWER, LEMMA]).ravel().tolist())
        self._lowers: list[str] | None = None

    @property
    def lowers(self) -> list[str]:
        if self._lowers is None:
            strings = self.doc.vocab.strings
            self._lowers = [strings[h] for h in set(self.doc.to_array([LOWER]).tolist())]
        return self._lowers


class _Anchor:
    """What one pattern needs present: every required token's word list must meet the doc's
    words (or, for a pattern of regular expressions only, some word must match the first);
    `always` when nothing can be read off the pattern."""

    def __init__(self, pattern: tuple, strings) -> None:
        self.required: list[frozenset[int]] = []
        self.regex: re.Pattern[str] | None = None
        for token in pattern:
            if token.get("OP") not in (None, "+"):
                continue  # optional or negated tokens need not be present
            for key in _WORD_KEYS:
                value = token.get(key)
                words = None
                if isinstance(value, str):
                    words = [value.lower()]
                elif isinstance(value, dict) and isinstance(value.get("IN"), list):
                    words = [str(v).lower() for v in value["IN"]]
                elif (
                    isinstance(value, dict)
                    and isinstance(value.get("REGEX"), str)
                    and self.regex is None
                    and key in ("LOWER", "TEXT", "ORTH")
                ):
                    flags = re.IGNORECASE if key != "LOWER" else 0
                    self.regex = re.compile(bounded_regex(value["REGEX"]), flags)
                if words is not None:
                    self.required.append(frozenset(strings.add(w) for w in words))
        # Cheapest test first: the rarest-looking list rejects most blocks at once.
        self.required.sort(key=len)
        if self.required:
            self.regex = None
        self.always = not self.required and self.regex is None

    def present(self, words: DocWords) -> bool:
        if self.always:
            return True
        if self.required:
            return all(not req.isdisjoint(words.hashes) for req in self.required)
        return any(self.regex.search(w) for w in words.lowers)


class _RuleMatchers:
    """One rule's matchers, with what must be present for it to fire at all: most blocks
    contain no anchor of most rules, and skipping the Matcher for them is what keeps the
    rules cheap next to the pipeline."""

    def __init__(self, rule: Rule, vocab) -> None:
        self.rule = rule
        self.matcher = _matcher(vocab, rule.id, rule.patterns)
        self.unless = _matcher(vocab, rule.id, rule.unless)
        self.context = _matcher(vocab, rule.id, rule.context)
        self.unless_sentence = _matcher(vocab, rule.id, rule.unless_sentence)
        self.anchors = [_Anchor(p, vocab.strings) for p in rule.patterns]
        self.uses_person = any(
            "_" in token
            for key in ("patterns", "unless", "context", "unless_sentence")
            for pattern in getattr(rule, key)
            for token in pattern
        )

    def may_match(self, words: DocWords) -> bool:
        return any(a.present(words) for a in self.anchors)


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


def _opens_clause(doc: Doc, span: Span) -> bool:
    for t in reversed(doc[span.sent.start : span.start]):
        if t.lower_ in CLAUSE_BREAKS or t.is_punct:
            return True
        if not t.lower_.endswith("ly"):
            return False
    return True


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
    # Only a match that opens its clause ("Obviously the engineer…") may look right for its
    # agent; after a verb, the words that follow are its object.
    if not _opens_clause(doc, span):
        return ""
    for i in range(span.end, min(sent.end, span.end + 4)):
        if doc[i].lower_ in CLAUSE_BREAKS:
            break
        if kinds[i] and doc[i].lower_ not in OBJECT_PRONOUNS:
            return kinds[i]
    return ""


# A few compiled packs, least recently used dropped first: the active pack, the shipped one
# and the drafts an admin is trying, per pipeline. Each holds its spaCy matchers, so an
# unbounded cache would keep every pack ever sent to the lint API or the playground.
COMPILED_CACHE = 8
_compiled: OrderedDict[tuple[int, str], tuple[RulePack, CompiledPack]] = OrderedDict()
_compiled_lock = threading.Lock()


def compile_pack(pack: RulePack, pipeline: Pipeline) -> CompiledPack:
    """The compiled form of `pack` for `pipeline`, built once and shared across threads.

    Keyed by the pack object's identity: the entry holds the pack, so its id cannot be
    reused by another pack while the entry lives, and the identity is checked on a hit."""
    key = (id(pack), pipeline.name)
    with _compiled_lock:
        entry = _compiled.get(key)
        if entry is None or entry[0] is not pack:
            entry = (pack, CompiledPack(pack, pipeline))
            _compiled[key] = entry
        _compiled.move_to_end(key)
        while len(_compiled) > COMPILED_CACHE:
            _compiled.popitem(last=False)
        return entry[1]
