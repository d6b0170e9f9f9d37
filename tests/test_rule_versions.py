"""Published rule packs: publish (validated, examples in both pipeline modes), history,
rollback as a new version, audit entries, diffs between versions, and the worker's
Service.pack following the active version."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from check.examples import validate_draft
from connector.base import IncidentRef
from rules.schema import PackError, load_pack
from rules.versions import (
    ADDED,
    CHANGED,
    PACK,
    REMOVED,
    PublishRefused,
    diff_versions,
    pack_from_version,
)
from store import packs
from store.db import make_engine, session_factory, session_scope
from store.migrate import upgrade
from store.models import AuditEntry, RulePackVersion
from store.queries import latest_analysis
from store.testing import temporary_database, unreachable_reason
from worker import tuning

# A small pack of our own: two rules, LOWER patterns only, so it runs the same in the
# trained and the blank pipeline and its examples take milliseconds.
PACK_V1 = """\
name: default
version: "mine-1"
rules:
  - id: test.forgot
    category: negative-action
    severity: warning
    message: "This names a person as forgetting a step. What made the step easy to miss?"
    explanation: "Forgetting points at a step nothing prompted."
    suggestion: "What would have prompted this step at that moment?"
    patterns:
      - [{LOWER: {IN: [forgot, forget, forgets, forgotten]}}]
    examples:
      match:
        - "Ana forgot the feature flag on the rollout."
        - "The operator forgot to rotate the signing key."
      no_match:
        - "The rollout finished without the feature flag."
        - "The key rotation job started late."
  - id: test.sloppy
    category: judgemental
    severity: error
    message: "A judgement about care explains little. What made careful work hard here?"
    explanation: "Adjectives about a person's care replace the question of conditions."
    suggestion: "What about the tooling made the careful path slower than the quick one?"
    patterns:
      - [{LOWER: {IN: [sloppy, careless, carelessly]}}]
    examples:
      match:
        - "It was a sloppy change to the load balancer."
        - "The config was edited carelessly."
      no_match:
        - "The change to the load balancer was rushed by a deadline."
        - "The config editor has no validation."
"""

# v2: test.sloppy re-levelled and a pattern added; test.forgot removed; test.hero added.
PACK_V2 = """\
name: default
version: "mine-2"
rules:
  - id: test.sloppy
    category: judgemental
    severity: warning
    message: "A judgement about care explains little. What made careful work hard here?"
    explanation: "Adjectives about a person's care replace the question of conditions."
    suggestion: "What about the tooling made the careful path slower than the quick one?"
    patterns:
      - [{LOWER: {IN: [sloppy, careless, carelessly]}}]
      - [{LOWER: {IN: [lazy, lazily]}}]
    examples:
      match:
        - "It was a sloppy change to the load balancer."
        - "The config was edited lazily."
      no_match:
        - "The change to the load balancer was rushed by a deadline."
        - "The config editor has no validation."
  - id: test.hero
    category: heroics
    severity: info
    message: "Praise of heroics hides the method. What made the fix work?"
    explanation: "Credit the fix and how it was found, not the hours."
    suggestion: "What in the method made the recovery possible, and how can it be repeated?"
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

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def unavailable(reason: str) -> None:
    """Skip on a laptop without the server; fail in CI so CI cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'pmguard.db'}"
    upgrade(url)
    return url


@pytest.fixture
def factory(database: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database)
    yield session_factory(engine)
    engine.dispose()


def _publish(factory: sessionmaker[Session], text: str, **kw) -> RulePackVersion:
    with session_scope(factory) as session:
        return tuning.publish(session, "default", text, kw.pop("actor", "ada"), **kw)


# --- publish ----------------------------------------------------------------------------


def test_publish_first_version_is_active_and_audited(factory: sessionmaker[Session]) -> None:
    row = _publish(factory, PACK_V1, reason="start tuning", now=NOW)
    assert (row.name, row.version, row.active, row.created_by) == (
        "default",
        "2026.11.23-1",
        True,
        "ada",
    )
    with session_scope(factory) as session:
        active = packs.active_pack_version(session)
        assert active is not None and active.id == row.id and active.text == PACK_V1
        entry = session.scalars(select(AuditEntry)).one()
        assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
            "ada",
            "publish-rules",
            "rule_pack",
            str(row.id),
        )
        assert entry.reason == "start tuning"
        assert entry.detail["version"] == "2026.11.23-1"
        assert entry.detail["pack_version"] == "mine-1"  # the YAML's own field, kept
        assert entry.detail["previous"] is None
        assert set(entry.detail["examples"]) == {"auto", "blank"}


def test_second_publish_deactivates_the_first_and_numbers_the_day(
    factory: sessionmaker[Session],
) -> None:
    first = _publish(factory, PACK_V1, now=NOW)
    second = _publish(factory, PACK_V2, actor="grace", now=NOW)
    third_day = _publish(factory, PACK_V1, now=datetime(2026, 11, 24, 9, tzinfo=UTC))
    assert second.version == "2026.11.23-2"
    assert third_day.version == "2026.11.24-1"
    with session_scope(factory) as session:
        history = packs.pack_history(session, "default")
        assert [v.id for v in history] == [third_day.id, second.id, first.id]  # newest first
        assert [v.active for v in history] == [True, False, False]
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.target_id == str(second.id))
        ).one()
        assert entry.actor == "grace"
        assert entry.detail["previous"] == first.version
        assert entry.detail["changes"] == {
            "added": ["test.hero"],
            "removed": ["test.forgot"],
            "changed": ["test.sloppy"],
        }
        assert packs.get_version(session, first.id).text == PACK_V1
        assert packs.get_version(session, 10_000) is None
        assert packs.pack_history(session, "other") == []


def test_publish_refuses_invalid_yaml_naming_source_rule_and_field(
    factory: sessionmaker[Session],
) -> None:
    bad_field = PACK_V1.replace("severity: error", "severity: critical")
    with pytest.raises(PackError) as caught, session_scope(factory) as session:
        tuning.publish(session, "default", bad_field, "ada")
    message = str(caught.value)
    assert message.startswith("draft: ")
    assert "rule 'test.sloppy'" in message and "field 'severity'" in message

    with (
        pytest.raises(PackError, match=r"^edit-42: invalid YAML at line"),
        session_scope(factory) as session,
    ):
        tuning.publish(session, "default", "rules: [\n  - id: x\n", "ada", source="edit-42")

    with session_scope(factory) as session:
        assert packs.pack_history(session, "default") == []
        assert session.scalars(select(AuditEntry)).all() == []


def test_publish_refuses_when_an_example_fails_and_lists_it(
    factory: sessionmaker[Session],
) -> None:
    # A near-miss that the pattern does match: the rule's own test fails.
    failing = PACK_V1.replace(
        '- "The key rotation job started late."',
        '- "Nobody forgot anything during the rotation."',
    )
    with pytest.raises(packs.PublishRefused) as caught, session_scope(factory) as session:
        tuning.publish(session, "default", failing, "ada")
    refused = caught.value
    assert isinstance(refused, ValueError)
    modes = sorted(mode for mode, _ in refused.failures)
    assert modes == ["auto", "blank"]  # checked in both pipeline modes
    assert all(f.rule == "test.forgot" and not f.expected for _, f in refused.failures)
    assert "Nobody forgot anything during the rotation." in str(refused)
    assert "test.forgot: should not match but did" in str(refused)
    with session_scope(factory) as session:
        assert packs.active_pack_version(session) is None


def test_validate_draft_is_the_publish_gate_without_a_database() -> None:
    checked = validate_draft(PACK_V1)
    assert checked.examples == {"auto": 8, "blank": 8}  # 2 rules x (2 match + 2 no_match)
    assert [r.id for r in checked.pack.rules] == ["test.forgot", "test.sloppy"]
    failing = PACK_V1.replace('- "The config editor has no validation."', '- "So sloppy."')
    with pytest.raises(PublishRefused, match=r"\[blank\] test.sloppy: should not match"):
        validate_draft(failing, "page-draft")
    assert packs.PublishRefused is PublishRefused


def test_publish_refuses_the_active_text_unchanged(factory: sessionmaker[Session]) -> None:
    _publish(factory, PACK_V1, now=NOW)
    with pytest.raises(packs.PublishRefused, match="identical to the active version"):
        _publish(factory, PACK_V1, now=NOW)


def test_publish_needs_an_actor(factory: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="actor"), session_scope(factory) as session:
        tuning.publish(session, "default", PACK_V1, " ")


def test_packs_are_kept_apart_by_name(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        mine = tuning.publish(session, "default", PACK_V1, "ada", now=NOW)
        theirs = tuning.publish(session, "payments", PACK_V2, "ada", now=NOW)
    assert mine.version == theirs.version == "2026.11.23-1"
    with session_scope(factory) as session:
        assert packs.active_pack_version(session, "default").id == mine.id
        assert packs.active_pack_version(session, "payments").id == theirs.id


# --- rollback ---------------------------------------------------------------------------


def test_rollback_is_a_new_active_version_with_the_old_text(
    factory: sessionmaker[Session],
) -> None:
    first = _publish(factory, PACK_V1, now=NOW)
    second = _publish(factory, PACK_V2, now=NOW)
    with session_scope(factory) as session:
        back = packs.rollback(session, "default", first.id, "grace", "v2 flags every postmortem")
    assert back.id not in (first.id, second.id)
    assert back.text == PACK_V1 and back.active and back.created_by == "grace"
    with session_scope(factory) as session:
        history = packs.pack_history(session, "default")
        assert [v.id for v in history] == [back.id, second.id, first.id]
        assert [v.active for v in history] == [True, False, False]
        assert history[2].text == PACK_V1  # the old row itself is untouched
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "rollback-rules")
        ).one()
        assert (entry.actor, entry.target_id, entry.reason) == (
            "grace",
            str(back.id),
            "v2 flags every postmortem",
        )
        assert entry.detail["from_id"] == first.id
        assert entry.detail["from_version"] == first.version
        assert entry.detail["previous"] == second.version


def test_rollback_refusals(factory: sessionmaker[Session]) -> None:
    first = _publish(factory, PACK_V1, now=NOW)
    with pytest.raises(ValueError, match="already active"), session_scope(factory) as session:
        packs.rollback(session, "default", first.id, "grace", "oops")
    _publish(factory, PACK_V2, now=NOW)
    with pytest.raises(ValueError, match="reason"), session_scope(factory) as session:
        packs.rollback(session, "default", first.id, "grace", "  ")
    with pytest.raises(LookupError), session_scope(factory) as session:
        packs.rollback(session, "payments", first.id, "grace", "wrong pack")
    with pytest.raises(LookupError), session_scope(factory) as session:
        packs.rollback(session, "default", 999, "grace", "no such version")


# --- PostgreSQL -------------------------------------------------------------------------


def test_publish_and_rollback_on_postgresql() -> None:
    reason = unreachable_reason()
    if reason:
        unavailable(reason)
    with temporary_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            first = _publish(factory, PACK_V1, now=NOW)
            second = _publish(factory, PACK_V2, now=NOW)
            assert (first.version, second.version) == ("2026.11.23-1", "2026.11.23-2")
            with session_scope(factory) as session:
                back = packs.rollback(session, "default", first.id, "grace", "too noisy")
            with session_scope(factory) as session:
                history = packs.pack_history(session, "default")
                assert [v.id for v in history] == [back.id, second.id, first.id]
                assert [v.active for v in history] == [True, False, False]
                assert packs.active_pack_version(session).text == PACK_V1
                actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))
                assert list(actions) == ["publish-rules", "publish-rules", "rollback-rules"]
        finally:
            engine.dispose()


# --- diff -------------------------------------------------------------------------------


def test_diff_names_added_removed_and_changed_fields() -> None:
    changes = {c.rule: c for c in diff_versions(PACK_V1, PACK_V2)}
    assert changes["test.hero"].kind == ADDED
    assert changes["test.forgot"].kind == REMOVED
    sloppy = changes["test.sloppy"]
    assert sloppy.kind == CHANGED
    assert sloppy.fields == ("severity", "patterns", "examples")
    assert "-severity: error" in sloppy.diff and "+severity: warning" in sloppy.diff
    assert "+- [{LOWER: {IN: [lazy, lazily]}}]" in sloppy.diff
    assert "+id: test.hero" in changes["test.hero"].diff
    assert "-id: test.forgot" in changes["test.forgot"].diff
    assert PACK not in changes  # no settings changed
    assert diff_versions(PACK_V1, PACK_V1) == []
    # Order: rules as the new pack lists them, then the removed ones.
    assert [c.rule for c in diff_versions(PACK_V1, PACK_V2)] == [
        "test.sloppy",
        "test.hero",
        "test.forgot",
    ]


def test_diff_of_overlays_compares_the_rules_in_force() -> None:
    # Dropping an overlay that disabled a shipped rule re-enables it: "changed: enabled",
    # not "removed", because the pack in force still has the rule.
    old = (
        "extends: default\nsettings:\n  self_blame: info\nrules:\n"
        "  - id: blame.judgemental\n    enabled: false\n"
        "  - id: blame.omission\n    severity: error\n"
    )
    new = "extends: default\nsettings:\n  self_blame: warning\n"
    changes = {c.rule: c for c in diff_versions(old, new)}
    assert set(changes) == {PACK, "blame.judgemental", "blame.omission"}
    assert changes["blame.judgemental"].fields == ("enabled",)
    assert changes["blame.omission"].fields == ("severity",)
    assert changes[PACK].fields == ("settings.self_blame",)
    assert "-  self_blame: info" in changes[PACK].diff


def test_diff_shows_the_person_shorthand_as_written() -> None:
    old = PACK_V1.replace(
        "      - [{LOWER: {IN: [sloppy, careless, carelessly]}}]",
        "      - [{PERSON: true}, {LOWER: was}, {LOWER: sloppy}]",
    )
    new = old.replace("{PERSON: true}", "{PERSON: other}")
    (change,) = diff_versions(old, new)
    assert change.fields == ("patterns",)
    assert "-- [{PERSON: true}, {LOWER: was}, {LOWER: sloppy}]" in change.diff
    assert "+- [{PERSON: other}, {LOWER: was}, {LOWER: sloppy}]" in change.diff


def test_diff_of_an_invalid_text_raises_pack_error() -> None:
    with pytest.raises(PackError, match="^new: "):
        diff_versions(PACK_V1, PACK_V1.replace("severity: error", "severity: loud"))


def test_pack_from_version_names_the_published_version_and_caches_by_id() -> None:
    row = RulePackVersion(id=7, name="default", version="2026.11.23-4", text=PACK_V1)
    pack = pack_from_version(row)
    assert (pack.name, pack.version) == ("default", "2026.11.23-4")
    assert [r.id for r in pack.rules] == ["test.forgot", "test.sloppy"]
    assert pack_from_version(row) is pack  # same object: compiled matchers are reused
    # Same id in another database with another text: parsed afresh, not served stale.
    other = RulePackVersion(id=7, name="default", version="2026.11.23-4", text=PACK_V2)
    assert [r.id for r in pack_from_version(other).rules] == ["test.sloppy", "test.hero"]


# --- the worker's pack ------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path, database: str):
    from settings import Settings
    from worker.service import Service

    svc = Service(Settings(data_dir=tmp_path, database_url=database))
    yield svc
    svc.engine.dispose()


def test_service_pack_follows_the_active_published_version(
    service, factory: sessionmaker[Session]
) -> None:
    shipped = load_pack(None)
    assert (service.pack.name, service.pack.version) == (shipped.name, shipped.version)
    row = _publish(factory, PACK_V1, now=NOW)
    # Within the refresh interval the process keeps what it read...
    service.pack_refresh_seconds = 3600
    assert service.pack.version == shipped.version
    # ...and picks the new version up at the next read after it.
    service.pack_refresh_seconds = 0
    assert (service.pack.name, service.pack.version) == ("default", row.version)
    assert [r.id for r in service.pack.rules] == ["test.forgot", "test.sloppy"]
    assert service.pack is service.pack  # cached by version id, not re-parsed per read

    second = _publish(factory, PACK_V2, now=NOW)
    assert service.pack.version == second.version


def test_service_pack_is_held_for_the_whole_job(
    service, factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.service as service_module
    from worker.check import Outcome

    first = _publish(factory, PACK_V1, now=NOW)
    service.pack_refresh_seconds = 0
    seen = []

    def fake_check(svc, ref, *, reason):
        seen.append(svc.pack.version)  # what the check runs with
        _publish(factory, PACK_V2, now=NOW)  # an admin publishes mid-job
        seen.append(svc.pack.version)  # what the analysis would be stored as
        return Outcome("ok", ref.id)

    monkeypatch.setattr(service_module, "check_incident", fake_check)
    service.check_now(IncidentRef("github", "https://github.com", "acme/ops", "12"))
    assert seen == [first.version, first.version]
    assert service.pack.version == "2026.11.23-2"  # the next job gets the new one


def test_service_keeps_working_when_the_stored_pack_does_not_load(
    service, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with session_scope(factory) as session:
        session.add(
            RulePackVersion(name="default", version="broken", text="rules: [oops", active=True)
        )
    service.pack_refresh_seconds = 0
    assert service.pack.version == load_pack(None).version  # shipped default, no exception
    assert service.pack.version == load_pack(None).version
    # Logged once, not at every refresh.
    assert sum("does not load" in r.getMessage() for r in caplog.records) == 1
    fixed = _publish(factory, PACK_V1, now=NOW)
    assert service.pack.version == fixed.version


def test_an_explicit_pack_is_never_replaced(tmp_path: Path, database: str, factory) -> None:
    from settings import Settings
    from worker.service import Service

    mine = load_pack(None)
    svc = Service(Settings(data_dir=tmp_path, database_url=database), pack=mine)
    try:
        _publish(factory, PACK_V1, now=NOW)
        svc.pack_refresh_seconds = 0
        assert svc.pack is mine
    finally:
        svc.engine.dispose()


PUBLISHED_PM = """# Postmortem: webhook relay stalled

## What happened
Jonas forgot to raise the relay's connection limit before the launch.
The change was called sloppy in the retro chat.

## Action items
- Alert on relay saturation (#31, owner @platform)
"""


def test_a_check_runs_and_records_the_published_version(
    tmp_path: Path, database: str, factory: sessionmaker[Session]
) -> None:
    from tests.fakes.github import FakeGitHub
    from tests.service_env import make_settings
    from worker.service import Service

    repo = "acme/relay"
    with FakeGitHub() as fake:
        fake.add_repo(repo)
        pm = fake.add_issue(repo, "Postmortem", PUBLISHED_PM, labels=["postmortem"])
        number = fake.add_issue(
            repo, "Relay stalled", f"Postmortem: #{pm}", labels=["incident"], state="closed"
        )
        settings = make_settings(
            tmp_path,
            database,
            "",
            github_url=fake.url,
            github_token=fake.token,
            bot_login=fake.user,
        )
        service = Service(settings)
        try:
            row = _publish(factory, PACK_V1, now=NOW)
            ref = IncidentRef("github", fake.url, repo, str(number))
            assert service.check_now(ref).status == "needs-review"
            with session_scope(factory) as session:
                analysis = latest_analysis(session, ref.id)
                assert (analysis.pack_name, analysis.pack_version) == ("default", row.version)
                # Only the published pack's rules ran: the shipped pack has many more.
                assert {f.rule for f in analysis.findings} == {"test.forgot", "test.sloppy"}
        finally:
            service.engine.dispose()
