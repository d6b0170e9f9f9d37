"""Admins' pages: the rule pack, drafts, the playground, replay, publish, history, rollback,
per-rule figures — and learning health, which every signed-in role may read.

Routes (all `requires("admin")` except learning health):

    GET  /rules                    the active pack, readable, worst rule first
    GET  /rules/draft              the draft workbench, starting from the active text
    POST /rules/draft              validate the posted draft
    POST /rules/playground         pasted text -> findings under the draft and the active pack
    POST /rules/replay             the draft against the active pack on stored postmortems
    POST /rules/publish            publish the draft (reason required)
    GET  /rules/history            versions newest first, a diff against the predecessor
    POST /rules/rollback/<id>      put an older version back in force (reason required)
    GET  /health/learning          learning health (engineer and above)

Where the draft lives: in the page. Every workbench form posts the whole draft text (a
textarea; ~50 KB for the shipped pack) and every answer renders it back, so the server
keeps no draft state: nothing to expire or clean up, nothing that differs between the
hosts behind a load balancer, and no size trouble with the cookie session (4 KB). The cost:
a draft lives as long as its browser tab (admin.js warns before leaving unsaved edits);
the durable record of a pack is its published version.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from check.examples import validate_draft
from check.replay import ReplayResult, summarise
from nlp.analysis import analyse, default_pack
from nlp.limits import Unchecked
from nlp.model import Finding as NlpFinding
from nlp.text import FORMATS, TextFormatError
from rules.replay_input import DEFAULT_REPLAY, MAX_REPLAY
from rules.schema import PackError, RulePack, default_pack_text, parse_pack
from rules.stats import RuleStats
from rules.versions import (
    ExampleFailure,
    PublishRefused,
    RuleChange,
    diff_versions,
    pack_from_version,
    text_diff,
)
from store import packs
from store.db import session_scope
from store.models import Analysis, Finding, Incident, RulePackVersion, incident_postmortems
from web import health
from web.auth import requires
from worker import tuning

bp = Blueprint("admin", __name__)

PACK_NAME = packs.DEFAULT_NAME  # the pack the worker runs (worker.service.PACK_NAME)
MAX_DRAFT_CHARS = 512 * 1024  # ten times the shipped pack
MAX_SAMPLE_CHARS = 100_000  # a long postmortem is ~20 KB; the playground answers as you type
MAX_REASON_CHARS = 2000
SHIPPED = "shipped default"


def _service() -> Any:
    return current_app.extensions["pmguard"]


def _error_page(title: str, message: str, status: int) -> Response:
    body = render_template("errors/error.html", title=title, message=message)
    return make_response(body, status)


# --- parsed drafts ----------------------------------------------------------------------

_drafts: OrderedDict[str, RulePack] = OrderedDict()
_drafts_lock = threading.Lock()
_DRAFT_CACHE = 8


def draft_pack(text: str, source: str = "draft") -> RulePack:
    """The parsed pack of a draft text, the same object for the same text.

    nlp.blame compiles a pack once per object, so the playground (which answers as the
    admin types) and the lint API's `pack` reuse one compiled matcher per draft instead of
    building it on every keystroke. Raises PackError.
    """
    key = hashlib.sha256(f"{source}\0{text}".encode()).hexdigest()
    with _drafts_lock:
        pack = _drafts.get(key)
        if pack is not None:
            _drafts.move_to_end(key)
            return pack
    pack = parse_pack(text, source)
    with _drafts_lock:
        _drafts[key] = pack
        while len(_drafts) > _DRAFT_CACHE:
            _drafts.popitem(last=False)
    return pack


# --- the active pack --------------------------------------------------------------------


@dataclass(frozen=True)
class Active:
    row: RulePackVersion | None  # None: nothing published, the shipped default applies
    text: str
    pack: RulePack
    problem: str = ""  # the active version does not load (the worker keeps the last good)

    @property
    def label(self) -> str:
        return self.row.version if self.row is not None else SHIPPED


def read_active(sessions: sessionmaker[Session]) -> Active:
    """The pack in force as the rules page shows it (also the API's /rule-packs/active).

    Reads the row in a short transaction of its own and parses after it closes: on SQLite
    every transaction holds the write lock (store.db), and webhooks must not wait for YAML.
    """
    with session_scope(sessions) as session:
        row = packs.active_pack_version(session, PACK_NAME)
    if row is None:
        return Active(None, default_pack_text(), default_pack())
    try:
        return Active(row, row.text, pack_from_version(row))
    except PackError as error:
        return Active(row, row.text, _service().pack, str(error))


# --- the rules page ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    stats: RuleStats
    in_pack: bool


@bp.get("/rules")
@requires("admin")
def rules() -> str:
    active = read_active(_service().sessions)
    with session_scope(_service().sessions) as session:
        stats = packs.rule_stats(session, rules=[r.id for r in active.pack.rules])
    published = _published_info(active.row)
    pack_ids = {r.id for r in active.pack.rules}
    rows = [RuleRow(s, s.rule in pack_ids) for s in stats]
    by_id = {r.id: r for r in active.pack.rules}
    # The catalogue follows the figures' order, so the rule to fix first is read first.
    ordered = [by_id[s.rule] for s in stats if s.rule in by_id]
    return render_template(
        "admin/rules.html",
        active=active,
        published=published,
        rows=rows,
        rules=ordered,
        stats={s.rule: s for s in stats},
    )


def _published_info(row: RulePackVersion | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"version": row.version, "by": row.created_by, "at": row.created_at, "id": row.id}


# --- the draft workbench ----------------------------------------------------------------


@dataclass
class Check:
    """What validate_draft said about a draft."""

    ok: bool = False
    error: str = ""  # a PackError: names the source, the rule and the field
    rule: str = ""
    field_name: str = ""
    line: int | None = None
    failures: dict[str, list[ExampleFailure]] = field(default_factory=dict)  # by mode
    examples: dict[str, int] = field(default_factory=dict)
    refused: str = ""  # a PublishRefused message that is not about examples
    changes: list[RuleChange] = field(default_factory=list)  # against the active pack
    identical: bool = False  # the published text unchanged: publishing it would be refused
    pack: RulePack | None = None


_RULE = re.compile(r"rule '([^']+)'|rule #(\d+)")
_FIELD = re.compile(r"field '([^']+)'")
_LINE = re.compile(r"at line (\d+)")


def check_draft(text: str, active_text: str, *, published: bool = True) -> Check:
    """Validate a draft (parse + every example in both pipeline modes) and say what it
    changes against the active text (`published`: that text is a published version, which
    store.packs.publish refuses to publish again unchanged)."""
    check = Check(identical=published and text == active_text)
    try:
        check.pack = draft_pack(text)
        result = validate_draft(text, "draft")
    except PublishRefused as refused:
        for mode, failure in refused.failures:
            check.failures.setdefault(mode, []).append(failure)
        if not refused.failures:
            check.refused = str(refused)
    except PackError as error:
        check.error = str(error)
        rule = _RULE.search(check.error)
        check.rule = (rule.group(1) or f"#{rule.group(2)}") if rule else ""
        found = _FIELD.search(check.error)
        check.field_name = found.group(1) if found else ""
        line = _LINE.search(check.error)
        check.line = int(line.group(1)) if line else None
        return check
    else:
        check.ok = True
        check.examples = result.examples
    try:
        check.changes = diff_versions(active_text, text, old_name="active", new_name="draft")
    except PackError:
        check.changes = []  # the active text no longer parses: the page says so already
    return check


@dataclass
class Highlighted:
    """A text cut into plain and flagged stretches, for rendering with escaping intact."""

    segments: list[tuple[str, list[NlpFinding]]]
    findings: list[NlpFinding]


def highlight(text: str, findings: list[NlpFinding]) -> Highlighted:
    """Cut `text` at the findings' offsets. Overlapping findings share one stretch (the
    union of their spans), so every character is shown exactly once."""
    shown = sorted((f for f in findings if not f.suppressed), key=lambda f: (f.start, -f.end))
    segments: list[tuple[str, list[NlpFinding]]] = []
    position = 0
    i = 0
    while i < len(shown):
        start = max(shown[i].start, position)
        end = max(shown[i].end, start)
        group = [shown[i]]
        i += 1
        while i < len(shown) and shown[i].start < end:
            end = max(end, shown[i].end)
            group.append(shown[i])
            i += 1
        if start > position:
            segments.append((text[position:start], []))
        segments.append((text[start:end], group))
        position = end
    if position < len(text):
        segments.append((text[position:], []))
    return Highlighted(segments, shown)


@dataclass
class Playground:
    sample: str
    fmt: str
    active: Highlighted | None = None
    draft: Highlighted | None = None
    added: list[NlpFinding] = field(default_factory=list)  # flagged by the draft only
    removed: list[NlpFinding] = field(default_factory=list)  # by the active pack only
    error: str = ""


def run_playground(
    sample: str,
    fmt: str,
    active: RulePack,
    draft: RulePack | None,
    analyser: Callable[..., Any] = analyse,  # nlp.analysis.analyse's signature
) -> Playground:
    """Both packs on `sample`; `analyser` is the service's (in the analysis processes, under
    the time budget) in the app."""
    out = Playground(sample, fmt)
    try:
        # Rules only: the structural action-item checks do not depend on the pack.
        current = analyser(sample, fmt=fmt, pack=active, check_actions=False).findings
        out.active = highlight(sample, current)
        if draft is not None:
            proposed = analyser(sample, fmt=fmt, pack=draft, check_actions=False).findings
            out.draft = highlight(sample, proposed)
            before = {f.fingerprint for f in out.active.findings}
            after = {f.fingerprint for f in out.draft.findings}
            out.added = [f for f in out.draft.findings if f.fingerprint not in before]
            out.removed = [f for f in out.active.findings if f.fingerprint not in after]
    except (TextFormatError, ValueError, Unchecked) as error:
        out.error = str(error)
    return out


@dataclass
class Workbench:
    draft: str
    sample: str = ""
    fmt: str = "markdown"
    replay_n: int = DEFAULT_REPLAY
    reason: str = ""
    check: Check | None = None
    playground: Playground | None = None
    replay: list[ReplayResult] | None = None
    replay_summary: dict[str, int] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def can_publish(self) -> bool:
        return self.check is not None and self.check.ok and not self.check.identical


def _form_workbench() -> Workbench:
    """The workbench as posted; over-long fields are refused rather than cut."""
    form = request.form
    bench = Workbench(
        draft=form.get("draft", "").replace("\r\n", "\n"),
        sample=form.get("sample", "").replace("\r\n", "\n"),
        fmt=form.get("format", "markdown"),
        reason=form.get("reason", "").strip(),
    )
    if bench.fmt not in FORMATS:
        bench.errors.append(f"Unknown text format {bench.fmt!r}: use one of {', '.join(FORMATS)}.")
        bench.fmt = "markdown"
    raw_n = form.get("replay_n", str(DEFAULT_REPLAY)).strip()
    try:
        bench.replay_n = int(raw_n)
    except ValueError:
        bench.errors.append(f"Replay: {raw_n!r} is not a number of postmortems.")
    if not 1 <= bench.replay_n <= MAX_REPLAY:
        bench.errors.append(f"Replay: choose between 1 and {MAX_REPLAY} postmortems.")
        bench.replay_n = max(1, min(bench.replay_n, MAX_REPLAY))
    if not bench.draft.strip():
        bench.errors.append("The draft is empty.")
    if len(bench.draft) > MAX_DRAFT_CHARS:
        bench.errors.append(f"The draft is over {MAX_DRAFT_CHARS} characters.")
    if len(bench.sample) > MAX_SAMPLE_CHARS:
        bench.errors.append(f"The playground text is over {MAX_SAMPLE_CHARS} characters.")
    if len(bench.reason) > MAX_REASON_CHARS:
        bench.errors.append(f"The reason is over {MAX_REASON_CHARS} characters.")
    return bench


def _render_bench(bench: Workbench, active: Active, status: int = 200) -> Response:
    body = render_template(
        "admin/draft.html",
        bench=bench,
        active=active,
        formats=FORMATS,
        max_replay=MAX_REPLAY,
        max_sample=MAX_SAMPLE_CHARS,
    )
    return make_response(body, status)


def _read_active() -> Active:
    return read_active(_service().sessions)


def _prepare(bench: Workbench) -> tuple[Active, bool]:
    """Read the active pack and validate the draft; False when the form itself was bad."""
    active = _read_active()
    if bench.errors:
        return active, False
    bench.check = check_draft(bench.draft, active.text, published=active.row is not None)
    return active, True


@bp.get("/rules/draft")
@requires("admin")
def draft() -> Response:
    active = _read_active()
    return _render_bench(Workbench(draft=active.text), active)


@bp.post("/rules/draft")
@requires("admin")
def validate() -> Response:
    bench = _form_workbench()
    active, ok = _prepare(bench)
    return _render_bench(bench, active, 200 if ok else 400)


@bp.post("/rules/playground")
@requires("admin")
def playground() -> Response:
    bench = _form_workbench()
    active, ok = _prepare(bench)
    if not ok:
        return _render_bench(bench, active, 400)
    if not bench.sample.strip():
        bench.errors.append("Paste some postmortem text into the playground first.")
        return _render_bench(bench, active, 400)
    draft = bench.check.pack if bench.check and not bench.check.error else None
    bench.playground = run_playground(
        bench.sample, bench.fmt, active.pack, draft, _service().analyse
    )
    return _render_bench(bench, active)


@bp.post("/rules/replay")
@requires("admin")
def replay() -> Response:
    bench = _form_workbench()
    active, ok = _prepare(bench)
    if not ok:
        return _render_bench(bench, active, 400)
    if bench.check is None or bench.check.pack is None:
        bench.errors.append("The draft does not load, so it cannot be replayed; see below.")
        return _render_bench(bench, active, 400)
    # Synchronous and bounded (MAX_REPLAY): two analyses per postmortem, seconds for the
    # default 50. replay_recent closes its read transaction before analysing.
    bench.replay = tuning.replay_recent(
        _service().sessions, bench.check.pack, active.pack, bench.replay_n,
        analyser=_service().analyse
    )
    bench.replay_summary = summarise(bench.replay)
    return _render_bench(bench, active)


@bp.post("/rules/publish")
@requires("admin")
def publish() -> Response:
    bench = _form_workbench()
    if not bench.reason:
        bench.errors.append("Publishing needs a reason: it goes into the audit log.")
    active, ok = _prepare(bench)
    if not ok:
        return _render_bench(bench, active, 400)
    if bench.check is None or not bench.check.ok:
        # The button is disabled on the page; this is the server refusing too.
        bench.errors.append("Not published: the draft must load and every rule's examples "
                            "must pass in both pipeline modes.")
        return _render_bench(bench, active, 400)
    try:
        with session_scope(_service().sessions) as session:
            row = tuning.publish(
                session, PACK_NAME, bench.draft, current_user.username, bench.reason
            )
            version, version_id = row.version, row.id
    except (PackError, PublishRefused) as error:
        # Raced with another publish, or the text equals the active version.
        bench.errors.append(f"Not published: {error}")
        return _render_bench(bench, _read_active(), 409)
    # This process follows at once; other processes within PACK_REFRESH_SECONDS.
    _service().current_pack(refresh=True)
    flash(f"Published rule pack version {version}.", "info")
    return redirect(url_for("admin.history", version=version_id), code=303)


# --- history and rollback ---------------------------------------------------------------


@dataclass(frozen=True)
class VersionDiff:
    version: RulePackVersion
    predecessor: str  # its version string, or SHIPPED
    changes: list[RuleChange]
    text: str  # unified diff of the YAML
    problem: str = ""


def _diff(row: RulePackVersion, previous: RulePackVersion | None) -> VersionDiff:
    old_text = previous.text if previous is not None else default_pack_text()
    old_name = previous.version if previous is not None else SHIPPED
    problem = ""
    try:
        changes = diff_versions(old_text, row.text, old_name=old_name, new_name=row.version)
    except PackError as error:  # an old text that no longer loads: the text diff still reads
        changes, problem = [], str(error)
    return VersionDiff(
        row, old_name, changes, text_diff(old_text, row.text, old_name, row.version), problem
    )


def _render_history(selected_id: int | None, status: int = 200, error: str = "") -> Response:
    with session_scope(_service().sessions) as session:
        versions = packs.pack_history(session, PACK_NAME)
        uses = dict(
            session.execute(
                select(Analysis.pack_version, func.count())
                .where(Analysis.pack_name == PACK_NAME)
                .group_by(Analysis.pack_version)
            ).all()
        )
    diff = None
    if versions:
        index = next((i for i, v in enumerate(versions) if v.id == selected_id), 0)
        previous = versions[index + 1] if index + 1 < len(versions) else None
        diff = _diff(versions[index], previous)
    body = render_template(
        "admin/history.html", versions=versions, diff=diff, uses=uses, error=error
    )
    return make_response(body, status)


@bp.get("/rules/history")
@requires("admin")
def history() -> Response:
    return _render_history(request.args.get("version", type=int))


@bp.post("/rules/rollback/<int:version_id>")
@requires("admin")
def rollback(version_id: int) -> Response:
    reason = request.form.get("reason", "").strip()
    if not reason:
        return _render_history(version_id, 400, "A rollback needs a reason: it goes into the "
                               "audit log, where the next admin looks for what went wrong.")
    if len(reason) > MAX_REASON_CHARS:
        return _render_history(version_id, 400, f"The reason is over {MAX_REASON_CHARS} "
                               "characters.")
    try:
        with session_scope(_service().sessions) as session:
            row = packs.rollback(session, PACK_NAME, version_id, current_user.username, reason)
            version, new_id = row.version, row.id
    except LookupError:
        return _error_page("Not found", f"No version {version_id} of the rule pack.", 404)
    except PackError as error:
        return _render_history(version_id, 409, f"Cannot roll back: {error}")
    except ValueError as error:  # already active, or the same text as the active one
        return _render_history(version_id, 409, f"Nothing to roll back: {error}.")
    _service().current_pack(refresh=True)
    flash(f"Rolled back: version {version} puts the older text back in force.", "info")
    return redirect(url_for("admin.history", version=new_id), code=303)


# --- learning health --------------------------------------------------------------------


def _group_label(group_by: str, team: str | None, tracker: str, project: str) -> str:
    if group_by == "team":
        return team or health.NO_TEAM
    return f"{project} ({tracker})"


def health_facts(
    session: Session, since: datetime, group_by: str, today: date
) -> list[health.IncidentFacts]:
    """One IncidentFacts per incident closed since `since` that needed a postmortem
    (incidents the policy exempts are stored without a verdict and left out).

    Reads only counts, dates and the presence of owners — never a name — so nothing
    per-person can reach the page.
    """
    scope = (Incident.closed_at.is_not(None), Incident.closed_at >= since,
             Incident.verdict.is_not(None))
    incidents = session.execute(
        select(Incident.id, Incident.team, Incident.tracker, Incident.project, Incident.closed_at)
        .where(*scope)
    ).all()
    linked = dict(
        session.execute(
            select(incident_postmortems.c.incident_id, func.count())
            .join(Incident, Incident.id == incident_postmortems.c.incident_id)
            .where(*scope)
            .group_by(incident_postmortems.c.incident_id)
        ).all()
    )
    analysed = Analysis.postmortem_id.is_not(None)
    first = dict(
        session.execute(
            select(Analysis.incident_id, func.min(Analysis.created_at))
            .join(Incident, Incident.id == Analysis.incident_id)
            .where(*scope, analysed)
            .group_by(Analysis.incident_id)
        ).all()
    )
    # Each postmortem's latest analysis: the current state of its flags and action items.
    latest = (
        select(func.max(Analysis.id))
        .join(Incident, Incident.id == Analysis.incident_id)
        .where(*scope, analysed)
        .group_by(Analysis.incident_id, Analysis.postmortem_id)
    ).scalar_subquery()
    items: dict[str, list[dict]] = {}
    count: dict[str, int] = {}
    analysis_incident: dict[int, str] = {}
    for analysis_id, incident_id, action_items in session.execute(
        select(Analysis.id, Analysis.incident_id, Analysis.action_items).where(
            Analysis.id.in_(latest)
        )
    ):
        analysis_incident[analysis_id] = incident_id
        count[incident_id] = count.get(incident_id, 0) + 1
        stored = [a for a in action_items or [] if isinstance(a, dict)]
        items.setdefault(incident_id, []).extend(stored)
    flags: dict[str, int] = {}
    # Open flags: shown to readers (not suppressed inline), not dismissed by a reviewer,
    # and about language (the action-item checks have figures of their own).
    for analysis_id, n in session.execute(
        select(Finding.analysis_id, func.count())
        .where(
            Finding.analysis_id.in_(latest),
            Finding.suppressed.is_(False),
            or_(Finding.decision.is_(None), Finding.decision != "false-positive"),
            Finding.rule.not_like("actions.%"),
        )
        .group_by(Finding.analysis_id)
    ):
        incident_id = analysis_incident[analysis_id]
        flags[incident_id] = flags.get(incident_id, 0) + n
    return [
        health.IncidentFacts(
            group=_group_label(group_by, team, tracker, project),
            closed_at=closed_at,
            has_postmortem=bool(linked.get(incident_id)),
            first_postmortem_at=first.get(incident_id),
            postmortems=count.get(incident_id, 0),
            flags=flags.get(incident_id, 0),
            items=tuple(health.item_facts(raw, today) for raw in items.get(incident_id, ())),
        )
        for incident_id, team, tracker, project, closed_at in incidents
    ]


def _choice(name: str, allowed: tuple, default: Any, cast: Any = str) -> Any:
    try:
        value = cast(request.args.get(name, default))
    except (TypeError, ValueError):
        return default
    return value if value in allowed else default


@bp.get("/health/learning")
@requires("engineer")
def learning_health() -> str:
    group_by = _choice("group", health.GROUP_BY, "team")
    days = _choice("days", health.PERIODS, health.PERIODS[0], int)
    size = _choice("bucket", health.BUCKETS, health.WEEK)
    today = _service().now().date()
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
    with session_scope(_service().sessions) as session:
        facts = health_facts(session, since, group_by, today)
    report = health.compute(facts, today=today, days=days, size=size)
    return render_template(
        "admin/health.html",
        report=report,
        charts=health.charts(report),
        group_by=group_by,
        days=days,
        size=size,
        h=health,
    )
