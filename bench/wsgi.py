"""The service's app plus a bare endpoint, so bench/webhooks.py can compare both on the
same gunicorn server: `gunicorn 'bench.wsgi:app'` (settings from PMGUARD_* variables)."""

from __future__ import annotations

from flask import Response

from app import create_app

app = create_app()


@app.post("/bench/bare")
def bare() -> Response:
    return Response(status=204)
