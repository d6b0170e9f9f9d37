"""The JSON API under /api/v1, and its OpenAPI document.

Authentication: `Authorization: Bearer <token>` (tokens from /account or `pmguard users
token`), or the dashboard's session cookie; a session-authenticated POST needs the
X-CSRFToken header (web.auth). Roles are those of the pages: engineers read, incident
managers decide, admins read the rule packs.

Every answer is JSON, errors included: `{"error": "..."}` with the status that fits, never an
HTML page or a traceback. Unknown paths under /api/v1 answer 404 (405 with Allow for a known
path and the wrong method) through a catch-all route, because the app-wide 404/405 handling
belongs to the pages.

`OPENAPI` below is the hand-written OpenAPI 3.1 description of exactly these routes;
tests/test_api.py walks it against the running app, so a route and its description cannot
drift apart silently.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from nlp.limits import MAX_WORDS, TooLarge, Unchecked
from nlp.report import to_json
from nlp.text import FORMATS, TextFormatError
from rules.schema import PackError, RulePack
from rules.versions import pack_from_version
from store import packs, queries
from store.db import is_unavailable, session_scope
from store.models import (
    DECISIONS,
    TRACKERS,
    VERDICTS,
    Analysis,
    AuditEntry,
    Finding,
    Incident,
    RulePackVersion,
)
from web.admin import draft_pack, read_active
from web.auth import requires

log = logging.getLogger("pmguard.api")

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PER_PAGE = 25
MAX_PER_PAGE = 100
DECISIONS_LIMIT = 50
MAX_DECISIONS_LIMIT = 200
MAX_LINT_CHARS = 200_000  # ten long postmortems; the lint answers synchronously
MAX_PACK_CHARS = 512 * 1024
MAX_PEOPLE = 200
MAX_REASON_CHARS = 2000
LINT_FORMATS = (*FORMATS, "auto")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class ApiError(Exception):
    """An answer other than 2xx, raised from a view: becomes `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@bp.errorhandler(ApiError)
def _on_api_error(error: ApiError) -> Response:
    return _error(error.status, error.message)


def _on_http_error(error: HTTPException) -> Response:
    headers = {}
    if error.code == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods or ())
    return _error(error.code or 500, error.description or error.name, headers)


# Code-specific as well as generic: Flask prefers any handler registered for the code,
# app-wide ones included (a page blueprint's HTML 404), over a generic class handler.
for _code in (400, 404, 405, 409, 415, 422):
    bp.register_error_handler(_code, _on_http_error)
bp.register_error_handler(HTTPException, _on_http_error)


@bp.errorhandler(Exception)
def _on_crash(error: Exception) -> Response:
    if is_unavailable(error):
        # The database is down or busy: a client (CI) should retry, not report a bug.
        log.warning("API %s %s: database unavailable: %s", request.method, request.path,
                    type(error).__name__)
        return _error(503, "the database is unavailable; retry shortly", {"Retry-After": "5"})
    # Logged with the traceback for operators; the client gets no internals.
    log.exception("API error on %s %s", request.method, request.path)
    return _error(500, "internal error; the server log has the details")


def _service() -> Any:
    return current_app.extensions["pmguard"]


# --- input helpers ----------------------------------------------------------------------


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"parameter '{name}' must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"parameter '{name}' must be between {low} and {high}")
    return value


def _choice_arg(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise ApiError(400, f"parameter '{name}' must be one of {', '.join(allowed)}")
    return value


def _body() -> dict[str, Any]:
    # force=True: curl without a Content-Type header still gets a useful answer.
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- serialisation ----------------------------------------------------------------------


def incident_json(row: Incident) -> dict[str, Any]:
    waiver = None
    if row.verdict == "waived" or row.waived_by:
        waiver = {"by": row.waived_by, "reason": row.waived_reason, "until": _iso(row.waived_until)}
    return {
        "id": row.id,
        "tracker": row.tracker,
        "site": row.site,
        "project": row.project,
        "key": row.key,
        "title": row.title,
        "url": row.url,
        "state": row.state,
        "status": row.verdict,
        "closed_at": _iso(row.closed_at),
        "severity": row.severity,
        "team": row.team,
        "last_checked_at": _iso(row.last_checked_at),
        "waiver": waiver,
        "links": {
            "self": url_for("api.incident", incident_id=row.id),
            "findings": url_for("api.incident_findings", incident_id=row.id),
        },
    }


def finding_json(row: Finding, analysis: Analysis) -> dict[str, Any]:
    return {
        "id": row.id,
        "analysis_id": analysis.id,
        "postmortem_id": analysis.postmortem_id,
        "pack": {"name": analysis.pack_name, "version": analysis.pack_version},
        "rule": row.rule,
        "category": row.category,
        "severity": row.severity,
        "message": row.message,
        "suggestion": row.suggestion,
        "text": row.text,
        "sentence": row.sentence,
        "start": row.start,
        "end": row.end,
        "line": row.line,
        "column": row.column,
        "end_line": row.end_line,
        "end_column": row.end_column,
        "suppressed": bool(row.suppressed),
        "fingerprint": row.fingerprint,
        "decision": row.decision,
        "decided_by": row.decided_by,
        "decided_at": _iso(row.decided_at),
        "reason": row.reason,
    }


def analysis_json(row: Analysis) -> dict[str, Any]:
    return {
        "id": row.id,
        "postmortem_id": row.postmortem_id,
        "created_at": _iso(row.created_at),
        "pack": {"name": row.pack_name, "version": row.pack_version},
        "model": row.model,
        "verdict": row.verdict,
        "findings": len(row.findings),
        "action_items": list(row.action_items or []),
    }


def version_json(row: RulePackVersion) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "created_at": _iso(row.created_at),
        "created_by": row.created_by,
        "active": bool(row.active),
    }


def _incident_or_404(session: Any, incident_id: str) -> Incident:
    row = session.get(Incident, incident_id)
    if row is None:
        raise ApiError(404, f"no incident {incident_id!r}")
    return row


# --- incidents and findings -------------------------------------------------------------


@bp.get("/incidents")
@requires("engineer")
def incidents() -> Response:
    status = _choice_arg("status", VERDICTS)
    tracker = _choice_arg("tracker", TRACKERS)
    project = request.args.get("project") or None
    team = request.args.get("team") or None
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", PER_PAGE, 1, MAX_PER_PAGE)
    query = select(Incident)
    if status:
        query = query.where(Incident.verdict == status)
    if tracker:
        query = query.where(Incident.tracker == tracker)
    if project:
        query = query.where(Incident.project == project)
    if team:
        query = query.where(Incident.team == team)
    with session_scope(_service().sessions) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Incident.closed_at.desc().nulls_last(), Incident.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        items = [incident_json(r) for r in rows]
    pages = max(1, math.ceil(total / per_page))
    return jsonify(
        {"items": items, "page": page, "per_page": per_page, "total": total, "pages": pages}
    )


# merge_slashes=False: incident ids hold the tracker's URL ("github:https://api.github.com:
# org/repo#12"), whose "//" must reach the view intact. Clients percent-encode "#" (%23).
@bp.get("/incidents/<path:incident_id>", merge_slashes=False)
@requires("engineer")
def incident(incident_id: str) -> Response:
    with session_scope(_service().sessions) as session:
        row = _incident_or_404(session, incident_id)
        out = incident_json(row)
        out["postmortems"] = [
            {"id": pm.id, "kind": pm.kind, "url": pm.url, "title": pm.title}
            for pm in row.postmortems
        ]
        # The same analyses the dashboard shows: those of the latest check.
        out["analyses"] = [analysis_json(a) for a in queries.current_analyses(session, row)]
    return jsonify(out)


@bp.get("/incidents/<path:incident_id>/findings", merge_slashes=False)
@requires("engineer")
def incident_findings(incident_id: str) -> Response:
    with session_scope(_service().sessions) as session:
        row = _incident_or_404(session, incident_id)
        items = [
            finding_json(f, a)
            for a in queries.current_analyses(session, row)
            for f in a.findings
        ]
    return jsonify({"incident_id": incident_id, "items": items})


@bp.post("/findings/<int:finding_id>/decision")
@requires("incident_manager")
def decide(finding_id: int) -> Response:
    body = _body()
    if "decision" not in body:
        raise ApiError(400, "field 'decision' is required: 'accepted', 'false-positive' or null")
    decision = body["decision"]
    if decision is not None and decision not in DECISIONS:
        raise ApiError(400, "field 'decision' must be 'accepted', 'false-positive' or null")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "field 'reason' must be a string")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise ApiError(400, f"field 'reason' is over {MAX_REASON_CHARS} characters")
    if decision == "false-positive" and reason is None:
        raise ApiError(400, "marking a finding a false positive needs a 'reason': it is what "
                       "an admin reads when tuning the rule")
    service = _service()
    with session_scope(service.sessions) as session:
        if session.get(Finding, finding_id) is None:
            raise ApiError(404, f"no finding {finding_id}")
        row = queries.decide_finding(session, finding_id, decision, current_user.username, reason)
        analysis = row.analysis
        incident_row = analysis.incident
        # Re-check like the dashboard does, so the ticket's comment drops a dismissed flag.
        job_id = service.create_job(
            session,
            "check",
            {
                "tracker": incident_row.tracker,
                "site": incident_row.site,
                "project": incident_row.project,
                "key": incident_row.key,
                "reason": "decision",
            },
        )
        out = {"finding": finding_json(row, analysis), "recheck_job": job_id}
    service.enqueue(job_id)  # after the commit: the worker must find the job row
    return jsonify(out)


@bp.get("/decisions")
@requires("engineer")
def decisions() -> Response:
    limit = _int_arg("limit", DECISIONS_LIMIT, 1, MAX_DECISIONS_LIMIT)
    before = _int_arg("before", 0, 0, 2**62)
    query = select(AuditEntry).where(
        AuditEntry.action.like("finding.%"), AuditEntry.target_type == "finding"
    )
    if before:
        query = query.where(AuditEntry.id < before)
    with session_scope(_service().sessions) as session:
        entries = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)).all()
        finding_ids = {int(e.target_id) for e in entries if e.target_id.isdigit()}
        incident_of = dict(
            session.execute(
                select(Finding.id, Analysis.incident_id)
                .join(Analysis, Analysis.id == Finding.analysis_id)
                .where(Finding.id.in_(finding_ids))
            ).all()
        ) if finding_ids else {}
        items = []
        for e in entries:
            detail = e.detail or {}
            finding_id = int(e.target_id) if e.target_id.isdigit() else None
            decision = e.action.removeprefix("finding.")
            items.append(
                {
                    "id": e.id,
                    "at": _iso(e.at),
                    "actor": e.actor,
                    "decision": None if decision == "undecided" else decision,
                    "finding_id": finding_id,
                    "incident_id": incident_of.get(finding_id),
                    "rule": detail.get("rule"),
                    "fingerprint": detail.get("fingerprint"),
                    "reason": e.reason,
                }
            )
    next_before = items[-1]["id"] if len(items) == limit else None
    return jsonify({"items": items, "next_before": next_before})


# --- rule packs -------------------------------------------------------------------------


@bp.get("/rule-packs")
@requires("admin")
def rule_packs() -> Response:
    with session_scope(_service().sessions) as session:
        rows = packs.pack_history(session, packs.DEFAULT_NAME)
        items = [version_json(r) for r in rows]
    active_id = next((i["id"] for i in items if i["active"]), None)
    return jsonify({"name": packs.DEFAULT_NAME, "active_id": active_id, "items": items})


@bp.get("/rule-packs/active")
@requires("admin")
def active_pack() -> Response:
    active = read_active(_service().sessions)
    head = version_json(active.row) if active.row is not None else {
        "id": None, "name": packs.DEFAULT_NAME, "version": active.pack.version,
        "created_at": None, "created_by": None, "active": True,
    }
    rules = [
        {
            "id": r.id,
            "category": r.category,
            "severity": r.severity,
            "enabled": r.enabled,
            "message": r.message,
        }
        for r in active.pack.rules
    ]
    source = "published" if active.row is not None else "shipped"
    return jsonify(
        {**head, "source": source, "problem": active.problem or None, "text": active.text,
         "rules": rules}
    )


# --- lint -------------------------------------------------------------------------------


@bp.post("/lint")
@requires("engineer")
def lint() -> Response:
    body = _body()
    if body.get("pack") is not None and not current_user.can("admin"):
        # Before anything reads the text: a pack is code the server runs (regexes, lists),
        # so only those who may publish one send it; the others name a published version.
        raise ApiError(403, "field 'pack' (rule-pack YAML) is for admins; name a published "
                            "version with 'pack_version' instead")
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "field 'text' is required and must be a string")
    if len(text) > MAX_LINT_CHARS:
        raise ApiError(413, f"field 'text' is over {MAX_LINT_CHARS} characters")
    fmt = body.get("format", "markdown")
    if fmt not in LINT_FORMATS:
        raise ApiError(400, f"field 'format' must be one of {', '.join(LINT_FORMATS)}")
    people = body.get("people", [])
    if not isinstance(people, list) or any(not isinstance(p, str) for p in people):
        raise ApiError(400, "field 'people' must be a list of names or @handles")
    if len(people) > MAX_PEOPLE or any(len(p) > 200 for p in people):
        raise ApiError(400, f"field 'people' takes at most {MAX_PEOPLE} names of 200 characters")
    actions = body.get("actions", True)
    if not isinstance(actions, bool):
        raise ApiError(400, "field 'actions' must be true or false")
    pack = _lint_pack(body)
    try:
        # In the analysis processes, under the time budget: never in this web process.
        analysis = _service().analyse(
            text, fmt=fmt, pack=pack, people=people, check_actions=actions
        )
    except TooLarge as error:
        raise ApiError(413, f"the text is {error}") from None
    except Unchecked as error:  # over the time budget, or its process died
        raise ApiError(422, f"the text {error}") from None
    except (TextFormatError, ValueError) as error:
        raise ApiError(400, f"cannot read the text as {fmt}: {error}") from None
    out = to_json([("text", text, analysis)])
    # to_json keeps every finding (min severity info), in order: add the source offsets an
    # editor needs to highlight, and the fingerprint reviewers' decisions hang on.
    for shown, finding in zip(out["files"][0]["findings"], analysis.findings, strict=True):
        shown.update(start=finding.start, end=finding.end, fingerprint=finding.fingerprint)
    return jsonify(out)


def _lint_pack(body: dict[str, Any]) -> RulePack:
    """The pack a lint request asks for: an admin's draft text (`pack`), a published
    version by its version string (`pack_version`), or the pack in force."""
    pack_text = body.get("pack")
    version = body.get("pack_version")
    if pack_text is not None and version is not None:
        raise ApiError(400, "give either 'pack' or 'pack_version', not both")
    if pack_text is not None:
        if not isinstance(pack_text, str):
            raise ApiError(400, "field 'pack' must be rule-pack YAML text")
        if len(pack_text) > MAX_PACK_CHARS:
            raise ApiError(413, f"field 'pack' is over {MAX_PACK_CHARS} characters")
        try:
            return draft_pack(pack_text, "pack")  # one parsed, compiled pack per text
        except PackError as error:
            raise ApiError(400, str(error)) from None
    if version is not None:
        if not isinstance(version, str) or not version or len(version) > 64:
            raise ApiError(400, "field 'pack_version' must be a published version, like "
                                "the 'version' of /rule-packs or of a finding's 'pack'")
        with session_scope(_service().sessions) as session:
            row = packs.find_version(session, packs.DEFAULT_NAME, version)
            if row is None:
                raise ApiError(404, f"no published version {version!r} of the rule pack")
            try:
                return pack_from_version(row)  # parsed once per version, compiled once
            except PackError as error:
                raise ApiError(400, f"version {version!r} no longer loads: {error}") from None
    return _service().pack  # the published version, followed within seconds


# --- the document and the catch-all -----------------------------------------------------


@bp.get("/openapi.json")
@requires("engineer")
def openapi() -> Response:
    return jsonify(OPENAPI)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@bp.route("/", defaults={"rest": ""}, methods=list(_METHODS))
@bp.route("/<path:rest>", methods=list(_METHODS))
@requires("engineer")
def unknown(rest: str) -> Response:
    """Any other path under /api/v1: 405 when another route has the path, else 404."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _args = adapter.match(method=method)
        except (HTTPException, RoutingException):
            continue
        if endpoint != "api.unknown":
            allowed.append(method)
    if allowed:
        return _error(405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                      {"Allow": ", ".join(allowed)})
    return _error(404, f"no API route {request.path}; see /api/v1/openapi.json")


# --- OpenAPI 3.1 ------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request: a parameter or body field is missing or invalid",
        401: "Not signed in, or an invalid or revoked token",
        403: "The account's role does not allow this",
        404: "Not found",
        413: "The text or pack is too large",
        422: "The text could not be checked in the analysis time budget",
    }
    return {str(c): _json_response(text[c], _ref("Error")) for c in codes}


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_PACK_REF = {
    "type": "object",
    "required": ["name", "version"],
    "properties": {"name": _STR, "version": _STR},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


_INCIDENT_ID = _path(
    "incident_id",
    _STR,
    "The store's incident id, e.g. `jira:https://ops.example.net:OPS:OPS-12` or "
    "`github:https://api.github.com:org/repo#12`; percent-encode `#` as %23.",
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "postmortem-guard API",
        "version": "1",
        "description": (
            "Incidents, findings, reviewers' decisions, rule packs and a lint endpoint for "
            "editor and CI integrations. Authenticate with `Authorization: Bearer <token>` "
            "(tokens from /account) or the dashboard's session cookie; a session-"
            "authenticated POST also needs the `X-CSRFToken` header. Errors are "
            '`{"error": "..."}`.'
        ),
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    "paths": {
        "/incidents": {
            "get": {
                "operationId": "listIncidents",
                "summary": "Incidents, newest closure first (engineer)",
                "parameters": [
                    _query("status", {"type": "string", "enum": list(VERDICTS)},
                           "The check's verdict"),
                    _query("tracker", {"type": "string", "enum": list(TRACKERS)}, "Tracker"),
                    _query("project", _STR, "Repository (owner/name) or Jira project key"),
                    _query("team", _STR, "Team"),
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page"),
                    _query("per_page", {"type": "integer", "minimum": 1,
                                        "maximum": MAX_PER_PAGE, "default": PER_PAGE},
                           "Incidents per page"),
                ],
                "responses": {
                    "200": _json_response("A page of incidents", _ref("IncidentPage")),
                    **_errors(400, 401),
                },
            }
        },
        "/incidents/{incident_id}": {
            "get": {
                "operationId": "getIncident",
                "summary": "One incident with its postmortems and latest analyses (engineer)",
                "parameters": [_INCIDENT_ID],
                "responses": {
                    "200": _json_response("The incident", _ref("IncidentDetail")),
                    **_errors(401, 404),
                },
            }
        },
        "/incidents/{incident_id}/findings": {
            "get": {
                "operationId": "listFindings",
                "summary": "The findings of each linked postmortem's latest analysis (engineer)",
                "parameters": [_INCIDENT_ID],
                "responses": {
                    "200": _json_response("The findings", _ref("FindingList")),
                    **_errors(401, 404),
                },
            }
        },
        "/findings/{finding_id}/decision": {
            "post": {
                "operationId": "decideFinding",
                "summary": "Accept a finding, mark it a false positive, or clear the decision "
                "(incident manager); queues a re-check of the incident",
                "parameters": [_path("finding_id", _INT, "The finding's id")],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DecisionRequest")}},
                },
                "responses": {
                    "200": _json_response("The decided finding", _ref("DecisionResult")),
                    **_errors(400, 401, 403, 404),
                },
            }
        },
        "/decisions": {
            "get": {
                "operationId": "listDecisions",
                "summary": "Reviewers' recent decisions on findings, newest first (engineer)",
                "parameters": [
                    _query("limit", {"type": "integer", "minimum": 1,
                                     "maximum": MAX_DECISIONS_LIMIT,
                                     "default": DECISIONS_LIMIT}, "Decisions per page"),
                    _query("before", {"type": "integer", "minimum": 0},
                           "Only decisions older than this id (the previous page's "
                           "next_before)"),
                ],
                "responses": {
                    "200": _json_response("Decisions", _ref("DecisionList")),
                    **_errors(400, 401),
                },
            }
        },
        "/rule-packs": {
            "get": {
                "operationId": "listRulePacks",
                "summary": "Published versions of the rule pack, newest first (admin)",
                "responses": {
                    "200": _json_response("Versions", _ref("RulePackHistory")),
                    **_errors(401, 403),
                },
            }
        },
        "/rule-packs/active": {
            "get": {
                "operationId": "getActiveRulePack",
                "summary": "The rule pack in force: the published version or the shipped "
                "default (admin)",
                "responses": {
                    "200": _json_response("The pack", _ref("ActivePack")),
                    **_errors(401, 403),
                },
            }
        },
        "/lint": {
            "post": {
                "operationId": "lint",
                "summary": "Text in, findings out (any signed-in role)",
                "description": (
                    f"`text` up to {MAX_LINT_CHARS} characters and {MAX_WORDS} words (413 "
                    "beyond); an analysis past the service's `analysis_timeout` is stopped "
                    "(422). Uses the pack in "
                    "force unless `pack_version` names a published version (404 when there "
                    "is none) or, for admins only (403 for other roles), `pack` gives "
                    "rule-pack YAML (a draft, checked as a published pack is). The answer has the "
                    "shape of `pmguard lint --format json`, each finding with its source "
                    "offsets `start`/`end` (code points) and `fingerprint`."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("LintRequest")}},
                },
                "responses": {
                    "200": _json_response("Findings", _ref("LintResult")),
                    **_errors(400, 401, 403, 404, 413, 422),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": _json_response("The OpenAPI document", {"type": "object",
                                                                   "required": ["openapi"]}),
                    **_errors(401),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": _STR},
            },
            "Incident": {
                "type": "object",
                "required": ["id", "tracker", "site", "project", "key", "title", "url",
                             "state", "status", "closed_at", "links"],
                "properties": {
                    "id": _STR,
                    "tracker": {"type": "string", "enum": list(TRACKERS)},
                    "site": _STR,
                    "project": _STR,
                    "key": _STR,
                    "title": _STR,
                    "url": _STR,
                    "state": _STR,
                    "status": {"type": ["string", "null"], "enum": [*VERDICTS, None]},
                    "closed_at": _TIME,
                    "severity": _NSTR,
                    "team": _NSTR,
                    "last_checked_at": _TIME,
                    "waiver": {
                        "type": ["object", "null"],
                        "properties": {"by": _NSTR, "reason": _NSTR, "until": _TIME},
                    },
                    "links": {
                        "type": "object",
                        "required": ["self", "findings"],
                        "properties": {"self": _STR, "findings": _STR},
                    },
                },
            },
            "IncidentPage": {
                "type": "object",
                "required": ["items", "page", "per_page", "total", "pages"],
                "properties": {
                    "items": {"type": "array", "items": _ref("Incident")},
                    "page": _INT,
                    "per_page": _INT,
                    "total": _INT,
                    "pages": _INT,
                },
            },
            "Analysis": {
                "type": "object",
                "required": ["id", "postmortem_id", "created_at", "pack", "model", "verdict",
                             "findings", "action_items"],
                "properties": {
                    "id": _INT,
                    "postmortem_id": _NSTR,
                    "created_at": _TIME,
                    "pack": _PACK_REF,
                    "model": _STR,
                    "verdict": _STR,
                    "findings": {"type": "integer", "description": "How many findings"},
                    "action_items": {"type": "array", "items": {"type": "object"}},
                },
            },
            "IncidentDetail": {
                "allOf": [
                    _ref("Incident"),
                    {
                        "type": "object",
                        "required": ["postmortems", "analyses"],
                        "properties": {
                            "postmortems": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["id", "kind", "url", "title"],
                                    "properties": {"id": _STR, "kind": _STR, "url": _STR,
                                                   "title": _STR},
                                },
                            },
                            "analyses": {"type": "array", "items": _ref("Analysis")},
                        },
                    },
                ]
            },
            "Finding": {
                "type": "object",
                "required": ["id", "analysis_id", "pack", "rule", "category", "severity",
                             "message", "text", "line", "suppressed", "fingerprint",
                             "decision"],
                "properties": {
                    "id": _INT,
                    "analysis_id": _INT,
                    "postmortem_id": _NSTR,
                    "pack": _PACK_REF,
                    "rule": _STR,
                    "category": _STR,
                    "severity": {"type": "string", "enum": ["info", "warning", "error"]},
                    "message": _STR,
                    "suggestion": _STR,
                    "text": _STR,
                    "sentence": _STR,
                    "start": _NINT,
                    "end": _NINT,
                    "line": _NINT,
                    "column": _NINT,
                    "end_line": _NINT,
                    "end_column": _NINT,
                    "suppressed": {"type": "boolean"},
                    "fingerprint": _STR,
                    "decision": {"type": ["string", "null"], "enum": [*DECISIONS, None]},
                    "decided_by": _NSTR,
                    "decided_at": _TIME,
                    "reason": _NSTR,
                },
            },
            "FindingList": {
                "type": "object",
                "required": ["incident_id", "items"],
                "properties": {
                    "incident_id": _STR,
                    "items": {"type": "array", "items": _ref("Finding")},
                },
            },
            "DecisionRequest": {
                "type": "object",
                "required": ["decision"],
                "properties": {
                    "decision": {"type": ["string", "null"], "enum": [*DECISIONS, None]},
                    "reason": {"type": ["string", "null"], "maxLength": MAX_REASON_CHARS,
                               "description": "Required for false-positive"},
                },
            },
            "DecisionResult": {
                "type": "object",
                "required": ["finding", "recheck_job"],
                "properties": {"finding": _ref("Finding"), "recheck_job": _INT},
            },
            "Decision": {
                "type": "object",
                "required": ["id", "at", "actor", "decision", "finding_id", "rule", "reason"],
                "properties": {
                    "id": _INT,
                    "at": _TIME,
                    "actor": _STR,
                    "decision": {"type": ["string", "null"], "enum": [*DECISIONS, None]},
                    "finding_id": _NINT,
                    "incident_id": _NSTR,
                    "rule": _NSTR,
                    "fingerprint": _NSTR,
                    "reason": _NSTR,
                },
            },
            "DecisionList": {
                "type": "object",
                "required": ["items", "next_before"],
                "properties": {
                    "items": {"type": "array", "items": _ref("Decision")},
                    "next_before": _NINT,
                },
            },
            "RulePackVersion": {
                "type": "object",
                "required": ["id", "name", "version", "created_at", "created_by", "active"],
                "properties": {
                    "id": _NINT,
                    "name": _STR,
                    "version": _STR,
                    "created_at": _TIME,
                    "created_by": _NSTR,
                    "active": {"type": "boolean"},
                },
            },
            "RulePackHistory": {
                "type": "object",
                "required": ["name", "active_id", "items"],
                "properties": {
                    "name": _STR,
                    "active_id": _NINT,
                    "items": {"type": "array", "items": _ref("RulePackVersion")},
                },
            },
            "ActivePack": {
                "allOf": [
                    _ref("RulePackVersion"),
                    {
                        "type": "object",
                        "required": ["source", "text", "rules"],
                        "properties": {
                            "source": {"type": "string", "enum": ["published", "shipped"]},
                            "problem": _NSTR,
                            "text": _STR,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["id", "category", "severity", "enabled"],
                                    "properties": {
                                        "id": _STR,
                                        "category": _STR,
                                        "severity": _STR,
                                        "enabled": {"type": "boolean"},
                                        "message": _STR,
                                    },
                                },
                            },
                        },
                    },
                ]
            },
            "LintRequest": {
                "type": "object",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "maxLength": MAX_LINT_CHARS},
                    "format": {"type": "string", "enum": list(LINT_FORMATS),
                               "default": "markdown"},
                    "people": {"type": "array", "items": _STR, "maxItems": MAX_PEOPLE,
                               "description": "The incident's people (names, @handles)"},
                    "pack": {"type": "string", "maxLength": MAX_PACK_CHARS,
                             "description": "Rule-pack YAML to use instead of the pack in "
                             "force (a draft); admins only"},
                    "pack_version": {"type": "string", "maxLength": 64,
                                     "description": "A published version of the rule pack "
                                     "to use instead of the pack in force (the `version` of "
                                     "/rule-packs or of a finding's `pack`)"},
                    "actions": {"type": "boolean", "default": True,
                                "description": "Also check the action-items section"},
                },
            },
            "LintFinding": {
                "type": "object",
                "required": ["rule", "category", "severity", "line", "column", "end_line",
                             "end_column", "text", "message", "suggestion", "suppressed",
                             "start", "end", "fingerprint"],
                "properties": {
                    "rule": _STR,
                    "category": _STR,
                    "severity": {"type": "string", "enum": ["info", "warning", "error"]},
                    "line": _INT,
                    "column": _INT,
                    "end_line": _INT,
                    "end_column": _INT,
                    "text": _STR,
                    "message": _STR,
                    "suggestion": _STR,
                    "suppressed": {"type": "boolean"},
                    "start": _INT,
                    "end": _INT,
                    "fingerprint": _STR,
                },
            },
            "LintResult": {
                "type": "object",
                "required": ["files", "summary"],
                "properties": {
                    "files": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["path", "findings", "action_items", "warnings"],
                            "properties": {
                                "path": _STR,
                                "findings": {"type": "array", "items": _ref("LintFinding")},
                                "action_items": {"type": "array", "items": {"type": "object"}},
                                "warnings": {"type": "array", "items": _STR},
                            },
                        },
                    },
                    "summary": {
                        "type": "object",
                        "required": ["files", "findings", "by_severity", "suppressed", "pack",
                                     "model"],
                        "properties": {
                            "files": _INT,
                            "findings": _INT,
                            "by_severity": {"type": "object"},
                            "suppressed": _INT,
                            "pack": _STR,
                            "model": _STR,
                        },
                    },
                },
            },
        },
    },
}
