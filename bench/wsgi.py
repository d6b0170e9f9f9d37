"""The service's app plus a bare endpoint, so bench/webhooks.py can compare both on the
same gunicorn server: `gunicorn 'bench.wsgi:app'` (settings from PMGUARD_* variables)."""

from __future__ import annotations

from flask import Response

from app import create_app

app = create_app()


def bare() -> Response:
    return Response(status=204)


app.add_url_rule("/bench/bare", "bench_bare", bare, methods=["POST"])
# Like the webhooks, the bare endpoint takes no browser form: no CSRF token to check.
app.extensions["csrf"].exempt(bare)
