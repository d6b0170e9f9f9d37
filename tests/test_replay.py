"""Replaying a draft rule pack on stored postmortems: the flags it would add and remove."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from check.replay import replay, summarise
from nlp.analysis import analyse
from rules.replay_input import MAX_REPLAY, StoredText
from rules.schema import parse_pack
from store import packs
from store import queries as q
from store.db import make_engine, session_factory, session_scope
from store.migrate import upgrade
from tests.test_rule_versions import PACK_V1
from worker import tuning

CURRENT = parse_pack(PACK_V1, "current")
DISABLE_FORGOT = parse_pack(
    PACK_V1.replace(
        "    category: negative-action\n",
        "    category: negative-action\n    enabled: false\n",
    ),
    "draft",
)
HERO_RULE = """\
  - id: test.hero
    category: heroics
    severity: info
    message: "Praise of heroics hides the method. What made the fix work?"
    explanation: "Credit the fix and how it was found, not the hours."
    suggestion: "What in the method made the recovery possible?"
    patterns:
      - [{LOWER: saved}, {LOWER: the}, {LOWER: day}]
    examples:
      match:
        - "Lena saved the day with a manual failover."
        - "The night shift saved the day again."
      no_match:
        - "The failover saved ten minutes of downtime."
        - "The day shift took over at eight."
"""
ADD_HERO = parse_pack(PACK_V1 + HERO_RULE, "draft")
RELEVEL_SLOPPY = parse_pack(PACK_V1.replace("severity: error", "severity: info"), "draft")

SEARCH = """\
# Cache stampede on the search API

## Summary
After the deploy Omar forgot to warm the cache, so the origin took the full load.
The runbook has no warm-up step.

## What went well
Priya saved the day by shedding traffic at the edge.

## Action items
- Add a cache warm-up step to the deploy pipeline (owner: @search, SRCH-88, due 2026-12-10)
"""

CERTS = """\
# Expired certificate on the status page

The renewal was sloppy and the expiry mail went to a shared inbox nobody reads.
We forgot the second domain in the renewal request.
<!-- pmguard-disable-next-line test.forgot -- quoted from the vendor's ticket -->
The vendor forgot to include the intermediate certificate.
"""

# The same sentence twice: each occurrence is a flag of its own.
REPEATED = """\
# Disk full on the build cache

Someone forgot the cleanup cron.

## Timeline

Someone forgot the cleanup cron.
"""

CLEAN = """\
# Slow queries after the index rebuild

The rebuild ran during peak traffic because the scheduler has no notion of peak hours.
"""


def stored(pm_id: str, text: str, **kw) -> StoredText:
    return StoredText(pm_id, f"incident-{pm_id}", f"Postmortem {pm_id}", text, **kw)


def test_a_disabled_rule_removes_its_flags(model: str) -> None:
    results = replay(
        DISABLE_FORGOT, CURRENT, [stored("search", SEARCH), stored("clean", CLEAN)], model=model
    )
    search, clean = results
    assert [(f.rule, f.line, f.text, f.severity) for f in search.removed] == [
        ("test.forgot", 4, "forgot", "warning")
    ]
    assert search.added == () and search.relevelled == ()
    assert (search.current_count, search.draft_count) == (1, 0)
    assert search.changed and search.incident_id == "incident-search"
    assert search.title == "Postmortem search"
    assert not clean.changed and (clean.current_count, clean.draft_count) == (0, 0)
    assert summarise(results)["removed"] == 1
    assert summarise(results)["changed"] == 1


def test_an_added_rule_adds_flags(model: str) -> None:
    (search,) = replay(ADD_HERO, CURRENT, [stored("search", SEARCH)], model=model)
    assert [(f.rule, f.line, f.text, f.severity) for f in search.added] == [
        ("test.hero", 8, "saved the day", "info")
    ]
    assert search.removed == ()
    assert (search.current_count, search.draft_count) == (1, 2)


def test_suppressed_flags_are_left_out_on_both_sides(model: str) -> None:
    (certs,) = replay(DISABLE_FORGOT, CURRENT, [stored("certs", CERTS)], model=model)
    # "We forgot the second domain" is removed; the vendor sentence is suppressed inline
    # and was never shown, so it is neither counted nor removed.
    assert [(f.rule, f.line) for f in certs.removed] == [("test.forgot", 4)]
    assert (certs.current_count, certs.draft_count) == (2, 1)  # sloppy + forgot, sloppy


def test_a_relevelled_rule_is_neither_added_nor_removed(model: str) -> None:
    (certs,) = replay(RELEVEL_SLOPPY, CURRENT, [stored("certs", CERTS)], model=model)
    assert certs.added == () and certs.removed == ()
    assert [(f.rule, f.previous_severity, f.severity) for f in certs.relevelled] == [
        ("test.sloppy", "error", "info")
    ]


def test_a_repeated_sentence_counts_each_time(model: str) -> None:
    (rep,) = replay(DISABLE_FORGOT, CURRENT, [stored("rep", REPEATED)], model=model)
    assert [f.line for f in rep.removed] == [3, 7]
    assert len({f.fingerprint for f in rep.removed}) == 1


def test_removed_flags_carry_the_reviewers_decision() -> None:
    current = analyse(SEARCH, pack=CURRENT, model="blank", check_actions=False).findings
    decisions = {current[0].fingerprint: "false-positive"}
    (search,) = replay(
        DISABLE_FORGOT, CURRENT, [stored("search", SEARCH, decisions=decisions)], model="blank"
    )
    assert [f.decision for f in search.removed] == ["false-positive"]
    assert summarise([search])["removed_false_positives"] == 1


def test_replay_is_bounded() -> None:
    too_many = [stored(str(i), CLEAN) for i in range(MAX_REPLAY + 1)]
    with pytest.raises(ValueError, match=str(MAX_REPLAY)):
        replay(CURRENT, CURRENT, too_many)


# --- from the store ---------------------------------------------------------------------


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'pmguard.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _store(session: Session, key: str, text: str) -> int:
    """One check of incident `key` whose postmortem is issue #<key>-pm; the analysis id."""
    incident = q.upsert_incident(
        session, "github", "https://github.com", "acme/ops", key, title=f"Incident {key}"
    )
    pm = q.link_postmortem(session, incident, kind="issue", locator=f"acme/ops#{key}-pm")
    findings = analyse(text, pack=CURRENT, model="blank").findings
    analysis = q.save_analysis(
        session,
        incident_id=incident.id,
        postmortem_id=pm.id,
        text=text,
        format="markdown",
        pack_name="default",
        pack_version="test",
        model="blank",
        verdict="needs-review" if findings else "ok",
        findings=[
            {**f.to_dict(), "start": f.start, "end": f.end, "sentence": f.sentence}
            for f in findings
        ],
        action_items=[],
        summary={},
    )
    return analysis.id


def test_replay_recent_uses_the_latest_analysis_of_each_postmortem(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as session:
        _store(session, "1", CLEAN)  # superseded below: its postmortem was edited
        _store(session, "2", CERTS)
        _store(session, "1", SEARCH)
        _store(session, "3", REPEATED)
    with session_scope(factory) as session:
        texts = packs.recent_postmortem_texts(session, limit=10)
        assert [t.text for t in texts] == [REPEATED, SEARCH, CERTS]  # newest first, distinct
        assert [t.title for t in packs.recent_postmortem_texts(session, limit=2)] == [
            "Incident 3",
            "Incident 1",
        ]
    results = tuning.replay_recent(factory, DISABLE_FORGOT, CURRENT, limit=10, model="blank")
    assert [len(r.removed) for r in results] == [2, 1, 1]
    assert all(r.added == () for r in results)


def test_replay_recent_reports_decisions_in_force(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        analysis_id = _store(session, "7", SEARCH)
        finding = q.latest_analysis(session, _incident_id(session, "7")).findings[0]
        assert finding.analysis_id == analysis_id and finding.rule == "test.forgot"
        q.decide_finding(session, finding.id, "false-positive", "maria", reason="quoted a vendor")
        _store(session, "7", SEARCH)  # a re-check carries the decision forward
    with session_scope(factory) as session:
        (text,) = packs.recent_postmortem_texts(session)
        assert list(text.decisions.values()) == ["false-positive"]
    (result,) = tuning.replay_recent(factory, DISABLE_FORGOT, CURRENT, model="blank")
    assert [(f.rule, f.decision) for f in result.removed] == [("test.forgot", "false-positive")]


def test_replay_recent_limit_is_clamped(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        for key in "abc":
            _store(session, key, CLEAN)
        assert len(packs.recent_postmortem_texts(session, limit=0)) == 1
        assert len(packs.recent_postmortem_texts(session, limit=10_000)) == 3


def _incident_id(session: Session, key: str) -> str:
    return q.incident_key("github", "https://github.com", "acme/ops", key)


def test_replay_recent_holds_no_transaction_while_analysing(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite every transaction holds the write lock; a replay lasting a minute inside
    # one would make every webhook wait, then fail. A write must get through mid-replay.
    with session_scope(factory) as session:
        _store(session, "9", SEARCH)
    real_replay = tuning.replay

    def replay_while_writing(*args, **kwargs):
        other = sqlite3.connect(factory.kw["bind"].url.database, timeout=0.2)
        try:
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the lock is held
            other.execute("ROLLBACK")
        finally:
            other.close()
        return real_replay(*args, **kwargs)

    monkeypatch.setattr(tuning, "replay", replay_while_writing)
    (result,) = tuning.replay_recent(factory, DISABLE_FORGOT, CURRENT, model="blank")
    assert len(result.removed) == 1
