"""Published rule-pack versions as data: what changed between two texts, and the parsed pack
of a stored version.

Pure: no database access. `pack_from_version` takes anything shaped like a
`store.models.RulePackVersion` row (id, name, version, text), so the worker and the admin
pages share one parsed (and, through nlp.blame's cache, one compiled) pack per version.
What a publish may refuse is said here (PublishRefused, ExampleFailure); running the
examples is check.examples.validate_draft, which worker.tuning.publish calls before
store.packs.publish writes.
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import yaml

from rules.schema import Rule, RulePack, Settings, parse_pack

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"
# The pseudo rule id of pack-level changes (settings, skip_sentences). Real rule ids always
# contain a dot or hyphen between lowercase words, so this can never collide with one.
PACK = "(pack)"

# Rule dataclass field -> the field name an admin wrote in the YAML. The two example lists
# are one YAML field, `examples`, so they report as one.
_RULE_FIELDS: tuple[tuple[str, str], ...] = (
    ("category", "category"),
    ("severity", "severity"),
    ("enabled", "enabled"),
    ("agent", "agent"),
    ("self_blame", "self_blame"),
    ("scope", "scope"),
    ("requires", "requires"),
    ("patterns", "patterns"),
    ("unless", "unless"),
    ("unless_sentence", "unless_sentence"),
    ("context", "context"),
    ("message", "message"),
    ("explanation", "explanation"),
    ("suggestion", "suggestion"),
    ("examples_match", "examples"),
    ("examples_no_match", "examples"),
    ("link", "link"),
)


@dataclass(frozen=True)
class RuleChange:
    """One rule that differs between two pack texts.

    `fields` names the YAML fields that changed (empty for added and removed rules);
    `diff` is a unified diff of the rule as the engine sees it (after `extends` and
    anchors are resolved), ready to show in a <pre>.
    """

    rule: str  # a rule id, or PACK for pack-level settings
    kind: str  # added | removed | changed
    fields: tuple[str, ...] = ()
    diff: str = ""


def diff_versions(
    old_text: str, new_text: str, *, old_name: str = "old", new_name: str = "new"
) -> list[RuleChange]:
    """Per rule id, what `new_text` adds, removes or changes compared with `old_text`.

    Compares the *parsed* packs rather than the raw YAML: a pack that `extends: default`
    lists only overlays, so dropping an overlay `{id: x, enabled: false}` re-enables rule x,
    which a raw comparison would report as "x removed". Pack-level changes come first (as
    rule PACK), then rules in the new pack's order, then removed rules in the old order.
    Raises `PackError` when either text is not a valid pack.
    """
    old = parse_pack(old_text, old_name)
    new = parse_pack(new_text, new_name)
    changes: list[RuleChange] = []
    pack_fields = _pack_fields_changed(old, new)
    if pack_fields:
        changes.append(
            RuleChange(PACK, CHANGED, pack_fields, _unified(_pack_yaml(old), _pack_yaml(new), PACK))
        )
    old_rules = {r.id: r for r in old.rules}
    new_ids = {r.id for r in new.rules}
    for rule in new.rules:
        before = old_rules.get(rule.id)
        if before is None:
            changes.append(RuleChange(rule.id, ADDED, (), _unified("", _rule_yaml(rule), rule.id)))
            continue
        changed = _rule_fields_changed(before, rule)
        if changed:
            diff = _unified(_rule_yaml(before), _rule_yaml(rule), rule.id)
            changes.append(RuleChange(rule.id, CHANGED, changed, diff))
    for rule in old.rules:
        if rule.id not in new_ids:
            changes.append(
                RuleChange(rule.id, REMOVED, (), _unified(_rule_yaml(rule), "", rule.id))
            )
    return changes


def text_diff(old_text: str, new_text: str, old_name: str = "old", new_name: str = "new") -> str:
    """A unified diff of the two YAML texts as written (comments and anchors included), for
    showing the whole change next to the per-rule summary."""
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def _rule_fields_changed(old: Rule, new: Rule) -> tuple[str, ...]:
    out: list[str] = []
    for attr, name in _RULE_FIELDS:
        if getattr(old, attr) != getattr(new, attr) and name not in out:
            out.append(name)
    return tuple(out)


def _pack_fields_changed(old: RulePack, new: RulePack) -> tuple[str, ...]:
    out = []
    # name and version are deliberately not compared: the store assigns both on publish.
    for f in fields(Settings):
        if getattr(old.settings, f.name) != getattr(new.settings, f.name):
            out.append(f"settings.{f.name}")
    if old.skip_sentences != new.skip_sentences:
        out.append("skip_sentences")
    return tuple(out)


def _unified(old: str, new: str, label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{label} (before)",
            tofile=f"{label} (after)",
        )
    )


def _rule_yaml(rule: Rule) -> str:
    data: dict[str, Any] = {"id": rule.id}
    for attr, name in _RULE_FIELDS:
        if name == "examples":
            continue
        value = getattr(rule, attr)
        if attr in ("unless", "unless_sentence", "context", "link") and not value:
            continue  # optional and empty: leave out, as an author would
        data[name] = _plain(value)
    data["examples"] = {
        "match": list(rule.examples_match),
        "no_match": list(rule.examples_no_match),
    }
    return _dump(data)


def _pack_yaml(pack: RulePack) -> str:
    settings = {f.name: getattr(pack.settings, f.name) for f in fields(Settings)}
    return _dump({"settings": settings, "skip_sentences": _plain(pack.skip_sentences)})


def _plain(value: Any) -> Any:
    """Tuples, frozensets and the expanded PERSON shorthand back into what an author wrote,
    so the per-rule diff reads like the YAML."""
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        token = dict(value)
        person = token.get("_", {}).get("pmg_person") if isinstance(token.get("_"), dict) else None
        if person is not None and set(token["_"]) == {"pmg_person"}:
            del token["_"]
            kinds = person.get("IN", [])
            token["PERSON"] = True if sorted(kinds) == ["other", "self"] else kinds[0]
        return {k: _plain(v) for k, v in token.items()}
    return value


def _dump(data: dict[str, Any]) -> str:
    # Token patterns in flow style (one pattern per line, as the shipped pack writes them);
    # everything else in block style so a one-field change is a one-line diff.
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = bool(data) and all(isinstance(item, dict) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
# Anchors would make the per-rule dump depend on which lists happen to be shared objects.
_Dumper.ignore_aliases = lambda self, data: True  # type: ignore[method-assign]


# --- what a publish may refuse ------------------------------------------------------------

# The pipeline modes a draft's examples must pass in before it is published: the trained
# English pipeline ("auto" falls back to blank where none is installed) and the blank one
# a worker uses when the model is missing. A rule that only works in one mode would
# silently change behaviour between deployments.
PUBLISH_MODES = ("auto", "blank")


@dataclass(frozen=True)
class ExampleFailure:
    rule: str
    example: str
    expected: bool  # True: should match

    def __str__(self) -> str:
        verb = "should match but did not" if self.expected else "should not match but did"
        return f"{self.rule}: {verb}: {self.example!r}"


class PublishRefused(ValueError):
    """A draft that parses but may not be published; `failures` lists (mode, failure)."""

    def __init__(self, message: str, failures: Sequence[tuple[str, ExampleFailure]] = ()):
        super().__init__(message)
        self.failures: tuple[tuple[str, ExampleFailure], ...] = tuple(failures)


@dataclass(frozen=True)
class DraftCheck:
    pack: RulePack
    examples: dict[str, int]  # mode -> examples run


# --- parsed packs of stored versions ----------------------------------------------------


class VersionRow(Protocol):
    """What pack_from_version needs of a stored version (store.models.RulePackVersion)."""

    id: int
    name: str
    version: str
    text: str


_cache_lock = threading.Lock()
_CACHE_SIZE = 16
_cache: OrderedDict[int, tuple[str, str, str, RulePack]] = OrderedDict()


def pack_from_version(row: VersionRow) -> RulePack:
    """The parsed pack of a stored version, named by the row: `name` and `version` are the
    store's (so every analysis names the published version it used), not the YAML's.

    Cached by row id so repeated calls return the *same* object, which is what lets
    nlp.blame reuse its compiled matchers. The cached text is compared on every hit:
    ids are only unique within one database, and a process may talk to several (tests).
    Raises `PackError` when the stored text no longer parses (e.g. it extends a shipped
    default that has since changed incompatibly).
    """
    key = (row.text, row.name, row.version)
    with _cache_lock:
        entry = _cache.get(row.id)
        if entry is not None and entry[:3] == key:
            _cache.move_to_end(row.id)
            return entry[3]
    parsed = parse_pack(row.text, f"rule pack {row.name} {row.version}")
    pack = replace(parsed, name=row.name, version=row.version)
    with _cache_lock:
        _cache[row.id] = (*key, pack)
        _cache.move_to_end(row.id)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return pack
