"""Rule tuning's two jobs that both analyse and touch the store: publishing a draft behind
the gate of its examples, and replaying a draft on stored postmortems. The check runs the
analyses (check.examples, check.replay); the store only reads and writes (store.packs).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from check.examples import validate_draft
from check.replay import ReplayResult, replay
from rules.replay_input import DEFAULT_REPLAY
from rules.schema import RulePack
from store import packs
from store.db import session_scope
from store.models import RulePackVersion


def publish(
    session: Session,
    name: str,
    text: str,
    actor: str,
    reason: str | None = None,
    *,
    source: str = "draft",
    now: datetime | None = None,
) -> RulePackVersion:
    """Validate `text` (every rule's examples, both pipeline modes) and make it the active
    version of pack `name`. Raises `PackError` for an invalid pack and `PublishRefused`
    for failing examples or an unchanged text.

    The examples run before the session's first query: on SQLite every transaction holds
    the write lock from its start (store.db), and examples take seconds. validate_draft
    remembers its result per text, so a page that already showed it costs nothing here.
    """
    checked = validate_draft(text, source)
    return packs.publish(session, name, text, actor, reason, checked=checked, source=source,
                         now=now)


def replay_recent(
    sessions: sessionmaker[Session],
    draft: RulePack,
    current: RulePack,
    limit: int = DEFAULT_REPLAY,
    *,
    model: str | None = None,
    analyser: Callable[..., Any] | None = None,  # nlp.analysis.analyse's signature
) -> list[ReplayResult]:
    """Replay `draft` against `current` on the last `limit` stored postmortems.

    Takes the session *factory*, not a session: it reads the texts in a short transaction
    of its own and closes it before the analyses run, because a replay takes seconds to a
    minute (two analyses per postmortem, see check.replay) and on SQLite an open
    transaction holds the database's write lock (store.db begins every one IMMEDIATE).
    """
    with session_scope(sessions) as session:
        texts = packs.recent_postmortem_texts(session, limit)
    options: dict[str, Any] = {"model": model}
    if analyser is not None:
        options["analyser"] = analyser
    return replay(draft, current, texts, **options)
