"""Per-rule figures from reviewers' decisions: hits, accepted, false positives, precision,
the phrases most often dismissed, and the order that puts the rule to fix first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rules.stats import FlagRecord, compute_stats, normalise_phrase
from store import packs
from store import queries as q
from store.db import make_engine, session_factory, session_scope
from store.migrate import upgrade
from store.models import Analysis
from store.testing import temporary_database, unreachable_reason

FP = "false-positive"


def records(rule: str, *decisions: str | None, text: str = "flagged") -> list[FlagRecord]:
    return [FlagRecord(rule, text, d) for d in decisions]


# --- pure figures -----------------------------------------------------------------------


def test_counts_and_precision() -> None:
    (stats,) = compute_stats(
        [
            *records("r.one", "accepted", "accepted", "accepted", FP, None),
            FlagRecord("r.one", "x", FP, suppressed=True),  # silenced inline: not a hit
        ]
    )
    assert (stats.hits, stats.accepted, stats.false_positives, stats.undecided) == (5, 3, 1, 1)
    assert stats.suppressed == 1
    assert stats.precision == 0.75
    assert stats.decisions == 4


def test_precision_is_none_without_decisions() -> None:
    (stats,) = compute_stats(records("r.one", None, None))
    assert stats.precision is None and stats.undecided == 2


def test_rules_without_hits_can_be_listed() -> None:
    out = compute_stats(records("r.one", "accepted"), rules=["r.quiet", "r.one"])
    quiet = next(s for s in out if s.rule == "r.quiet")
    assert (quiet.hits, quiet.precision, quiet.dismissed) == (0, None, ())


def test_worst_rule_first() -> None:
    out = compute_stats(
        [
            # Trusted (5+ decisions), precision 0.6.
            *records("r.decent", "accepted", "accepted", "accepted", FP, FP),
            # Trusted, precision 0.2: fix this first.
            *records("r.noisy", "accepted", FP, FP, FP, FP),
            # One decision, a false positive: too few to trust its precision of 0.
            *records("r.new", FP),
            # Four false positives out of four decisions: one short of trusted, so it ranks
            # after the trusted rules but before rules with fewer false positives.
            *records("r.untuned", FP, FP, FP, FP, None, None, None),
            *records("r.fine", None),
        ]
    )
    assert [s.rule for s in out] == ["r.noisy", "r.decent", "r.untuned", "r.new", "r.fine"]


def test_min_decisions_is_adjustable() -> None:
    data = [*records("r.a", "accepted", FP), *records("r.b", FP, FP, FP, "accepted")]
    assert [s.rule for s in compute_stats(data, min_decisions=2)] == ["r.b", "r.a"]
    assert [s.rule for s in compute_stats(data, min_decisions=10)] == ["r.b", "r.a"]
    data = [*records("r.a", FP), *records("r.b", "accepted", "accepted", FP)]
    # Trusted r.b (0.67) ranks above r.a, whose single false positive proves little.
    assert [s.rule for s in compute_stats(data, min_decisions=3)] == ["r.b", "r.a"]
    assert [s.rule for s in compute_stats(data, min_decisions=1)] == ["r.a", "r.b"]


def test_most_dismissed_phrases_are_normalised_and_top_five() -> None:
    data = [
        FlagRecord("r.one", "Forgot", FP),
        FlagRecord("r.one", "forgot ", FP),
        FlagRecord("r.one", "forgot.", FP),
        FlagRecord("r.one", "could’ve  paused", FP),
        FlagRecord("r.one", "could've paused", FP),
        FlagRecord("r.one", "forgot", "accepted"),  # accepted: not a dismissed phrase
        *(FlagRecord("r.one", f"phrase {n}", FP) for n in range(6)),
    ]
    (stats,) = compute_stats(data)
    assert stats.dismissed[:2] == (("forgot", 3), ("could've paused", 2))
    assert len(stats.dismissed) == 5


def test_phrase_normalisation_masks_handles() -> None:
    assert normalise_phrase("  “@kwame  Broke”  ") == "@… broke"
    assert normalise_phrase("Human\nerror!") == "human error"


# --- from the store ---------------------------------------------------------------------


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'pmguard.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _check(session: Session, key: str, flags: list[tuple[str, str, str, bool]]) -> Analysis:
    """Store one analysis of incident `key` with findings (rule, text, sentence, suppressed)."""
    incident = q.upsert_incident(session, "jira", "https://ops.example.net", "OPS", key)
    return q.save_analysis(
        session,
        incident_id=incident.id,
        postmortem_id=None,
        text="(postmortem text)",
        format="markdown",
        pack_name="default",
        pack_version="test",
        model="blank",
        verdict="needs-review",
        findings=[
            {"rule": r, "text": t, "sentence": s, "suppressed": sup} for r, t, s, sup in flags
        ],
        action_items=[],
        summary={},
    )


S1 = "Ravi forgot the second region."
S2 = "The failover runbook was sloppy."
S3 = "Nobody on the call forgot the freeze."
S4 = "The script forgot nothing, the lock did."
S5 = "The sloppy cron schedule overlapped the backup."
S6 = "A sloppy one-liner, quoted from the vendor."


def _decide(session: Session, analysis: Analysis, sentence: str, decision: str) -> None:
    finding = next(f for f in analysis.findings if f.sentence == sentence)
    q.decide_finding(session, finding.id, decision, "maria", reason="reviewed in the retro")


def _populate(session: Session) -> None:
    first = _check(
        session,
        "1",
        [
            ("test.forgot", "forgot", S1, False),
            ("test.sloppy", "sloppy", S2, False),
            ("test.forgot", "Forgot", S3, False),
        ],
    )
    _decide(session, first, S1, FP)
    _decide(session, first, S2, "accepted")
    _decide(session, first, S3, FP)
    # The author fixed the accepted sentence; the re-check carries the other decisions on.
    _check(
        session,
        "1",
        [("test.forgot", "forgot", S1, False), ("test.forgot", "Forgot", S3, False)],
    )
    other = _check(
        session,
        "2",
        [
            ("test.forgot", "forgot ", S4, False),
            ("test.sloppy", "sloppy", S5, False),
            ("test.sloppy", "sloppy", S6, True),
        ],
    )
    _decide(session, other, S4, FP)


def _assert_figures(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        forgot, sloppy = packs.rule_stats(session, min_decisions=1)
    # Each flag once per incident, however often the incident was re-checked.
    assert forgot.rule == "test.forgot"
    assert (forgot.hits, forgot.accepted, forgot.false_positives, forgot.undecided) == (3, 0, 3, 0)
    assert forgot.precision == 0.0
    assert forgot.dismissed == (("forgot", 3),)
    assert sloppy.rule == "test.sloppy"
    # The accepted flag was edited away later and still counts, with its decision.
    assert (sloppy.hits, sloppy.accepted, sloppy.false_positives, sloppy.undecided) == (2, 1, 0, 1)
    assert sloppy.suppressed == 1
    assert sloppy.precision == 1.0 and sloppy.dismissed == ()


def test_rule_stats_from_stored_decisions(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        _populate(session)
    _assert_figures(factory)


def test_rule_stats_since(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        _populate(session)
        old = session.get(Analysis, 1)
        old.created_at = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(factory) as session:
        stats = {
            s.rule: s for s in packs.rule_stats(session, since=datetime(2026, 1, 1, tzinfo=UTC))
        }
        everything = {s.rule: s for s in packs.rule_stats(session, rules=["test.hero"])}
    # Without the first analysis the accepted-then-edited flag is gone.
    assert stats["test.sloppy"].accepted == 0 and stats["test.sloppy"].hits == 1
    assert stats["test.forgot"].hits == 3
    assert everything["test.hero"].hits == 0


def test_rule_stats_on_postgresql() -> None:
    reason = unreachable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
        pytest.skip(reason)
    with temporary_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            with session_scope(factory) as session:
                _populate(session)
            _assert_figures(factory)
        finally:
            engine.dispose()
