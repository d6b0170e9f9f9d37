"""Rule packs: loading, validation with errors that name file, rule and field, and merging.

A pack is data (YAML); this module checks its shape before anything runs it, so an admin
learns at load time — not at match time — that a rule uses a parser attribute, lacks
examples, or speaks to the reader as "you".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from spacy.matcher import Matcher
from spacy.vocab import Vocab

from rules.regex_guard import UnsafeRegex, check_regex, pattern_regexes
from rules.severity import SEVERITIES
from settings.safe_yaml import YamlRefused, load_yaml

CATEGORIES = (
    "counterfactual",  # C1
    "negative-action",  # C2
    "if-only",  # C3
    "judgemental",  # C4
    "human-error",  # C5
    "named-agent",  # C6
    "hindsight",  # C7
    "procedure-violation",  # C8
    "mental-state",  # C9
    "root-cause-person",  # C10
    "accusatory-question",  # C11
    "action-items",  # C12 and the structural action-item checks
    "blame-noun",
    "person-agent-error",
    "heroics",
    "brilliance",
    # what the trained classifier predicts (rules with `model:`)
    "agent-harm",
    "possessive",
    "self-blame",
    "minimiser",
)
# Trained components a rule may read, and the classes each predicts besides "OK"
# (training/build.py trains exactly these).
MODELS = {
    "blame_classifier": (
        "AGENT_HARM", "BLAME_NOUN", "COUNTERFACTUAL", "HEROICS", "HINDSIGHT", "HUMAN_ERROR",
        "JUDGEMENTAL", "MINIMISER", "POSSESSIVE", "SELF_BLAME",
    ),
}
AGENTS = ("any", "person")
SCOPES = ("body", "action_items", "all")
REQUIREMENTS = ("tagger", "parser", "ner")
# Which pipeline component a token attribute needs; the rest work on a blank pipeline.
ATTRIBUTE_NEEDS = {
    "POS": "tagger",
    "TAG": "tagger",
    "MORPH": "tagger",
    "DEP": "parser",
    "ENT_TYPE": "ner",
    "ENT_IOB": "ner",
    "ENT_ID": "ner",
}
PLACEHOLDERS = ("action", "action_ing", "object", "actor", "match")
# The structural action-item checks of nlp/actions.py a pack may word, re-level or disable
# (rules with `check: true`), and the placeholders their messages may use.
ACTION_CHECKS = (
    "actions.missing-section",
    "actions.empty-section",
    "actions.too-few-items",
    "actions.missing-owner",
    "actions.missing-tracking",
    "actions.missing-due",
    "actions.no-lesson-home",
    "actions.systems-action",
)
ACTION_CHECK_PLACEHOLDERS = ("title", "count", "noun", "minimum", "what")
RULE_ID = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)+$")
_YOU = re.compile(r"\b(?:you|your|yours|yourself|yourselves)\b", re.IGNORECASE)
PERSON_KEY = "PERSON"  # pattern shorthand: {PERSON: true|other|self}
MIN_EXAMPLES = 2
MAX_PACK_CHARS = 512 * 1024  # ten times the shipped pack
PATTERN_FIELDS = ("patterns", "unless", "unless_sentence", "context")


class PackError(ValueError):
    """An invalid rule pack; the message names the file, the rule and the field."""


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    message: str
    explanation: str
    suggestion: str
    patterns: tuple = ()
    unless: tuple = ()
    context: tuple = ()
    unless_sentence: tuple = ()
    agent: str = "any"
    self_blame: bool = True  # does "we" count as the person this rule looks for?
    scope: str = "body"
    requires: frozenset[str] = frozenset()
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    link: str = ""
    enabled: bool = True
    # A rule over a trained component's prediction instead of token patterns: it fires on
    # a sentence whose predicted class is `model_class` with P(blame) >= `threshold`.
    model: str = ""
    model_class: str = ""
    threshold: float = 0.0
    # A structural action-item check (nlp/actions.py) rather than token patterns: its id
    # names the check, the pack holds its words and severity, and its examples are whole
    # postmortems, so an admin can re-level or disable it like any other rule.
    check: bool = False


@dataclass(frozen=True)
class Settings:
    self_blame: str = "info"  # severity of self-blame ("I", "we"), or "off"
    quoted: str = "info"  # severity cap inside blockquotes (testimony), or "off"
    sentence_max_findings: int = 1


@dataclass(frozen=True)
class RulePack:
    name: str
    version: str
    rules: tuple[Rule, ...]
    settings: Settings = field(default_factory=Settings)
    path: str = ""
    # Sentences that discuss blame rather than assign it ("the old view of human error"):
    # no rule reports inside them.
    skip_sentences: tuple = ()

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


DEFAULT_PACK = "default.yml"


def default_pack_text() -> str:
    return resources.files("rules.packs").joinpath(DEFAULT_PACK).read_text(encoding="utf-8")


def load_pack(path: str | Path | None = None) -> RulePack:
    """Load and validate a pack file; None means the shipped default pack.

    A pack with `extends: default` is layered over the shipped pack (rules replaced,
    re-levelled or disabled by id)."""
    if path is None:
        return parse_pack(default_pack_text(), DEFAULT_PACK)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackError(f"{p}: rule pack not found") from None
    except UnicodeDecodeError as exc:
        raise PackError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise PackError(f"{p}: cannot read rule pack ({exc.strerror})") from None
    return parse_pack(text, str(p))


def parse_pack(text: str, source: str = "<pack>") -> RulePack:
    if len(text) > MAX_PACK_CHARS:
        raise PackError(f"{source}: over {MAX_PACK_CHARS} characters (a rule pack's limit)")
    try:
        # Aliases stay allowed (`definitions` shares word lists through them), counted.
        data = load_yaml(text, source, aliases=True)
    except YamlRefused as exc:
        raise PackError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackError(f"{source}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise PackError(f"{source}: a rule pack is a mapping with a 'rules' list")
    base: RulePack | None = None
    if data.get("extends") is not None:
        if data["extends"] != "default":
            raise PackError(f"{source}: field 'extends': only 'default' can be extended")
        base = load_pack(None)
    return _build(data, source, base)


def _build(data: dict, source: str, base: RulePack | None) -> RulePack:
    # `definitions` holds YAML anchors (shared word lists) that rules refer to.
    _known(
        data,
        {"name", "version", "extends", "settings", "rules", "definitions", "skip_sentences"},
        source,
        "pack",
    )
    settings = _settings(data.get("settings") or {}, source, base)
    raw_rules = data.get("rules")
    if raw_rules is None and base is None:
        raise PackError(f"{source}: field 'rules' is missing")
    raw_rules = raw_rules or []
    if not isinstance(raw_rules, list):
        raise PackError(f"{source}: field 'rules' must be a list of rules")
    rules: list[Rule] = list(base.rules) if base else []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        where = f"{source}: rule #{index + 1}"
        if not isinstance(raw, dict):
            raise PackError(f"{where}: each rule is a mapping")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
            raise PackError(
                f"{where}: field 'id': {rule_id!r} is not a rule id like 'blame.failed-to'"
            )
        where = f"{source}: rule '{rule_id}'"
        if rule_id in seen:
            raise PackError(f"{where}: field 'id': duplicate rule id")
        seen.add(rule_id)
        existing = next((i for i, r in enumerate(rules) if r.id == rule_id), None)
        if existing is not None:
            rules[existing] = _overlay(rules[existing], raw, where)
        else:
            rules.append(_rule(raw, where))
    skip = base.skip_sentences if base else ()
    if data.get("skip_sentences") is not None:
        skip = _patterns(data["skip_sentences"], source, "skip_sentences")
        probe = Rule(
            id="pack.skip-sentences",
            category="blame-noun",
            severity="info",
            message="-",
            explanation="-",
            suggestion="-",
            patterns=skip,
            examples_match=("-", "-"),
            examples_no_match=("-", "-"),
        )
        _check(probe, f"{source}: skip_sentences")
    name = data.get("name", base.name if base else "custom")
    version = str(data.get("version", base.version if base else "0"))
    return RulePack(
        name=str(name),
        version=version,
        rules=tuple(rules),
        settings=settings,
        path=source,
        skip_sentences=skip,
    )


def _known(raw: dict, allowed: set[str], source: str, what: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise PackError(f"{source}: unknown {what} field '{unknown[0]}'")


def _settings(raw: Any, source: str, base: RulePack | None) -> Settings:
    if not isinstance(raw, dict):
        raise PackError(f"{source}: field 'settings' must be a mapping")
    _known(raw, {"self_blame", "quoted", "sentence_max_findings"}, source, "settings")
    out = base.settings if base else Settings()
    for key in ("self_blame", "quoted"):
        if key in raw:
            if raw[key] not in (*SEVERITIES, "off"):
                raise PackError(
                    f"{source}: field 'settings.{key}': must be one of info, warning, error, off"
                )
            out = replace(out, **{key: raw[key]})
    if "sentence_max_findings" in raw:
        value = raw["sentence_max_findings"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PackError(
                f"{source}: field 'settings.sentence_max_findings': must be a positive integer"
            )
        out = replace(out, sentence_max_findings=value)
    return out


RULE_FIELDS = {
    "id",
    "check",
    "category",
    "severity",
    "message",
    "explanation",
    "suggestion",
    "patterns",
    "unless",
    "unless_sentence",
    "context",
    "agent",
    "self_blame",
    "scope",
    "requires",
    "examples",
    "link",
    "enabled",
    "model",
    "class",
    "threshold",
}


def _rule(raw: dict, where: str) -> Rule:
    _known(raw, RULE_FIELDS, where, "rule")
    for key in (
        "category",
        "severity",
        "message",
        "explanation",
        "suggestion",
        *(() if raw.get("check") is True else ("model" if "model" in raw else "patterns",)),
        "examples",
    ):
        if key not in raw:
            raise PackError(f"{where}: field '{key}' is missing")
    return _check(
        _fields(
            Rule(
                id=raw["id"],
                category="",
                severity="info",
                message="",
                explanation="",
                suggestion="",
            ),
            raw,
            where,
        ),
        where,
    )


def _overlay(rule: Rule, raw: dict, where: str) -> Rule:
    _known(raw, RULE_FIELDS, where, "rule")
    return _check(_fields(rule, raw, where), where)


def _fields(rule: Rule, raw: dict, where: str) -> Rule:
    changes: dict[str, Any] = {}
    for key in ("category", "severity", "message", "explanation", "suggestion", "link"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or (key != "link" and not value.strip()):
                raise PackError(f"{where}: field '{key}' must be a non-empty string")
            changes[key] = value.strip()
    if "category" in changes and changes["category"] not in CATEGORIES:
        raise PackError(
            f"{where}: field 'category': {changes['category']!r} is not one of "
            f"{', '.join(CATEGORIES)}"
        )
    if "severity" in changes and changes["severity"] not in SEVERITIES:
        raise PackError(
            f"{where}: field 'severity': {changes['severity']!r} is not one of "
            f"{', '.join(SEVERITIES)}"
        )
    for key, allowed in (("agent", AGENTS), ("scope", SCOPES)):
        if key in raw:
            if raw[key] not in allowed:
                raise PackError(
                    f"{where}: field '{key}': {raw[key]!r} is not one of {', '.join(allowed)}"
                )
            changes[key] = raw[key]
    if "check" in raw:
        if not isinstance(raw["check"], bool):
            raise PackError(f"{where}: field 'check' must be true or false")
        changes["check"] = raw["check"]
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise PackError(f"{where}: field 'enabled' must be true or false")
        changes["enabled"] = raw["enabled"]
    if "requires" in raw:
        req = raw["requires"]
        if not isinstance(req, list) or any(r not in REQUIREMENTS for r in req):
            raise PackError(
                f"{where}: field 'requires' must be a list drawn from {', '.join(REQUIREMENTS)}"
            )
        changes["requires"] = frozenset(req)
    if "self_blame" in raw:
        if not isinstance(raw["self_blame"], bool):
            raise PackError(f"{where}: field 'self_blame' must be true or false")
        changes["self_blame"] = raw["self_blame"]
    for key in PATTERN_FIELDS:
        if key in raw:
            changes[key] = _patterns(raw[key], where, key)
    if "model" in raw:
        if raw["model"] not in MODELS:
            raise PackError(f"{where}: field 'model': {raw['model']!r} is not one of "
                            f"{', '.join(MODELS)}")
        changes["model"] = raw["model"]
    if "class" in raw:
        changes["model_class"] = raw["class"]
    if "threshold" in raw:
        value = raw["threshold"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise PackError(f"{where}: field 'threshold' must be a number between 0 and 1")
        changes["threshold"] = float(value)
    if "examples" in raw:
        ex = raw["examples"]
        if not isinstance(ex, dict):
            raise PackError(f"{where}: field 'examples' must map 'match' and 'no_match' to lists")
        _known(ex, {"match", "no_match"}, where, "examples")
        for key in ("match", "no_match"):
            items = ex.get(key)
            if not isinstance(items, list) or any(not isinstance(s, str) for s in items):
                raise PackError(f"{where}: field 'examples.{key}' must be a list of sentences")
            changes[f"examples_{key}"] = tuple(items)
    return replace(rule, **changes)


def _patterns(raw: Any, where: str, key: str) -> tuple:
    if not isinstance(raw, list) or not raw:
        raise PackError(f"{where}: field '{key}' must be a non-empty list of token patterns")
    out = []
    for n, pattern in enumerate(raw):
        if (
            not isinstance(pattern, list)
            or not pattern
            or any(not isinstance(t, dict) for t in pattern)
        ):
            raise PackError(f"{where}: field '{key}[{n}]' must be a list of token mappings")
        out.append(tuple(_expand(dict(t)) for t in pattern))
    return tuple(out)


def _expand(token: dict) -> dict:
    """Turn the PERSON shorthand into the token extension the engine sets."""
    if PERSON_KEY in token:
        value = token.pop(PERSON_KEY)
        kinds = {True: ["other", "self"], "other": ["other"], "self": ["self"]}.get(value)
        if kinds is None:
            kinds = ["__invalid__"]
        token["_"] = {"pmg_person": {"IN": kinds}}
    return token


_VOCAB: Vocab | None = None


def _check(rule: Rule, where: str) -> Rule:
    if rule.check:
        _check_action_check(rule, where)
    if rule.model:
        _check_model_rule(rule, where)
    elif rule.model_class or rule.threshold:
        raise PackError(f"{where}: fields 'class' and 'threshold' need 'model'")
    for key in ("message", "suggestion", "explanation"):
        if _YOU.search(getattr(rule, key)):
            raise PackError(
                f"{where}: field '{key}' addresses the reader as 'you'; ask about the system"
            )
    known = ACTION_CHECK_PLACEHOLDERS if rule.check else PLACEHOLDERS
    for name in re.findall(r"{(\w*)}", rule.suggestion):
        if name not in known:
            raise PackError(
                f"{where}: field 'suggestion': unknown placeholder {{{name}}} "
                f"(known: {', '.join(PLACEHOLDERS)})"
            )
    if len(rule.examples_match) < MIN_EXAMPLES or len(rule.examples_no_match) < MIN_EXAMPLES:
        raise PackError(
            f"{where}: field 'examples': needs at least {MIN_EXAMPLES} 'match' and "
            f"{MIN_EXAMPLES} 'no_match' sentences"
        )
    _register_extension()
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = Vocab()
    for key in PATTERN_FIELDS:
        for n, pattern in enumerate(getattr(rule, key)):
            for token in pattern:
                if "_" in token and token["_"].get("pmg_person", {}).get("IN") == ["__invalid__"]:
                    raise PackError(
                        f"{where}: field '{key}[{n}]': PERSON must be true, 'other' or 'self'"
                    )
                _bounded(token, f"{where}: field '{key}[{n}]'")
                for attr in token:
                    need = ATTRIBUTE_NEEDS.get(attr.upper())
                    if need and need not in rule.requires:
                        raise PackError(
                            f"{where}: field '{key}[{n}]': attribute {attr} needs a {need}; "
                            f"declare it in 'requires'"
                        )
            matcher = Matcher(_VOCAB, validate=True)
            try:
                matcher.add("x", [list(pattern)])
            except Exception as exc:  # spaCy raises several types for bad patterns
                detail = str(exc).strip().splitlines()
                raise PackError(
                    f"{where}: field '{key}[{n}]': invalid token pattern: "
                    f"{detail[-1] if detail else exc}"
                ) from None
    return rule


def _check_action_check(rule: Rule, where: str) -> None:
    if rule.id not in ACTION_CHECKS:
        raise PackError(
            f"{where}: field 'check': {rule.id!r} is not an action-item check (known: "
            f"{', '.join(ACTION_CHECKS)})"
        )
    if rule.patterns or rule.model:
        raise PackError(f"{where}: a 'check' rule reads no 'patterns' or 'model'")
    for key in ("message", "suggestion"):
        for name in re.findall(r"{(\w*)}", getattr(rule, key)):
            if name not in ACTION_CHECK_PLACEHOLDERS:
                raise PackError(
                    f"{where}: field '{key}': unknown placeholder {{{name}}} "
                    f"(known: {', '.join(ACTION_CHECK_PLACEHOLDERS)})"
                )


def _check_model_rule(rule: Rule, where: str) -> None:
    classes = MODELS[rule.model]
    if rule.model_class not in classes:
        raise PackError(f"{where}: field 'class': {rule.model_class!r} is not one of "
                        f"{', '.join(classes)} (the classes {rule.model} predicts)")
    if not rule.threshold:
        raise PackError(f"{where}: field 'threshold' is missing (a number between 0 and 1)")
    if rule.patterns:
        raise PackError(f"{where}: a rule reads either 'model' or 'patterns', not both")


# Limits that keep an admin's pack from stalling every worker: each token predicate runs
# on every token of every postmortem.
MAX_LIST = 5000  # words in one IN / NOT_IN list
PROBE_SECONDS = 0.005


def _runs_away(regex: str) -> bool:
    """Time the regex on words made of its own letters plus a character that fails the
    match. A second line behind regex_guard.check_regex, which reads the pattern's shape:
    should that reading miss a backtracking shape, an exponential pattern still shows
    here, where a sound one takes microseconds."""
    compiled = re.compile(regex)
    letters = sorted({c for c in regex if c.isalnum()} | {"a", "x"})[:20]
    # Lengths grow slowly so an exponential pattern is caught before a probe takes long.
    for length in (8, 12, 16, 20, 24):
        for c in letters:
            # Twice over the limit, not once: a scheduler hiccup must not refuse a pack.
            if all(_probe(compiled, c * length + "!") > PROBE_SECONDS for _ in range(2)):
                return True
    return False


def _probe(compiled: re.Pattern[str], word: str) -> float:
    started = time.perf_counter()
    compiled.search(word)
    return time.perf_counter() - started


def _bounded(token: dict, where: str) -> None:
    for attr, value in token.items():
        if attr == "_" and isinstance(value, dict):
            # Extension attributes take the same predicates, REGEX included.
            for name, predicates in value.items():
                _bounded_predicates(f"_.{name}", predicates, where)
        else:
            _bounded_predicates(str(attr), value, where)


def _bounded_predicates(attr: str, value: Any, where: str) -> None:
    if not isinstance(value, dict):
        return
    for op, items in value.items():
        if op in ("IN", "NOT_IN") and isinstance(items, list) and len(items) > MAX_LIST:
            raise PackError(f"{where}: {attr} {op} lists {len(items)} words (at most {MAX_LIST})")
        if isinstance(items, dict):  # {REGEX: {IN: [...]}}, {FUZZY: {IN: [...]}}
            _bounded_predicates(attr, items, where)
    for regex in pattern_regexes(value):
        try:
            check_regex(regex)
        except UnsafeRegex as exc:
            raise PackError(f"{where}: {attr} REGEX {exc}") from None
        if _runs_away(regex):
            raise PackError(
                f"{where}: {attr} REGEX {regex!r} can run away on a long word: it took too "
                f"long on a short one; rewrite it without repeated or overlapping groups"
            )


def _register_extension() -> None:
    from spacy.tokens import Token

    if not Token.has_extension("pmg_person"):
        Token.set_extension("pmg_person", default="")
