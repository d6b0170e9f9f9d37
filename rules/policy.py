"""Action-item requirements: which headings open an action-items section, what each item
must carry, and which words say where a lesson lives.

The policy is data. `ActionPolicy.from_mapping` validates a mapping (from YAML or a web
form) and raises `PolicyError` naming the source and the offending key, so an admin learns
at load time that `min_item` is not a knob.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from rules.action_words import heading_kind
from settings.safe_yaml import YamlRefused, load_yaml

DEFAULT_HEADINGS: tuple[str, ...] = (
    "Action items",
    "Action Items (owner, due)",
    "Follow-ups",
    "Follow up actions",
    "Remediation",
    "Remediations",
    "Corrective actions",
    "Corrective and preventive actions",
    "Next steps",
    "What we'll do differently",
    "What we will do differently",
    "Lessons learned and action items",
    "Preventive measures",
    "Preventative measures",
    "Prevention",
    "Improvements",
    "Actions",
)

DEFAULT_LESSON_HOME_WORDS: tuple[str, ...] = (
    "runbook",
    "run book",
    "playbook",
    "checklist",
    "check list",
    "decision log",
    "decision record",
    "ADR",
    "wiki",
    "docs",
    "documentation",
    "handbook",
    "template",
    "README",
    "process doc",
    "procedure",
    "SOP",
    "onboarding guide",
    "knowledge base",
    "Confluence",
    # A lesson also lives in something that acts on it next time: an alert, a test, a lint
    # rule, a CI check (issue 11). Counted only with a verb that changes it or a link.
    "alert",
    "alerting rule",
    "test",
    "lint rule",
    "linter",
    "CI check",
    "pre-commit hook",
)

# Words that make a heading about something other than follow-up work even when it
# starts or ends with "actions": "Actions taken", "Timeline of actions".
_HEADING_VETO = frozenset({"taken", "timeline"})
_NUMBERING = re.compile(
    r"^\s*(?:(?:\d+(?:\.\d+)*|[ivxlc]+|[a-z])[.)]\s+|\d+(?:\.\d+)+\s+|\d+\s+(?=[a-z]))",
    re.IGNORECASE,
)
_APOSTROPHES = re.compile(r"[’'`´]")
_ASIDE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


class PolicyError(ValueError):
    """An invalid action-item policy; the message names the source and the key."""


def _token_form(word: str) -> str:
    # A light plural fold so "Action item" / "Follow-up" / "Next step" match too.
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    if word == "ups":
        return "up"
    return word


def heading_tokens(text: str) -> tuple[str, ...]:
    """Normalised words of a heading: lower case, numbering, emoji and punctuation gone."""
    text = unicodedata.normalize("NFKC", text).casefold()
    bare = _ASIDE.sub(" ", text)  # "(owner, due)", "(completed)", "[link]"
    if re.search(r"[^\W_]", bare):
        text = bare
    text = _NUMBERING.sub("", text)
    text = _APOSTROPHES.sub("", text)
    words = re.findall(r"[^\W_]+", text)
    # A leading list number left after punctuation removal ("1 - Action items").
    while words and words[0].isdigit() and len(words) > 1:
        words.pop(0)
    return tuple(_token_form(w) for w in words)


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def heading_matches(text: str, headings: Iterable[str]) -> bool:
    """Whether a heading (or bold label) names an action-items section.

    Equal after normalisation, or written without spaces ("Followups"); a one-word pattern
    ("Actions", "Improvements") may also open or close the heading ("Actions for Q3",
    "Short-term improvements"); a longer pattern may appear anywhere in it ("Our next
    steps"). Headings about what was done during the incident ("Actions taken") never match.
    """
    words = heading_tokens(text)
    if not words or _HEADING_VETO.intersection(words):
        return False
    compact = "".join(words)
    for pattern in headings:
        p = heading_tokens(pattern)
        if not p:
            continue
        if words == p or compact == "".join(p):
            return True
        if len(p) == 1:
            if words[0] == p[0] or words[-1] == p[0]:
                return True
        elif _contains(words, p):
            return True
    return False


@dataclass(frozen=True)
class ActionPolicy:
    """What an action-items section must hold.

    `min_items` 0 means the section itself is optional: neither a missing nor an empty
    section is reported, though items that are there are still checked.
    """

    min_items: int = 1
    # Find the section by what its heading says (rules/action_words.py), not only by the
    # `headings` list; the list stays as the override for a team's own titles.
    detect_headings: bool = True
    require_owner: bool = False
    require_tracking: bool = False
    require_due: bool = False
    require_lesson_home: bool = False
    # When the flags point at people and every action item asks people to change (or
    # there is none), ask for one change to the system (issue 11).
    require_systems_action: bool = True
    headings: tuple[str, ...] = DEFAULT_HEADINGS
    lesson_home_words: tuple[str, ...] = DEFAULT_LESSON_HOME_WORDS

    def matches_heading(self, text: str) -> bool:
        """A heading that opens an action-items section: listed in `headings`, or (with
        `detect_headings`) worded as planned change."""
        if heading_matches(text, self.headings):
            return True
        return self.detect_headings and heading_kind(text) == "strong"

    def weak_heading(self, text: str) -> bool:
        """Lessons / takeaways / changes: a section only when nothing stronger exists and
        its items read as future changes."""
        return self.detect_headings and heading_kind(text) == "weak"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, source: str = "<policy>") -> ActionPolicy:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PolicyError(f"{source}: the action-item policy must be a mapping of settings")
        known = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (closest known key: '{close[0]}')" if close else ""
                raise PolicyError(f"{source}: unknown key '{key}'{hint}")
            if key == "min_items":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise PolicyError(f"{source}: 'min_items' must be a non-negative integer")
                values[key] = value
            elif key.startswith("require_") or key == "detect_headings":
                if not isinstance(value, bool):
                    raise PolicyError(f"{source}: '{key}' must be true or false")
                values[key] = value
            else:  # headings, lesson_home_words
                values[key] = _strings(value, key, source)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> ActionPolicy:
        """Read a YAML policy file; knobs at top level or under an `action_items:` key."""
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(f"{source}: policy file not found") from None
        except IsADirectoryError:
            raise PolicyError(f"{source}: is a directory, not a policy file") from None
        except UnicodeDecodeError as exc:
            raise PolicyError(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except OSError as exc:
            raise PolicyError(f"{source}: cannot read policy file ({exc.strerror})") from None
        return cls.parse(text, source)

    @classmethod
    def parse(cls, text: str, source: str = "<policy>") -> ActionPolicy:
        """Parse YAML text the way `load` does."""
        try:
            data = load_yaml(text, source)
        except YamlRefused as exc:
            raise PolicyError(str(exc)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(f"{source}: invalid YAML{where}: {problem}") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise PolicyError(f"{source}: a policy file is a mapping of settings")
        if "action_items" in data:
            knobs = {f.name for f in fields(cls)}
            both = sorted(k for k in data if k in knobs)
            if both:
                raise PolicyError(
                    f"{source}: '{both[0]}' is set both at top level and under 'action_items'"
                )
            return cls.from_mapping(data["action_items"], source)
        return cls.from_mapping(data, source)


def _strings(value: Any, key: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise PolicyError(f"{source}: '{key}' must be a list of strings")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise PolicyError(f"{source}: '{key}' must be a list of non-empty strings")
        out.append(item.strip())
    if not out:
        raise PolicyError(f"{source}: '{key}' must list at least one entry")
    return tuple(out)
