"""POST /webhooks/github and /webhooks/jira: verify, dedupe, record, enqueue, answer.

No tracker call happens here. A relevant delivery is answered 202 only after its delivery
row and job row are committed, so the sender's retry (or reconcile) covers anything that
fails before that.
"""

from __future__ import annotations

import hashlib
import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from connector import github as gh
from connector import jira as jr
from connector.base import MalformedPayload
from connector.signatures import verify_github, verify_jira
from store.intake import DeliveryRecord
from worker.metrics import DELIVERIES

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("pmguard.webhooks")


# Real deliveries nest a few dozen levels at most (a Jira comment's ADF document is the
# deepest); anything deeper is refused before code that walks it recursively sees it.
MAX_DEPTH = 128


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _body() -> bytes | Response:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        return _error(413, f"body over {limit} bytes")
    data = request.get_data(cache=True)
    if len(data) > limit:
        return _error(413, f"body over {limit} bytes")
    return data


def _json(body: bytes) -> dict | Response:
    if request.mimetype == "application/x-www-form-urlencoded":
        body = (request.form.get("payload") or "").encode()
    try:
        data = json.loads(body)
    except RecursionError:
        return _error(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"malformed JSON: {exc}")
    if not isinstance(data, dict):
        return _error(400, "malformed JSON: expected an object")
    if _deeper_than(data, MAX_DEPTH):
        return _error(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels")
    return data


def _deeper_than(value: object, limit: int) -> bool:
    # Iterative: the point is to never recurse on what a sender controls.
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _metric_event(event: str, known: tuple[str, ...]) -> str:
    # The event comes from the request (a header, or the body): only names we know become
    # label values, so a sender cannot add /metrics series without end.
    return event if event in known else "other"


@bp.post("/webhooks/github")
def github() -> Response:
    service = current_app.extensions["pmguard"]
    secret = service.settings.github.webhook_secret
    body = _body()
    if isinstance(body, Response):
        return body
    if not secret:
        return _error(401, "GitHub webhook secret is not configured")
    if not verify_github(secret.encode(), body, request.headers.get("X-Hub-Signature-256")):
        return _error(401, "missing or wrong X-Hub-Signature-256")
    payload = _json(body)
    if isinstance(payload, Response):
        return payload
    event = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if event == "ping":
        return jsonify({"pong": True, "zen": payload.get("zen", "")})
    try:
        parsed = gh.parse_event(
            event,
            payload,
            site=service.settings.github.api_url.rstrip("/"),
            bot_login=service.settings.github.bot_login or None,
        )
    except MalformedPayload as exc:
        return _error(400, f"malformed payload: {exc}")
    return _accept(service, "github", delivery, event,
                   _metric_event(event, gh.WEBHOOK_EVENTS), parsed)


@bp.post("/webhooks/jira")
def jira() -> Response:
    service = current_app.extensions["pmguard"]
    body = _body()
    if isinstance(body, Response):
        return body
    header = request.headers.get("X-Hub-Signature")
    # Several Jira sites each sign with their own secret; the one that verifies names the
    # site. Every secret is checked (no early exit) so timing does not tell which matched.
    matches = [
        site for site in service.settings.jiras
        if site.webhook_secret and verify_jira(site.webhook_secret.encode(), body, header)
    ]
    if not any(site.webhook_secret for site in service.settings.jiras):
        return _error(401, "Jira webhook secret is not configured")
    if not matches:
        return _error(401, "missing or wrong X-Hub-Signature")
    site = matches[0]
    payload = _json(body)
    if isinstance(payload, Response):
        return payload
    delivery = request.headers.get("X-Atlassian-Webhook-Identifier", "")
    try:
        parsed = jr.parse_event(
            payload,
            site=site.url.rstrip("/"),
            bot_account=site.bot_account or None,
            postmortem_issue_types=site.postmortem_issue_types,
        )
    except MalformedPayload as exc:
        return _error(400, f"malformed payload: {exc}")
    event = str(payload.get("webhookEvent") or "")  # a string: parse_event checked
    return _accept(service, "jira", delivery, event,
                   _metric_event(event, jr.WEBHOOK_EVENTS), parsed)


def _accept(service, source: str, delivery: str, event: str, label: str, parsed) -> Response:
    """`event` as the sender named it (stored with the delivery); `label` is what
    /metrics may show of it."""
    job = service.job_for(parsed) if parsed is not None else None
    if job is None:
        DELIVERIES.labels(source, label, "ignored").inc()
        return Response(status=204)
    if not delivery:
        return _error(400, "missing delivery id header")
    kind, payload = job
    try:
        job_id = service.intake.accept(DeliveryRecord(
            source=source,
            delivery_id=delivery,
            event=event,
            incident_id=parsed.ref.id,
            kind=kind,
            payload={**payload, "delivery": delivery},
            max_attempts=service.settings.max_attempts,
            body_sha256=hashlib.sha256(request.get_data(cache=True)).hexdigest(),
        ))
    except OperationalError:
        log.exception("database unavailable", extra={"delivery": delivery})
        DELIVERIES.labels(source, label, "unavailable").inc()
        return _error(503, "database unavailable; retry later")
    except SQLAlchemyError:
        log.exception("could not record delivery %s", delivery)
        return _error(503, "could not record the delivery; retry later")
    if job_id is None:
        DELIVERIES.labels(source, label, "duplicate").inc()
        return jsonify({"status": "duplicate", "delivery": delivery})
    DELIVERIES.labels(source, label, "enqueued").inc()
    log.info("delivery enqueued", extra={"delivery": delivery, "incident": parsed.ref.id,
                                         "job": job_id})
    service.enqueue_soon(job_id)
    response = jsonify({"status": "enqueued", "job": job_id, "delivery": delivery})
    response.status_code = 202
    return response
