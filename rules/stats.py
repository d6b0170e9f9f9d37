"""Per-rule figures from reviewers' decisions, so an admin sees which rule to fix first.

Pure: takes one record per flag (store.packs.rule_stats reads them, one per incident and
fingerprint) and returns the figures, ordered worst rule first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

ACCEPTED = "accepted"
FALSE_POSITIVE = "false-positive"
# Below this many decisions a precision is noise: 1 of 1 false positive is not a broken rule.
MIN_DECISIONS = 5
TOP_PHRASES = 5

_SPACE = re.compile(r"\s+")
_MENTION = re.compile(r"@[\w.-]+")
_EDGE = "\"'`“”‘’«».,;:!?()[]{}*_~-– —"
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})


class FlagRecord(NamedTuple):
    """One flag as reviewers last saw it."""

    rule: str
    text: str  # the flagged words, source[start:end]
    decision: str | None  # accepted | false-positive | None
    suppressed: bool = False  # silenced inline by the author


@dataclass(frozen=True)
class RuleStats:
    rule: str
    hits: int  # flags shown to reviewers (inline-suppressed ones excluded)
    accepted: int
    false_positives: int
    undecided: int
    suppressed: int  # flags authors silenced inline: a noise signal of its own
    precision: float | None  # accepted / (accepted + false positives); None: no decisions
    dismissed: tuple[tuple[str, int], ...]  # most often dismissed phrases, with counts

    @property
    def decisions(self) -> int:
        return self.accepted + self.false_positives


def normalise_phrase(text: str) -> str:
    """The form dismissed phrases are counted in: case and whitespace folded, typographic
    quotes straightened, edge punctuation dropped, and @handles masked — the figures are
    about wording, and must not turn into a list of who was flagged."""
    folded = _SPACE.sub(" ", text.translate(_QUOTES)).strip().casefold()
    return _MENTION.sub("@…", folded).strip(_EDGE)


def compute_stats(
    records: Iterable[FlagRecord],
    *,
    rules: Iterable[str] = (),
    min_decisions: int = MIN_DECISIONS,
    top: int = TOP_PHRASES,
) -> list[RuleStats]:
    """Figures per rule, worst first (see `priority`). `rules` adds rows of zeros for rule
    ids that never fired, so a page can list the whole pack."""
    hits: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    phrases: dict[str, Counter[str]] = {}
    seen: dict[str, None] = dict.fromkeys(rules)
    for record in records:
        seen.setdefault(record.rule)
        if record.suppressed:
            suppressed[record.rule] += 1
            continue
        hits[record.rule] += 1
        if record.decision == ACCEPTED:
            accepted[record.rule] += 1
        elif record.decision == FALSE_POSITIVE:
            false_pos[record.rule] += 1
            phrase = normalise_phrase(record.text)
            if phrase:
                phrases.setdefault(record.rule, Counter())[phrase] += 1
    out = []
    for rule in seen:
        decided = accepted[rule] + false_pos[rule]
        ranked = sorted(phrases.get(rule, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(
            RuleStats(
                rule=rule,
                hits=hits[rule],
                accepted=accepted[rule],
                false_positives=false_pos[rule],
                undecided=hits[rule] - decided,
                suppressed=suppressed[rule],
                precision=accepted[rule] / decided if decided else None,
                dismissed=tuple(ranked[:top]),
            )
        )
    out.sort(key=lambda s: priority(s, min_decisions))
    return out


def priority(stats: RuleStats, min_decisions: int = MIN_DECISIONS) -> tuple:
    """Sort key, the rule to fix first first: rules with enough decisions by lowest
    precision; then, for all rules, most false positives, then most hits. A rule with
    too few decisions ranks after every rule whose precision can be trusted, however bad
    its one decision looks."""
    trusted = stats.precision is not None and stats.decisions >= min_decisions
    return (
        0 if trusted else 1,
        stats.precision if trusted else 0.0,
        -stats.false_positives,
        -stats.hits,
        stats.rule,
    )
