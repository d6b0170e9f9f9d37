"""Operating endpoints: /healthz (alive), /readyz (database and queue reachable), /metrics."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from store.db import DatabaseUnavailable, ping

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    service = current_app.extensions["pmguard"]
    problems = {}
    try:
        ping(service.engine)
    except DatabaseUnavailable as exc:
        problems["database"] = str(exc).splitlines()[0][:200]
    try:
        service.huey.pending_count()
    except Exception as exc:  # any storage error means the queue cannot take work
        problems["queue"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    if problems:
        response = jsonify({"status": "unavailable", "problems": problems})
        response.status_code = 503
        return response
    return jsonify({"status": "ready"})


@bp.get("/metrics")
def metrics() -> Response:
    service = current_app.extensions["pmguard"]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = DEFAULT_REGISTRY
    _queue_depth(service)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


_DEPTH = Gauge("pmguard_queue_depth", "Jobs waiting in the queue", multiprocess_mode="max")


def _queue_depth(service) -> None:
    try:
        _DEPTH.set(service.huey.pending_count() + service.huey.scheduled_count())
    except Exception:
        _DEPTH.set(-1)  # the queue is unreachable; /readyz says why
