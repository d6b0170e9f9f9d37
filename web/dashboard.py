"""Incident managers' pages: the queue, an incident, decisions, waivers, the audit log.

Engineers read the queue and incident pages; incident managers (and admins) decide:
accept a flag, mark it a false positive (with a reason), undo, waive the whole check (with a
reason and an optional expiry), lift a waiver, re-check. Every decision is written to the
store with an audit entry and then queues a re-check job, so the ticket's sticky comment is
rewritten by the worker: false positives drop off it, accepted flags stay, a waiver replaces
it with a short note.

The audit log page is for incident managers and admins only: its entries carry reviewers'
reasons and names, which are for the people who make those decisions, not for everyone who
can read the queue.

Incident ids contain ':' '/' and, for GitHub, '#' ("github:https://api.github.com:acme/ops#12").
`url_for` quotes '#' as %23 and the `path` converter keeps the slashes, so links built here
round-trip. A link that did not quote '#' reaches the server without "#12" (the browser keeps
it as the URL fragment); the not-found page then lists the project's incidents and
dashboard.js finishes the job by moving the fragment back into the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from connector.base import IncidentRef
from nlp.model import SEVERITIES
from store import queries
from store.db import session_scope
from store.models import Analysis, AuditEntry, Finding, Incident, Job
from web.auth import requires
from worker.jobs import ref_payload

bp = Blueprint("dashboard", __name__)

PER_PAGE = 25
AUDIT_PER_PAGE = 50
MAX_PAGE = 100_000
AGES = (7, 30, 90)  # "closed within N days" choices
CHECK_JOB = "check"  # worker.service.CHECK: check one incident
STATUS_LABELS = {
    "missing": "Postmortem missing",
    "needs-review": "Needs review",
    "unchecked": "Not checked",
    "ok": "OK",
    "waived": "Waived",
    "check-failed": "Check failed",
}
MAX_REASON = 2000  # a reason is a sentence or two; this keeps a paste from filling the log


def _service() -> Any:
    return current_app.extensions["pmguard"]


def _now() -> datetime:
    return datetime.now(UTC)


# --- presentation helpers ---------------------------------------------------------------


def ago(when: datetime | None, now: datetime | None = None) -> str:
    """"3 days ago", "5 hours ago", "just now": how long an incident has waited."""
    if when is None:
        return ""
    seconds = int(((now or _now()) - when).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def web_link(url: str | None) -> str | None:
    """`url` when it is http(s), else None. Ticket and postmortem URLs come from trackers
    and from links people wrote in incidents; a "javascript:" one must not become a link."""
    if url and urlsplit(url).scheme.lower() in ("http", "https"):
        return url
    return None


def stamp(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else ""


@bp.context_processor
def _helpers() -> dict[str, Any]:
    # Only for this blueprint's templates; other blueprints keep their own namespace.
    return {
        "ago": ago,
        "stamp": stamp,
        "web_link": web_link,
        "status_labels": STATUS_LABELS,
        "can_decide": current_user.is_authenticated and current_user.can("incident_manager"),
    }


# --- highlighting -----------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Where one finding sits in the analysed text."""

    finding_id: int
    start: int
    end: int
    severity: str
    message: str
    dismissed: bool = False  # marked a false positive: shown, but quieter


@dataclass(frozen=True)
class Segment:
    """A run of the text covered by the same set of findings (none: plain text)."""

    text: str
    findings: tuple[int, ...] = ()  # finding ids covering the whole run
    starts: tuple[int, ...] = ()  # finding ids whose span begins here (anchors)
    severity: str = ""  # the highest among `findings`
    label: str = ""  # their messages, for the hover title
    dismissed: bool = False  # every finding covering it is a false positive


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def highlight(text: str, spans: list[Span]) -> list[Segment]:
    """Cut `text` at every span boundary so overlapping and adjacent findings each get
    their own marked runs; the runs concatenate back to `text` exactly.

    The template escapes every run (autoescape), so nothing of the postmortem is ever
    interpreted as HTML: the highlighting is done on the text, not on markup.
    """
    # One sweep over the boundaries, keeping the spans open at each: linear in the text and
    # the spans (times the few that overlap at one point), where testing every span at
    # every boundary took minutes for a postmortem with 20,000 flags.
    bounds = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    opening: dict[int, list[int]] = {}  # position in `spans`, which keeps their order
    closing: dict[int, list[int]] = {}
    for index, span in enumerate(spans):
        opening.setdefault(span.start, []).append(index)
        closing.setdefault(span.end, []).append(index)
    active: dict[int, Span] = {}
    segments: list[Segment] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        for index in closing.get(a, ()):
            active.pop(index, None)
        started = opening.get(a, [])
        for index in started:
            active[index] = spans[index]
        starts = tuple(spans[i].finding_id for i in started)
        if not active:
            segments.append(Segment(text[a:b], starts=starts))
            continue
        covering = [active[i] for i in sorted(active)]
        top = max(covering, key=lambda s: _rank(s.severity))
        segments.append(
            Segment(
                text[a:b],
                findings=tuple(s.finding_id for s in covering),
                starts=starts,
                severity=top.severity,
                label=" | ".join(dict.fromkeys(s.message for s in covering)),
                dismissed=all(s.dismissed for s in covering),
            )
        )
    return segments


def locate(text: str, finding: Finding) -> Span | None:
    """The finding's span when its offsets point at its text; None otherwise (no offsets,
    an empty span such as "no action-items section", or offsets into a different text)."""
    start, end = finding.start, finding.end
    if start is None or end is None or not 0 <= start < end <= len(text):
        return None
    if finding.text and text[start:end] != finding.text:
        return None
    return Span(
        finding.id, start, end, finding.severity, finding.message,
        dismissed=finding.decision == "false-positive",
    )


# --- view models ------------------------------------------------------------------------


@dataclass
class FindingView:
    finding: Finding
    number: int
    located: bool


@dataclass
class ActionItemView:
    item: dict[str, Any]
    lacks: list[str]


@dataclass
class AnalysisView:
    analysis: Analysis
    segments: list[Segment]
    findings: list[FindingView]
    suppressed: list[FindingView]
    action_items: list[ActionItemView]
    lesson_home: bool  # some action item says where the learning lives
    # Said when no item was read: why, from the action check's own finding, so the page
    # never says "No action items were found" about a section it found empty, or the
    # reverse.
    actions_note: str = ""


def _lacks(item: dict[str, Any]) -> list[str]:
    lacks = []
    if not item.get("owner"):
        lacks.append("an owner")
    if not item.get("tracking"):
        lacks.append("a tracking link")
    if not item.get("due"):
        lacks.append("a due date")
    if item.get("asks_people"):
        lacks.append("a change to the system (it asks people to change)")
    return lacks


def _actions_note(findings: list[Any]) -> str:
    rules = {f.rule for f in findings if not f.suppressed}
    if "actions.missing-section" in rules:
        return "No action-items section was found."
    if "actions.empty-section" in rules:
        return "The action-items section lists no items yet."
    return "No action items were found."


def _analysis_view(analysis: Analysis) -> AnalysisView:
    text = analysis.text or ""
    ordered = sorted(
        analysis.findings,
        key=lambda f: (f.start if f.start is not None else len(text), f.end or 0, f.id),
    )
    spans: list[Span] = []
    views: list[FindingView] = []
    suppressed: list[FindingView] = []
    for finding in ordered:
        span = locate(text, finding)
        if finding.suppressed:
            suppressed.append(FindingView(finding, 0, span is not None))
            continue
        if span is not None:
            spans.append(span)
        views.append(FindingView(finding, len(views) + 1, span is not None))
    items = [dict(item) for item in analysis.action_items or [] if isinstance(item, dict)]
    return AnalysisView(
        analysis=analysis,
        segments=highlight(text, spans),
        findings=views,
        suppressed=suppressed,
        action_items=[ActionItemView(item, _lacks(item)) for item in items],
        lesson_home=any(item.get("lesson_home") for item in items),
        actions_note="" if items else _actions_note(list(analysis.findings)),
    )


@dataclass
class IncidentPage:
    incident: Incident
    analyses: list[AnalysisView]
    postmortems: list[Any]
    waiver: queries.Waiver | None
    waiver_active: bool
    jobs: list[Job]
    check_failed: bool
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


# --- the queue --------------------------------------------------------------------------


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _page() -> int:
    # Bounded: an absurd ?page= must not overflow the database's integer offset.
    return min(max(1, _int(request.args.get("page"), 1) or 1), MAX_PAGE)


def _queue_filters(args: MultiDict[str, str]) -> tuple[queries.QueueFilters, dict[str, Any]]:
    """The queue's filters from the query string, and the same as url_for arguments so
    page links keep them. Unknown values are dropped rather than refused: a stale
    bookmark should still open the queue."""
    statuses = tuple(s for s in args.getlist("status") if s in queries.QUEUE_STATUSES)
    age = _int(args.get("age"))
    filters = queries.QueueFilters(
        statuses=tuple(dict.fromkeys(statuses)),
        tracker=args.get("tracker", "").strip(),
        project=args.get("project", "").strip(),
        team=args.get("team", "").strip(),
        severity=args.get("severity", "").strip(),
        closed_within_days=age if age in AGES else None,
    )
    kept: dict[str, Any] = {}
    if filters.statuses:
        kept["status"] = list(filters.statuses)
    for name in ("tracker", "project", "team", "severity"):
        if getattr(filters, name):
            kept[name] = getattr(filters, name)
    if filters.closed_within_days:
        kept["age"] = filters.closed_within_days
    return filters, kept


@bp.get("/incidents")
@requires("engineer")
def queue() -> str:
    filters, kept = _queue_filters(request.args)
    page = _page()
    only_status = not any(v for k, v in kept.items() if k != "status")
    with session_scope(_service().sessions) as db:
        result = queries.incident_queue(db, filters, now=_now(), page=page, per_page=PER_PAGE)
        facets = queries.queue_facets(db)
        counts = queries.queue_status_counts(db)
        # Failed first checks have no incident row to filter on; list them only where the
        # filters could not have excluded them.
        unread = (
            queries.failed_unread_checks(db)
            if only_status and (not filters.statuses or "check-failed" in filters.statuses)
            else []
        )
    return render_template(
        "dashboard/queue.html",
        result=result,
        filters=filters,
        kept=kept,
        facets=facets,
        counts=counts,
        unread=unread,
        ages=AGES,
        not_set=queries.NOT_SET,
        statuses=queries.QUEUE_STATUSES,
        now=_now(),
    )


# --- the incident page ------------------------------------------------------------------


def _load_page(db: Session, incident: Incident) -> IncidentPage:
    analyses = queries.current_analyses(db, incident)
    jobs = queries.incident_jobs(db, incident.id)
    waiver = queries.waiver_of(incident)
    return IncidentPage(
        incident=incident,
        analyses=[_analysis_view(a) for a in analyses],
        postmortems=list(incident.postmortems),
        waiver=waiver,
        waiver_active=waiver is not None and waiver.active(_now()),
        jobs=jobs,
        check_failed=bool(jobs) and jobs[0].status == "failed",
    )


def _render_incident(
    incident_id: str,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    with session_scope(_service().sessions) as db:
        incident = db.get(Incident, incident_id)
        if incident is None:
            return _not_found(db, incident_id)
        page = _load_page(db, incident)
    page.errors = errors or {}
    page.values = values or {}
    body = render_template("dashboard/incident.html", page=page, now=_now())
    return make_response(body, status)


def _not_found(db: Session, incident_id: str) -> Response:
    candidates = queries.incidents_with_prefix(db, incident_id + "#")
    jobs = queries.incident_jobs(db, incident_id)
    body = render_template(
        "dashboard/not_found.html", incident_id=incident_id, candidates=candidates, jobs=jobs
    )
    return make_response(body, 404)


@bp.get("/incidents/<path:incident_id>")
@requires("engineer")
def incident(incident_id: str) -> Response:
    return _render_incident(incident_id)


# --- decisions --------------------------------------------------------------------------


def _incident_url(incident_id: str, anchor: str = "") -> str:
    url = url_for("dashboard.incident", incident_id=incident_id)
    return f"{url}#{anchor}" if anchor else url


def _queue_recheck(db: Session, incident_id: str, reason: str) -> int | None:
    """Create the re-check job for the incident (committed with the decision, enqueued by
    the caller after the commit so the worker never looks for a row it cannot see yet)."""
    incident = db.get(Incident, incident_id)
    if incident is not None:
        ref = IncidentRef(incident.tracker, incident.site, incident.project, incident.key)
        payload = ref_payload(ref)
    else:
        # Never read (its first check failed): the failed job knows where it lives.
        job = db.scalars(
            select(Job).where(Job.incident_id == incident_id).order_by(Job.id.desc())
        ).first()
        if job is None or "tracker" not in (job.payload or {}):
            return None
        payload = {k: job.payload[k] for k in ("tracker", "site", "project", "key")}
    return _service().create_job(db, CHECK_JOB, {**payload, "reason": reason})


def _reason() -> str:
    return (request.form.get("reason") or "").strip()[:MAX_REASON]


def _current_finding(db: Session, finding: Finding) -> tuple[str, Finding | None]:
    """The incident id and the flag in the incident's latest check that `finding` stands
    for: itself, or the flag with the same fingerprint (rule and sentence) in a newer
    analysis. Every decision queues a re-check that stores a new analysis with new
    finding ids, so a page loaded a moment ago routinely names the previous ones."""
    incident_id = finding.analysis.incident_id
    incident = db.get(Incident, incident_id)
    current = queries.current_analyses(db, incident) if incident is not None else []
    if any(a.id == finding.analysis_id for a in current):
        return incident_id, finding
    for analysis in reversed(current):
        for candidate in analysis.findings:
            if candidate.fingerprint == finding.fingerprint:
                return incident_id, candidate
    return incident_id, None


def _decide(finding_id: int, decision: str | None, verb: str) -> Response:
    reason = _reason() if decision == "false-positive" else None
    problem: str | None = None
    status = 409  # the page changed under the reviewer; 400 for a form to fix
    where = "page"  # a flag with no card on the page gets its message at the top
    job_id: int | None = None
    with session_scope(_service().sessions) as db:
        finding = db.get(Finding, finding_id)
        if finding is None:
            abort(404)
        incident_id, target = _current_finding(db, finding)
        if target is None:
            problem = (
                "This flag is no longer in the postmortem: the latest check did not find "
                "it. The page now shows what that check found."
            )
        elif target.suppressed:
            problem = "This flag is suppressed in the postmortem itself: nothing to decide."
        else:
            where = f"finding-{target.id}"
            if decision is None and target.decision is None:
                problem = "This flag has no decision to undo."
            elif decision == "false-positive" and not reason:
                status = 400
                problem = (
                    "Say why this is a false positive: the reason is what an admin reads "
                    "when tuning the rule."
                )
            else:
                # Decided and queued in one transaction: the re-check job exists exactly
                # when the decision does.
                queries.decide_finding(db, target.id, decision, current_user.username, reason)
                job_id = _queue_recheck(db, incident_id, "decision")
    if problem is not None:
        return _render_incident(incident_id, errors={where: problem}, status=status)
    if job_id is not None:
        _service().enqueue(job_id)
    flash(f"{verb} The ticket's comment is being updated.", "info")
    return redirect(_incident_url(incident_id, where))


@bp.post("/findings/<int:finding_id>/accept")
@requires("incident_manager")
def accept(finding_id: int) -> Response:
    return _decide(finding_id, "accepted", "Flag accepted.")


@bp.post("/findings/<int:finding_id>/false-positive")
@requires("incident_manager")
def false_positive(finding_id: int) -> Response:
    return _decide(finding_id, "false-positive", "Flag marked a false positive.")


@bp.post("/findings/<int:finding_id>/undo")
@requires("incident_manager")
def undo(finding_id: int) -> Response:
    return _decide(finding_id, None, "Decision undone.")


def _expiry(raw: str, today: date) -> tuple[datetime | None, str | None]:
    """The exclusive end of a waiver entered as its last day (UTC), i.e. the next
    midnight, or an error message for the form."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None, "The expiry must be a date (YYYY-MM-DD)."
    if day < today:
        return None, "The expiry date is in the past: pick today or a later day."
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC), None


@bp.post("/incidents/<path:incident_id>/waiver")
@requires("incident_manager")
def waive(incident_id: str) -> Response:
    reason = _reason()
    raw_until = (request.form.get("until") or "").strip()
    values = {"waiver-reason": reason, "waiver-until": raw_until}
    error: str | None = None
    until: datetime | None = None
    job_id: int | None = None
    if not reason:
        error = "A waiver needs a reason: it is shown on the ticket and kept in the audit log."
    elif raw_until:
        until, error = _expiry(raw_until, _now().date())
    with session_scope(_service().sessions) as db:
        exists = db.get(Incident, incident_id) is not None
        if exists and error is None:
            queries.set_waiver(db, incident_id, current_user.username, reason, until)
            job_id = _queue_recheck(db, incident_id, "decision")
    if not exists:
        abort(404)
    if error is not None:
        return _render_incident(incident_id, errors={"waiver": error}, values=values, status=400)
    if job_id is not None:
        _service().enqueue(job_id)
    flash("Check waived. The ticket's comment is being updated.", "info")
    return redirect(_incident_url(incident_id, "waiver"))


@bp.post("/incidents/<path:incident_id>/waiver/lift")
@requires("incident_manager")
def lift_waiver(incident_id: str) -> Response:
    job_id = None
    with session_scope(_service().sessions) as db:
        incident = db.get(Incident, incident_id)
        if incident is None:
            abort(404)
        waived = queries.waiver_of(incident) is not None
        if waived:
            queries.lift_waiver(db, incident_id, current_user.username)
            job_id = _queue_recheck(db, incident_id, "decision")
    if not waived:
        return _render_incident(
            incident_id, errors={"waiver": "This incident has no waiver to lift."}, status=409
        )
    if job_id is not None:
        _service().enqueue(job_id)
    flash("Waiver lifted. The incident is being checked again.", "info")
    return redirect(_incident_url(incident_id, "waiver"))


@bp.post("/incidents/<path:incident_id>/recheck")
@requires("incident_manager")
def recheck(incident_id: str) -> Response:
    with session_scope(_service().sessions) as db:
        job_id = _queue_recheck(db, incident_id, "dashboard")
        if job_id is not None:
            queries.audit(
                db, current_user.username, "incident.recheck", "incident", incident_id,
                detail={"job": job_id},
            )
    if job_id is None:
        abort(404)
    _service().enqueue(job_id)
    flash("Re-check queued. Reload in a moment to see the result.", "info")
    return redirect(_incident_url(incident_id))


# --- the audit log ----------------------------------------------------------------------


@dataclass
class AuditRow:
    entry: AuditEntry
    target_url: str | None
    details: list[tuple[str, str]]


def _target_url(entry: AuditEntry, finding_incidents: dict[int, str]) -> str | None:
    if entry.target_type == "incident":
        return _incident_url(entry.target_id)
    if entry.target_type == "finding" and entry.target_id.isdigit():
        incident_id = finding_incidents.get(int(entry.target_id))
        if incident_id:
            return _incident_url(incident_id, f"finding-{entry.target_id}")
    return None


def _details(detail: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in (detail or {}).items() if v not in (None, "", [], {})]


@bp.get("/audit")
@requires("incident_manager")
def audit_log() -> str:
    action = request.args.get("action", "").strip()
    actor = request.args.get("actor", "").strip()
    page = _page()
    with session_scope(_service().sessions) as db:
        entries, total = queries.audit_entries(
            db, action=action, actor=actor, page=page, per_page=AUDIT_PER_PAGE
        )
        facets = queries.audit_facets(db)
        finding_ids = [
            int(e.target_id)
            for e in entries
            if e.target_type == "finding" and e.target_id.isdigit()
        ]
        owners = queries.finding_incidents(db, finding_ids)
    rows = [AuditRow(e, _target_url(e, owners), _details(e.detail)) for e in entries]
    kept = {k: v for k, v in (("action", action), ("actor", actor)) if v}
    return render_template(
        "dashboard/audit.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // AUDIT_PER_PAGE)),
        facets=facets,
        action=action,
        actor=actor,
        kept=kept,
    )
