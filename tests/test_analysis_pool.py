"""Analysis in worker processes under a time budget (security issue, High 1): a postmortem
that takes too long is stopped with a clear verdict, and the web keeps answering its probes
while a hostile check runs."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from check.comment import GITHUB_MARKER
from nlp import limits
from nlp.analysis import analyse
from store import queries
from store import users as store_users
from store.db import session_scope
from store.models import Incident
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.service_env import github_env, wait_until
from tests.web_helpers import PASSWORD, cheap_hashing, signed_in  # noqa: F401
from worker.analysis_pool import shared_pool

REPO = "acme/ops"
# Within every size limit, yet seconds of parsing: 28,000 one-character words.
SLOW = "a | " * 14_000


@pytest.fixture(scope="module")
def pool():
    return shared_pool(1)


def test_the_pool_answers_as_analyse_does(pool) -> None:
    text = "Ravi was careless with the deploy.\n\n## Action items\n- Add a check (#4)\n"
    here = analyse(text, model="blank")
    there = pool.analyse(text, model="blank", timeout=60)
    assert [f.fingerprint for f in there.findings] == [f.fingerprint for f in here.findings]
    assert there.action_items == here.action_items


def test_an_analysis_over_its_budget_is_stopped_and_the_pool_goes_on(pool) -> None:
    pool.analyse("Warm-up.", timeout=60)
    started = time.monotonic()
    with pytest.raises(limits.TookTooLong, match="stopped after 0.2 seconds"):
        pool.analyse(SLOW, timeout=0.2)
    assert time.monotonic() - started < 5
    assert pool.analyse("Human error.", model="blank", timeout=60).findings


def test_a_refusal_crosses_the_process_boundary_with_its_figures(pool) -> None:
    with pytest.raises(limits.TooLarge) as caught:
        pool.analyse("x " * 150_000, timeout=60)
    assert (caught.value.size, caught.value.limit) == (300_000, limits.MAX_SOURCE_CHARS)


# --- end to end: a hostile postmortem through the webhook path ---------------------------


@pytest.fixture(params=["sqlite", "postgres-redis"])
def env(request, tmp_path: Path, fake_github: FakeGitHub):  # noqa: F811
    # Three slow postmortems share one budget: whatever the machine's speed, the check is
    # stopped part-way.
    with github_env(request.param, tmp_path, fake_github, analysis_timeout=2.0) as e:
        fake_github.add_repo(REPO)
        e.start_worker()
        yield e


def close_with_postmortems(env, *bodies: str) -> int:
    links = []
    for body in bodies:
        pm = env.fake.add_issue(REPO, "Postmortem", body, labels=["postmortem"])
        links.append(f"Postmortem: #{pm}")
    number = env.fake.add_issue(REPO, "Checkout down", "\n".join(links), labels=["incident"])
    env.fake.close_issue(REPO, number)
    payload = {
        "action": "closed",
        "issue": env.fake.issue(REPO, number),
        "repository": {"full_name": REPO},
        "sender": {"login": "ana", "type": "User"},
    }
    assert env.github("issues", payload).status_code == 202
    return number


def our_comment(env, number: int) -> str:
    found = [c for c in env.fake.comments(REPO, number) if GITHUB_MARKER in c["body"]]
    return found[0]["body"] if found else ""


def test_probes_answer_while_a_hostile_check_runs_and_it_ends_unchecked(env) -> None:
    env.service.warm_up()
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probe = f"http://127.0.0.1:{server.server_port}/healthz"
    try:
        number = close_with_postmortems(env, SLOW, SLOW, SLOW)
        latencies = []
        while not our_comment(env, number):
            started = time.monotonic()
            with urllib.request.urlopen(probe, timeout=10) as response:
                assert response.status == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)
            assert len(latencies) < 1000, "the check never ended"
    finally:
        server.shutdown()
    # The check ran for its 2 s budget; the probe was asked all along and never waited.
    assert len(latencies) >= 10
    assert max(latencies) < 1.0, latencies
    body = our_comment(env, number)
    assert "took too long to check: stopped after 2 seconds" in body
    assert "could not be checked automatically" in body
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(REPO, number))
    with session_scope(env.service.sessions) as session:
        incident = session.get(Incident, f"github:{env.fake.url}:{REPO}#{number}")
        assert incident is not None and incident.verdict == "unchecked"


def test_a_postmortem_over_the_size_limit_gets_a_verdict_of_its_own(env) -> None:
    # 1.2 million characters: spaCy raised E088, the job retried and ended failed, silent.
    number = close_with_postmortems(env, "Word " * 240_000)
    body = wait_until(lambda: our_comment(env, number), timeout=60)
    assert "too large to check: 1,200,000 characters, over the limit of 200,000" in body
    ref_id = f"github:{env.fake.url}:{REPO}#{number}"
    with session_scope(env.service.sessions) as session:
        analysis = queries.latest_analysis(session, ref_id)
        assert analysis is not None and analysis.verdict == "unchecked"
        assert analysis.summary["unchecked"].startswith("too large to check")
        assert len(analysis.text) == limits.MAX_SOURCE_CHARS
    with session_scope(env.service.sessions) as session:
        store_users.create_user(session, "ravi", PASSWORD, "incident_manager")
    page = signed_in(env.app, "ravi").get(f"/incidents/{quote(ref_id, safe=':/')}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Not checked" in html
    assert "not checked, too large to check: 1,200,000 characters" in html
