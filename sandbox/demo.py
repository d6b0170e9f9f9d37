"""The demo `pmguard serve` runs when no tracker is configured: a sandbox GitHub seeded with
three incidents, closed through real signed webhook deliveries to the running service.

One incident is closed without a postmortem, one links a postmortem that blames people,
one links a clean postmortem; the dashboard shows the three outcomes and the comments.
"""

from __future__ import annotations

import json
import secrets
import shutil
import urllib.request
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from connector.signatures import sign_github
from sandbox.github import FakeGitHub
from settings import GitHubSettings, Settings

REPO = "acme/payments"
USER = "demo"

BLAMING = """# Postmortem: card payments declined

## What happened
At 14:02 a config change lowered the card processor's timeout from 3 s to 300 ms. Priya
forgot to run the load test before the deploy, and the on-call engineer should have
noticed the error rate climbing sooner. Root cause: human error.

## Timeline
- 14:02 config change deployed
- 14:09 first alert on declined payments
- 14:31 timeout restored

## Action items
- Remind engineers to run the load test before deploying
"""
CLEAN = """# Postmortem: delayed payout emails

## What happened
The email queue's worker pool shrank to one worker after a node was drained, because the
autoscaler reads its minimum from a setting that had been left at its default. Payout
emails arrived up to two hours late.

## Contributing factors
- The autoscaler's minimum is not part of the reviewed configuration.
- The queue-age alert only pages after four hours.

## Action items
- [ ] Put the autoscaler minimum under reviewed config (#41, owner @platform, due 2026-12-15)
- [ ] Page on queue age over 30 minutes (#42, owner @sre, due 2026-12-10)
- [ ] Add both to the email runbook (https://wiki.example/runbooks/email)
"""


@dataclass
class Demo:
    fake: FakeGitHub
    settings: Settings
    password: str
    incidents: list[int]


def start(settings: Settings) -> Demo:
    """A fresh sandbox in <data_dir>/demo, and the settings that point the service at it."""
    root = Path(settings.data_dir) / "demo"
    shutil.rmtree(root, ignore_errors=True)
    fake = FakeGitHub().start()
    fake.add_repo(REPO)
    for login in ("ana", "ravi", "priya"):
        fake.set_permission(REPO, login, "write")
    pm_blame = fake.add_issue(REPO, "Postmortem: card payments declined", BLAMING,
                              labels=["postmortem"], user="ana")
    pm_clean = fake.add_issue(REPO, "Postmortem: delayed payout emails", CLEAN,
                              labels=["postmortem"], user="ravi")
    incidents = [
        fake.add_issue(REPO, "Checkout latency above 2 s", "Latency alert fired at 09:40.",
                       labels=["incident", "sev2"], user="ana"),
        fake.add_issue(REPO, "Card payments declined", f"Postmortem: #{pm_blame}",
                       labels=["incident", "sev1"], user="ana", assignees=["priya"]),
        fake.add_issue(REPO, "Payout emails delayed", f"Postmortem: #{pm_clean}",
                       labels=["incident", "sev3"], user="ravi"),
    ]
    demo_settings = replace(
        settings,
        data_dir=root,
        database_url="",
        redis_url="",
        github=GitHubSettings(
            api_url=fake.url,
            webhook_secret=secrets.token_hex(16),
            token=fake.token,
            bot_login=fake.user,
        ),
    )
    return Demo(fake, demo_settings, secrets.token_urlsafe(12), incidents)


def create_user(demo: Demo, sessions) -> None:
    from store import users
    from store.db import session_scope

    with session_scope(sessions) as session:
        users.create_user(session, USER, demo.password, "admin")


def close_incidents(demo: Demo, base_url: str) -> list[int]:
    """Close each incident on the sandbox and deliver the signed webhook, as GitHub would."""
    statuses = []
    for number in demo.incidents:
        demo.fake.close_issue(REPO, number, user="ana")
        body = json.dumps({
            "action": "closed",
            "issue": demo.fake.issue(REPO, number),
            "repository": {"full_name": REPO, "name": REPO.split("/")[1],
                           "owner": {"login": REPO.split("/")[0]}},
            "sender": {"login": "ana", "type": "User"},
        }).encode()
        secret = demo.settings.github.webhook_secret.encode()
        request = urllib.request.Request(
            f"{base_url}/webhooks/github", data=body, method="POST", headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign_github(secret, body),
            })
        with urllib.request.urlopen(request, timeout=30) as response:
            statuses.append(response.status)
    return statuses
