"""End to end with GitHub: a signed delivery -> 202 -> worker -> the fake GitHub shows one
comment, one verdict label and the state. PyGithub talks HTTP to tests/fakes/github.py.
Runs on SQLite + huey-SQLite and on PostgreSQL + Redis."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from check.comment import GITHUB_MARKER
from store import queries
from store.db import session_scope
from store.models import Analysis, Job
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.service_env import ServiceEnv, backend_urls, github_env, make_settings, wait_until
from tests.yaml_bombs import billion_laughs

REPO = "acme/ops"
BLAME_PM = """# Postmortem: checkout outage

## What happened
Ravi forgot to run the migration before the deploy. The on-call engineer should have
checked the replica lag.

## Action items
- Make the deploy run pending migrations automatically (#90, owner @sre)
"""
CLEAN_PM = """# Postmortem: checkout outage

## What happened
The deploy ran before the migration because the pipeline does not order the two steps.

## Action items
- Make the deploy run pending migrations automatically (#90, owner @sre)
- Add the ordering to the release runbook (https://wiki.example/runbooks/release)
"""


@pytest.fixture(params=["sqlite", "postgres-redis"])
def env(request, tmp_path: Path, fake_github: FakeGitHub):  # noqa: F811
    with github_env(request.param, tmp_path, fake_github) as e:
        fake_github.add_repo(REPO)
        fake_github.set_permission(REPO, "lead", "write")
        fake_github.set_permission(REPO, "visitor", "read")
        e.start_worker()
        yield e


def issue_payload(fake: FakeGitHub, number: int, action: str, sender: str = "ana") -> dict:
    return {
        "action": action,
        "issue": fake.issue(REPO, number),
        "repository": {"full_name": REPO, "name": REPO.split("/")[1],
                       "owner": {"login": REPO.split("/")[0]}},
        "sender": {"login": sender, "type": "User"},
    }


def comment_payload(fake: FakeGitHub, number: int, body: str, sender: str) -> dict:
    return {
        "action": "created",
        "issue": fake.issue(REPO, number),
        "comment": {"id": 1, "body": body, "user": {"login": sender, "type": "User"}},
        "repository": {"full_name": REPO},
        "sender": {"login": sender, "type": "User"},
    }


def our_comments(fake: FakeGitHub, number: int) -> list[dict]:
    return [c for c in fake.comments(REPO, number) if GITHUB_MARKER in c["body"]]


def close(env, number: int, delivery: str | None = None):
    env.fake.close_issue(REPO, number)
    return env.github("issues", issue_payload(env.fake, number, "closed"), delivery)


def test_closed_incident_without_postmortem_gets_one_kind_comment_and_a_label(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "Latency spiked.", labels=["incident"])
    response = close(env, number)
    assert response.status_code == 202, response.get_json()
    [comment] = wait_until(lambda: our_comments(env.fake, number), what="the comment")
    assert "No postmortem is linked yet" in comment["body"]
    assert " you" not in comment["body"].lower()
    wait_until(lambda: "postmortem:missing" in env.fake.labels(REPO, number))
    assert env.fake.issue(REPO, number)["state"] == "closed"


def test_blaming_postmortem_is_flagged_with_systems_questions(env) -> None:
    pm = env.fake.add_issue(REPO, "Postmortem", BLAME_PM, labels=["postmortem"])
    number = env.fake.add_issue(REPO, "Checkout down", f"Postmortem: #{pm}", labels=["incident"])
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    body = comment["body"]
    assert "Ravi" not in body.split("“")[0]  # the intro never names anyone
    assert "running the migration" in body
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(REPO, number))
    from prometheus_client import REGISTRY

    assert (REGISTRY.get_sample_value("pmguard_findings_total", {"rule": "blame.omission"})
            or 0) >= 1
    with session_scope(env.service.sessions) as session:
        ref_id = f"github:{env.fake.url}:{REPO}#{number}"
        analysis = queries.latest_analysis(session, ref_id)
        assert analysis is not None and analysis.text == BLAME_PM
        assert analysis.pack_version and {f.rule for f in analysis.findings} >= {
            "blame.omission"
        }


def test_a_postmortem_kept_as_a_sub_issue_is_read_and_checked(env) -> None:
    number = env.fake.add_issue(REPO, "Checkout down", "", labels=["incident"])
    pm = env.fake.add_issue(REPO, "Postmortem", BLAME_PM, labels=["postmortem"])
    env.fake.add_sub_issue(REPO, number, REPO, pm)
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    assert "running the migration" in comment["body"]
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(REPO, number))


def test_redelivery_is_a_no_op(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    assert close(env, number, delivery="d-1").status_code == 202
    wait_until(lambda: our_comments(env.fake, number))
    again = env.github("issues", issue_payload(env.fake, number, "closed"), "d-1")
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    with session_scope(env.service.sessions) as session:
        assert len(queries.recent_jobs(session)) == 1


def test_concurrent_deliveries_for_one_incident_leave_one_comment(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.close_issue(REPO, number)
    payload = issue_payload(env.fake, number, "closed")
    # Six distinct deliveries (a repeated body would be a replay): their timestamps differ.
    payloads = [{**payload, "issue": {**payload["issue"], "updated_at": f"2026-01-01T00:00:0{i}Z"}}
                for i in range(6)]
    codes = []
    threads = [
        threading.Thread(target=lambda p=p: codes.append(env.github("issues", p).status_code))
        for p in payloads
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [202] * 6

    def all_done():
        with session_scope(env.service.sessions) as session:
            return all(j.status == "done" for j in queries.recent_jobs(session))

    wait_until(all_done, what="all jobs done")
    assert len(our_comments(env.fake, number)) == 1
    posts = env.fake.calls("POST", rf"/repos/{REPO}/issues/{number}/comments$")
    assert len(posts) == 1


def test_editing_the_postmortem_edits_the_comment_in_place(env) -> None:
    pm = env.fake.add_issue(REPO, "Postmortem", BLAME_PM, labels=["postmortem"])
    number = env.fake.add_issue(REPO, "Checkout down", f"Postmortem: #{pm}", labels=["incident"])
    env.fake.cross_reference(REPO, number, REPO, pm)
    close(env, number)
    [first] = wait_until(lambda: our_comments(env.fake, number))
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(REPO, number))
    env.fake.edit_issue(REPO, pm, body=CLEAN_PM)
    edited = issue_payload(env.fake, pm, "edited")
    edited["changes"] = {"body": {"from": BLAME_PM}}
    assert env.github("issues", edited).status_code == 202
    wait_until(lambda: "postmortem:ok" in env.fake.labels(REPO, number), what="ok label")
    [after] = our_comments(env.fake, number)
    assert after["id"] == first["id"] and after["body"] != first["body"]
    wait_until(lambda: "postmortem:needs-review" not in env.fake.labels(REPO, number),
               what="the old verdict label to go")


def test_recheck_command_needs_write_access(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    close(env, number)
    wait_until(lambda: our_comments(env.fake, number))
    pm = env.fake.add_issue(REPO, "Postmortem", CLEAN_PM, labels=["postmortem"])
    env.fake.add_comment(REPO, number, f"Postmortem: #{pm}", user="visitor")
    assert env.github(
        "issue_comment", comment_payload(env.fake, number, "/pmguard recheck", "visitor")
    ).status_code == 202
    wait_until(lambda: _jobs_done(env), what="visitor's recheck")
    assert "postmortem:missing" in env.fake.labels(REPO, number)
    env.github("issue_comment", comment_payload(env.fake, number, "/pmguard recheck", "lead"))
    wait_until(lambda: "postmortem:ok" in env.fake.labels(REPO, number), what="recheck by lead")


def _jobs_done(env) -> bool:
    with session_scope(env.service.sessions) as session:
        return all(j.status in ("done", "failed") for j in queries.recent_jobs(session))


def test_tracker_errors_are_retried_with_backoff_until_success(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.fail("GET", rf"/repos/{REPO}/issues/{number}$", status=500, times=2)
    env.fake.fail(
        "POST", rf"/repos/{REPO}/issues/{number}/comments$", status=429, times=1,
        headers={"Retry-After": "1"}, body={"message": "secondary rate limit"},
    )
    assert close(env, number).status_code == 202
    wait_until(lambda: our_comments(env.fake, number), timeout=30, what="comment after retries")
    wait_until(lambda: _jobs_done(env), what="the job to finish")
    with session_scope(env.service.sessions) as session:
        [job] = queries.recent_jobs(session)
        assert job.status == "done" and job.attempts >= 3


def test_a_tracker_that_times_out_is_retried_until_it_answers(env) -> None:
    from dataclasses import replace

    from worker.trackers import Trackers

    env.service.trackers = Trackers(replace(env.service.settings, tracker_timeout=1))
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.delay("GET", rf"/repos/{REPO}/issues/{number}/comments$", 3, times=1)
    assert close(env, number).status_code == 202
    wait_until(lambda: our_comments(env.fake, number), timeout=30, what="comment after timeout")
    wait_until(lambda: _jobs_done(env), what="the job to finish")
    with session_scope(env.service.sessions) as session:
        [job] = queries.recent_jobs(session)
        assert job.status == "done" and job.attempts == 2


def test_a_job_that_keeps_failing_is_visibly_failed_and_can_be_retried(env) -> None:
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.fail("GET", rf"/repos/{REPO}/issues/{number}$", status=502, times=None)
    assert close(env, number).status_code == 202

    def failed():
        with session_scope(env.service.sessions) as session:
            return queries.failed_jobs(session)

    [job] = wait_until(failed, timeout=30, what="the job to fail for good")
    assert job.attempts == 4 and "502" in job.last_error
    env.fake.clear_faults()
    with session_scope(env.service.sessions) as session:
        queries.retry_job(session, job.id)
    env.service.enqueue(job.id)
    wait_until(lambda: our_comments(env.fake, number), what="comment after a manual retry")


def test_reopen_enforcement(env) -> None:
    env.service.policy = env.service.policy.__class__(enforcement="reopen")
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    close(env, number)
    wait_until(lambda: env.fake.issue(REPO, number)["state"] == "open", what="reopen")


def test_repository_policy_file_overrides_the_service(env) -> None:
    env.fake.add_file(REPO, ".github/pmguard.yml", "labels:\n  missing: needs-postmortem\n")
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    close(env, number)
    wait_until(lambda: "needs-postmortem" in env.fake.labels(REPO, number))


def test_a_repository_policy_of_aliases_is_ignored_and_the_check_goes_on(env) -> None:
    # Issue 9, Medium 4: 474 bytes here froze the worker for 24 s, and reconcile re-queued it.
    env.fake.add_file(REPO, ".github/pmguard.yml", billion_laughs("severities"))
    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    close(env, number)
    wait_until(lambda: our_comments(env.fake, number), what="a comment under the service policy")


def test_reconcile_checks_incidents_the_webhooks_missed(env) -> None:
    from datetime import UTC, datetime, timedelta

    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.close_issue(REPO, number)  # no delivery: the webhook was lost
    missed = env.service.reconcile_project(
        "github", REPO, datetime.now(UTC) - timedelta(days=7)
    )
    assert missed == [f"github:{env.fake.url}:{REPO}#{number}"]
    wait_until(lambda: our_comments(env.fake, number))
    assert env.service.reconcile_project(
        "github", REPO, datetime.now(UTC) - timedelta(days=7)
    ) == []


def test_reconcile_leaves_an_incident_whose_check_is_already_queued(env) -> None:
    from datetime import UTC, datetime, timedelta

    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.close_issue(REPO, number)
    ref_id = f"github:{env.fake.url}:{REPO}#{number}"
    with session_scope(env.service.sessions) as session:  # delivered, not yet run
        queries.create_job(session, "check", ref_id, {}, 1)
    since = datetime.now(UTC) - timedelta(days=7)
    assert env.service.reconcile_project("github", REPO, since) == []


def test_the_workers_reconcile_on_their_own_once_per_interval(env) -> None:
    # The service has seen one incident: it watches from there on.
    seen = env.fake.add_issue(REPO, "Seen", "", labels=["incident"])
    assert close(env, seen).status_code == 202
    wait_until(lambda: our_comments(env.fake, seen))
    missed = env.fake.add_issue(REPO, "Missed", "", labels=["incident"])
    env.fake.close_issue(REPO, missed)  # closed, and its delivery never arrived
    [job_id] = env.service.schedule_reconcile()
    wait_until(lambda: our_comments(env.fake, missed), what="the reconciled incident's comment")
    assert env.service.schedule_reconcile() == []  # not due again for a day
    with session_scope(env.service.sessions) as session:
        job = session.get(Job, job_id)
        wait_until(lambda: session.refresh(job) or job.status == "done")
        assert job.kind == "reconcile" and job.payload["project"] is None
    assert len(our_comments(env.fake, seen)) == 1  # checked already: left alone


def test_a_scheduled_reconcile_starts_no_earlier_than_the_first_job(env) -> None:
    # Nothing recorded yet: a new installation leaves older incidents alone.
    old = env.fake.add_issue(REPO, "Before install", "", labels=["incident"])
    env.fake.close_issue(REPO, old)
    assert env.service.schedule_reconcile() == []
    with session_scope(env.service.sessions) as session:
        assert queries.recent_jobs(session) == []


def test_concurrent_schedulers_queue_one_reconcile(env) -> None:
    with session_scope(env.service.sessions) as session:
        queries.create_job(session, "check", None, {}, 1)  # the service has been running
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(env.service.schedule_reconcile()))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_not_incidents_and_exempt_closes_need_nothing(tmp_path, fake_github, backend):  # noqa: F811
    with backend_urls(backend, tmp_path) as (db, redis):
        e = ServiceEnv(make_settings(tmp_path, db, redis, github_url=fake_github.url,
                                     github_token=fake_github.token), "pmguard-plain")
        fake_github.add_repo(REPO)
        plain = fake_github.add_issue(REPO, "Typo in docs", "", labels=["docs"])
        fake_github.close_issue(REPO, plain)
        assert e.github("issues", issue_payload(fake_github, plain, "closed")).status_code == 204
        wontfix = fake_github.add_issue(REPO, "False alarm", "", labels=["incident"])
        fake_github.close_issue(REPO, wontfix, state_reason="not_planned")
        payload = issue_payload(fake_github, wontfix, "closed")
        assert e.github("issues", payload).status_code == 204
        assert e.github("issues", issue_payload(fake_github, plain, "reopened")).status_code == 204
        e.stop()


def test_a_hundred_concurrent_redeliveries_make_one_job_and_one_comment(env) -> None:
    from concurrent.futures import ThreadPoolExecutor

    number = env.fake.add_issue(REPO, "API down", "", labels=["incident"])
    env.fake.close_issue(REPO, number)
    payload = issue_payload(env.fake, number, "closed")

    def deliver(_i: int) -> int:
        return env.github("issues", payload, delivery="the-same-delivery").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(deliver, range(100)))
    assert sorted(set(codes)) == [200, 202] and codes.count(202) == 1
    wait_until(lambda: _jobs_done(env) and our_comments(env.fake, number), what="the check")
    with session_scope(env.service.sessions) as session:
        assert len(queries.recent_jobs(session)) == 1
    assert len(our_comments(env.fake, number)) == 1


def test_a_burst_of_deliveries_reaches_the_queue_as_one_message_and_all_are_checked(
    env, monkeypatch
) -> None:
    import worker.service as service_module

    # A long linger makes the burst certain to travel together.
    monkeypatch.setattr(service_module, "HANDOFF_LINGER_SECONDS", 0.5)
    batches: list[list[int]] = []
    enqueue_many = env.service.jobs.enqueue_many
    monkeypatch.setattr(env.service.jobs, "enqueue_many",
                        lambda ids: (batches.append(list(ids)), enqueue_many(ids)))
    numbers = [env.fake.add_issue(REPO, f"Outage {i}", "", labels=["incident"])
               for i in range(5)]
    for number in numbers:
        assert close(env, number).status_code == 202
    for number in numbers:
        wait_until(lambda n=number: our_comments(env.fake, n), what=f"comment on #{number}")
    assert sorted(len(b) for b in batches) == [5]
    assert all(len(our_comments(env.fake, n)) == 1 for n in numbers)


# ---- scoped, bounded postmortem reads (issue 9) ---------------------------------------


def postmortem_reads(env, pattern: str) -> list:
    return env.fake.calls("GET", pattern)


def test_one_issue_written_two_hundred_ways_is_read_once(env) -> None:
    pm = env.fake.add_issue(REPO, "Postmortem", CLEAN_PM, labels=["postmortem"])
    forms = [f"#{pm}", f"#0{pm}", f"#00{pm}", f"{REPO.upper()}#{pm}",
             f"{env.fake.web_url}/{REPO}/issues/{pm}/",
             f"{env.fake.web_url}/{REPO}/issues/0{pm}#issuecomment-1"]
    body = "\n".join(f"Postmortem: {forms[i % len(forms)]}" for i in range(200))
    number = env.fake.add_issue(REPO, "Checkout down", body, labels=["incident"])
    assert close(env, number).status_code == 202
    wait_until(lambda: "postmortem:ok" in env.fake.labels(REPO, number))
    assert len(postmortem_reads(env, rf"^/repos/{REPO}/issues/{pm}$")) == 1
    with session_scope(env.service.sessions) as session:
        incident_id = f"github:{env.fake.url}:{REPO}#{number}"
        assert session.query(Analysis).filter_by(incident_id=incident_id).count() == 1


def test_references_beyond_the_cap_are_reported_not_read(env) -> None:
    from rules.incident_policy import MAX_POSTMORTEM_REFS

    body = "\n".join(f"Postmortem: #{n}" for n in range(1000, 1200))
    number = env.fake.add_issue(REPO, "Checkout down", body, labels=["incident"])
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    reads = postmortem_reads(env, rf"^/repos/{REPO}/issues/1\d\d\d$")
    assert len(reads) == MAX_POSTMORTEM_REFS
    assert f"read the first {MAX_POSTMORTEM_REFS}" in comment["body"]
    assert "190 more" in comment["body"]


SECRET_REPO = "acme/secret-infra"
SECRET_PM = "# Infra postmortem\n\nThe root password is hunter2-SECRET. Ravi forgot to rotate it.\n"
OUTSIDE = "outside the allowed places"


def secret_repo(env) -> None:
    env.fake.add_repo(SECRET_REPO, private=True)
    env.fake.add_file(SECRET_REPO, "docs/pm.md", SECRET_PM)
    assert env.fake.add_issue(
        SECRET_REPO, "Infra postmortem", SECRET_PM, labels=["postmortem"]
    ) == 1


def assert_refused(env, number: int) -> str:
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    body = comment["body"]
    assert OUTSIDE in body
    assert "hunter2" not in body and "Ravi" not in body and "Infra postmortem" not in body
    assert postmortem_reads(env, rf"^/repos/{SECRET_REPO}") == [], "nothing may be requested"
    wait_until(lambda: "postmortem:missing" in env.fake.labels(REPO, number))
    return body


def test_a_blob_url_in_another_repository_is_not_read(env) -> None:
    secret_repo(env)
    url = f"{env.fake.web_url}/{SECRET_REPO}/blob/main/docs/pm.md"
    number = env.fake.add_issue(REPO, "Checkout down", f"Postmortem: {url}", labels=["incident"])
    assert close(env, number).status_code == 202
    assert_refused(env, number)


def test_an_issue_reference_in_another_repository_is_not_read(env) -> None:
    secret_repo(env)
    number = env.fake.add_issue(
        REPO, "Checkout down", f"Postmortem: {SECRET_REPO}#1", labels=["incident"]
    )
    assert close(env, number).status_code == 202
    assert_refused(env, number)


def test_a_cross_reference_from_another_repository_is_not_read(env) -> None:
    secret_repo(env)
    number = env.fake.add_issue(REPO, "Checkout down", "", labels=["incident"])
    env.fake.cross_reference(SECRET_REPO, 1, REPO, number)
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    assert "hunter2" not in comment["body"] and OUTSIDE in comment["body"]
    assert postmortem_reads(env, rf"^/repos/{SECRET_REPO}/(issues/1|contents)") == []


def test_a_repository_the_policy_names_is_read(env) -> None:
    from dataclasses import replace

    from rules.incident_policy import policy_from_mapping

    env.fake.add_repo("acme/postmortems")
    env.fake.add_file("acme/postmortems", "2026/checkout.md", CLEAN_PM)
    pm = env.fake.add_issue("acme/postmortems", "Postmortem", CLEAN_PM, labels=["postmortem"])
    env.service.policy = replace(
        env.service.policy,
        postmortem_sources=policy_from_mapping(
            {"postmortem_sources": {"github": ["Acme/Postmortems"]}}, "policy"
        ).postmortem_sources,
    )
    url = f"{env.fake.web_url}/acme/postmortems/blob/main/2026/checkout.md"
    number = env.fake.add_issue(
        REPO, "Checkout down", f"Postmortem: acme/postmortems#{pm}\nPIR: {url}",
        labels=["incident"],
    )
    assert close(env, number).status_code == 202
    wait_until(lambda: "postmortem:ok" in env.fake.labels(REPO, number))
    assert postmortem_reads(env, rf"^/repos/acme/postmortems/issues/{pm}$")
    assert postmortem_reads(env, r"^/repos/acme/postmortems/contents/2026/checkout.md$")


def test_a_repository_config_cannot_widen_the_places(env) -> None:
    secret_repo(env)
    env.fake.add_file(
        REPO, ".github/pmguard.yml", f"postmortem_sources:\n  github: [{SECRET_REPO}]\n"
    )
    number = env.fake.add_issue(
        REPO, "Checkout down", f"Postmortem: {SECRET_REPO}#1", labels=["incident"]
    )
    assert close(env, number).status_code == 202
    assert_refused(env, number)


def test_watched_repositories_apply_to_postmortems(env) -> None:
    from dataclasses import replace

    from rules.incident_policy import PostmortemSources

    env.fake.add_repo("acme/postmortems")
    pm = env.fake.add_issue("acme/postmortems", "Postmortem", CLEAN_PM, labels=["postmortem"])
    # The policy names the repository, but the service only watches acme/ops.
    env.service.policy = replace(
        env.service.policy, postmortem_sources=PostmortemSources(github=("acme/postmortems",))
    )
    settings = env.service.settings
    env.service.settings = replace(settings, github=replace(settings.github, repositories=(REPO,)))
    number = env.fake.add_issue(
        REPO, "Checkout down", f"Postmortem: acme/postmortems#{pm}", labels=["incident"]
    )
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    assert OUTSIDE in comment["body"]
    assert postmortem_reads(env, r"^/repos/acme/postmortems") == []


def test_a_traversal_in_a_blob_url_never_reaches_another_api_path(env) -> None:
    url = f"{env.fake.web_url}/{REPO}/blob/main/../../../../user"
    encoded = f"{env.fake.web_url}/{REPO}/blob/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/user"
    number = env.fake.add_issue(
        REPO, "Checkout down", f"Postmortem: {url}\nPIR: {encoded}", labels=["incident"]
    )
    assert close(env, number).status_code == 202
    [comment] = wait_until(lambda: our_comments(env.fake, number))
    assert env.fake.calls("GET", r"^/user") == []
    assert env.fake.calls("GET", rf"^/repos/{REPO}/contents/(?!\.github/pmguard.yml)") == []
    assert comment["body"].count("contains a '..' segment") == 2, comment["body"]
