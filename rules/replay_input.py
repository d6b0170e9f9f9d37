"""What a replay of a draft rule pack reads: stored postmortems as plain records, and how
many at once. The store builds them (store.packs.recent_postmortem_texts); the replay
itself (check.replay) runs the analyses."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

MAX_REPLAY = 200  # postmortems per replay: keeps one replay to about a minute at worst
DEFAULT_REPLAY = 50


class StoredText(NamedTuple):
    """One stored postmortem as the service last read it."""

    postmortem_id: str
    incident_id: str
    title: str
    text: str
    format: str = "markdown"
    roster: tuple[str, ...] = ()  # names/@handles of the incident's people, when known
    # fingerprint -> "accepted" | "false-positive": reviewers' decisions in force, so a
    # replay can say whether a removed flag was one reviewers had dismissed anyway.
    decisions: Mapping[str, str] = MappingProxyType({})  # read-only: the default is shared
