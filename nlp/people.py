"""Who is a person in a sentence: the check that separates blame from systems talk.

"Alice failed to restart it" and "the deploy script failed to start" share a surface form;
only the agent differs. A token is a person when it is a pronoun, an @mention, a role noun,
a name from the incident's roster, a PERSON entity (trained mode), or a capitalised word
that is far more common capitalised than lowercase (a name, by the lookup tables). NER
labels such as ORG or GPE on a capitalised subject are not trusted: small models give them
to plenty of first names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from spacy.tokens import Doc, Token

from nlp.names import NameTable

OTHER = "other"
SELF = "self"

# "We" is the team describing itself: its own, configurable severity. "I" is one person
# and is treated like any other individual, as the reference advises for self-blame.
SELF_PRONOUNS = frozenset(["we", "us", "our", "ourselves"])
PLURAL_PRONOUNS = frozenset("they them themselves".split())
ANTECEDENT_WINDOW = 30
OTHER_PRONOUNS = frozenset(
    "i me myself he him himself she herself someone somebody anyone anybody who whoever".split()
)
# Possessives make a person only of what a person can own as an act: "her change".
POSSESSIVES = {"my": OTHER, "his": OTHER, "her": OTHER, "their": OTHER, "our": SELF}
# Roles people hold in incident work. Plural and hyphenated forms are matched by `_role`.
ROLE_NOUNS = frozenset(
    "engineer developer dev programmer coder operator admin administrator sre dba oncall "
    "on-call on-caller oncaller responder reviewer approver intern contractor technician "
    "staff employee author committer maintainer manager lead captain owner person human "
    "individual colleague teammate member team squad ops crew analyst architect tester qa "
    "sysadmin newcomer hire junior senior specialist consultant".split()
)
# Nouns a person can be asked to stand behind: "Bob's change", "her commit".
PERSON_ACTION_NOUNS = frozenset(
    "change commit push deploy deployment edit mistake error typo pr decision handling "
    "command fix patch config update migration approval merge action failure oversight "
    "lapse slip negligence carelessness omission refusal choice call "
    "rollout release cleanup purge".split()
)
# Things that act in incident write-ups; in blank mode the nearest one left of a match is
# taken as the subject ("jobs failing to execute", "the script failed to start").
SYSTEM_NOUNS = frozenset(
    "script scripts job jobs service services check checks alert alerts retry retries "
    "cron canary node nodes cluster clusters pipeline pipelines build builds server "
    "servers database databases db cache caches queue queues worker workers pod pods "
    "container containers system systems tool tools bot bots automation monitor "
    "monitoring dashboard runbook deploy deployment deployments process processes request "
    "requests query queries probe probes test tests suite config configuration code "
    "function functions command commands migration migrations backup backups replica "
    "replicas primary proxy balancer controller scheduler daemon agent agents webhook "
    "webhooks api endpoint endpoints app application applications disk disks network "
    "certificate certificates flag flags".split()
)
# Adjectives that make a possessed thing an act of its owner: "her broken config".
FAULT_ADJECTIVES = frozenset(
    "misconfigured broken faulty bad buggy careless sloppy wrong incorrect botched mistyped "
    "untested reckless negligent hasty".split()
)
# Tools and services that are named like people or get PERSON labels; they are systems.
SYSTEM_NAMES = frozenset(
    "jenkins github gitlab bitbucket terraform ansible kubernetes k8s argo argocd "
    "dependabot renovate cron puppet chef helm circleci travis buildkite spinnaker heroku "
    "aws gcp azure cloudflare datadog pagerduty grafana prometheus sentry slack jira "
    "confluence docker postgres postgresql mysql redis kafka nginx okta vault consul "
    "nomad".split()
)
# Tags a name never gets; ADJ and ADV are not here because small models give them to
# unfamiliar first names ("Anneliese" as an adjective).
NOT_NAME_POS = frozenset("VERB AUX ADP DET CCONJ SCONJ PART NUM PUNCT SYM INTJ".split())
_MENTION = re.compile(r"^@[A-Za-z0-9][\w.-]*$")
_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march "
    "april may june july august september october november december".split()
)


class Roster:
    """Names of the incident's participants, matched token by token (case-insensitive)."""

    def __init__(self, people: Iterable[str] = ()) -> None:
        parts: set[str] = set()
        for person in people:
            for part in re.split(r"[\s,]+", person.strip()):
                part = part.lstrip("@").strip().lower()
                if part:
                    parts.add(part)
        self.parts = frozenset(parts)

    def __contains__(self, word: str) -> bool:
        return word.lstrip("@").lower() in self.parts


_NOT_PLURAL = frozenset(
    "was is has does its this thus always sometimes perhaps status process access address "
    "analysis basis class less loss across yes bus dns https alias canvas series news".split()
)


def _looks_plural(lower: str) -> bool:
    return (
        len(lower) > 3
        and lower.isalpha()
        and lower.endswith("s")
        and not lower.endswith(("ss", "us", "is"))
        and lower not in _NOT_PLURAL
    )


def _role(lower: str) -> bool:
    if lower in ROLE_NOUNS:
        return True
    if lower.endswith("s") and lower[:-1] in ROLE_NOUNS:
        return True
    if "-" not in lower:
        return False
    parts = lower.split("-")
    if parts[-1] in ROLE_NOUNS:
        return True
    # Redacted participants: "team-member-1", "engineer-2".
    return parts[-1].isdigit() and any(p in ROLE_NOUNS for p in parts[:-1])


class PersonLexicon:
    """Classifies tokens as a person (`other` or `self`) or not, for one pipeline."""

    def __init__(self, names: NameTable, use_ner: bool) -> None:
        self.names = names
        self.use_ner = use_ner

    def looks_like_name(self, token: Token) -> bool:
        text = token.text
        if not (text[:1].isupper() and text.isalpha() and len(text) > 1):
            return False
        if any(c.isupper() for c in text[1:]):  # GitHub, PostHog, ArgoCD: products
            return False
        lower = text.lower()
        if lower in SYSTEM_NAMES or lower in _CALENDAR or lower in ROLE_NOUNS:
            return False
        if self.names.is_sentence_adverb(lower):
            return False  # "Additionally", "Luckily": sentence adverbs, capitalised at the start
        doc = token.doc
        if token.is_sent_start and token.i + 1 < len(doc) and doc[token.i + 1].is_punct:
            return False  # "Meanwhile, …"
        return self.names.is_name(text)

    def kind(self, token: Token, roster: Roster) -> str:
        """`other`, `self` or '' for one token, without looking at its neighbours."""
        lower = token.lower_
        if lower in POSSESSIVES:
            return self._possessive(token, POSSESSIVES[lower])
        if lower in SELF_PRONOUNS:
            return SELF
        if lower in PLURAL_PRONOUNS:
            return self._antecedent(token)
        if lower in OTHER_PRONOUNS or _MENTION.match(token.text):
            return OTHER
        if lower in SYSTEM_NAMES:
            return ""
        if token.text in roster:
            return OTHER
        if _role(lower):
            # "admin tasks", "developer tools": a role word modifying a thing is no agent.
            if (
                self.use_ner
                and token.dep_ in ("compound", "nmod", "amod")
                and not _role(token.head.lower_)
            ):
                return ""
            return OTHER
        if self.use_ner and token.ent_type_ == "PERSON":
            return self._possessor(token, OTHER)
        if self.looks_like_name(token):
            # Small models label plenty of first names ORG or GPE; the lookup tables' "far
            # more common capitalised" test is the better witness for a single word.
            if self.use_ner and token.pos_ in NOT_NAME_POS:
                return ""
            if self.use_ner and token.ent_type_ and token.ent_iob_ == "I":
                return ""  # inside a multi-word organisation or product name
            return self._possessor(token, OTHER)
        return ""

    def _possessor(self, token: Token, kind: str) -> str:
        """A name before 's is a person only when it owns an act: "Bob's change"."""
        doc = token.doc
        nxt = doc[token.i + 1] if token.i + 1 < len(doc) else None
        if nxt is not None and nxt.lower_ in ("'s", "’s"):
            return self._possessive(nxt, kind)
        return kind

    def _antecedent(self, token: Token) -> str:
        """'They' is a person unless the nearest plural noun before it is a thing:
        "the components … they did not keep enough history"."""
        doc = token.doc
        for prev in reversed(doc[max(0, token.i - ANTECEDENT_WINDOW) : token.i]):
            lower = prev.lower_
            if lower in PLURAL_PRONOUNS or lower in SELF_PRONOUNS:
                continue
            plural = prev.tag_ in ("NNS", "NNPS") if self.use_ner else _looks_plural(lower)
            if not plural:
                continue
            return OTHER if _role(lower) else ""
        return OTHER

    @staticmethod
    def _possessive(token: Token, kind: str) -> str:
        doc = token.doc
        for nxt in doc[token.i + 1 : min(len(doc), token.i + 4)]:
            if nxt.lower_ in PERSON_ACTION_NOUNS or nxt.lemma_ in PERSON_ACTION_NOUNS:
                return kind
            if nxt.lower_ in FAULT_ADJECTIVES:  # "Rohan's misconfigured rule"
                return kind
            if nxt.is_punct:
                break
        return ""

    def annotate(self, doc: Doc, roster: Roster) -> list[str]:
        """Person kind of every token of `doc` (index-aligned)."""
        return [self.kind(t, roster) for t in doc]


def phrase_kind(tokens: Sequence[Token], kinds: Sequence[str]) -> str:
    """Kind of a noun phrase: a person head, or a person's possessed action ("Bob's change")."""
    found = ""
    for t in tokens:
        k = kinds[t.i]
        if k == OTHER:
            return OTHER
        if k == SELF:
            found = SELF
    return found
